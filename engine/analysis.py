"""Analyses that read only run data: one summary per trial, and per-batch-size aggregates over seeds."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, fields

import numpy as np

from engine.runfile import RunData, TrialData

NAN = float("nan")


@dataclass
class TrialSummary:
    name: str
    batch_size: int
    seed: int
    lr: float
    base_lr: float
    status: str
    epochs: int
    steps: int
    samples: int
    best_val_accuracy: float
    final_val_accuracy: float
    final_train_accuracy: float
    final_train_loss: float
    final_val_loss: float
    loss_gap: float                 # final val loss minus final train loss
    generalization_gap: float       # final train accuracy minus final val accuracy
    samples_per_s: float            # over the whole trial, evaluation excluded
    peak_memory_bytes: float
    wall_time_s: float              # training time, evaluation excluded
    steps_to_target: float          # NaN when the target was never reached
    samples_to_target: float
    time_to_target_s: float
    error: str


# Column titles and formats for tables of TrialSummary (the command line and the GUI both use them).
REPORT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("batch_size", "batch size", "{:d}"),
    ("seed", "seed", "{:d}"),
    ("lr", "lr", "{:.4g}"),
    ("status", "status", "{}"),
    ("epochs", "epochs", "{:d}"),
    ("best_val_accuracy", "best val acc", "{:.4f}"),
    ("final_val_accuracy", "final val acc", "{:.4f}"),
    ("loss_gap", "val-train loss", "{:.4f}"),
    ("samples_per_s", "samples/s", "{:.0f}"),
    ("peak_memory_bytes", "peak memory MiB", "{:.1f}"),
    ("wall_time_s", "time s", "{:.1f}"),
)


def _last(values: np.ndarray) -> float:
    return float(values[-1]) if len(values) else NAN


def summarize_trial(trial: TrialData, target_accuracy: float | None = None) -> TrialSummary:
    epoch, step = trial.epoch, trial.step
    steps = int(step["step"][-1]) if len(step["step"]) else int(_last(epoch["step"]) if len(epoch["step"]) else 0)
    samples = int(step["samples"][-1]) if len(step["samples"]) else 0
    wall = _last(step["wall_time_s"]) if len(step["wall_time_s"]) else _last(epoch["wall_time_s"])
    val_acc = epoch["val_accuracy"]
    reached = np.flatnonzero(val_acc >= target_accuracy) if target_accuracy is not None else np.array([], int)
    first = int(reached[0]) if len(reached) else None
    return TrialSummary(
        name=trial.name, batch_size=trial.batch_size, seed=trial.seed, lr=trial.lr, base_lr=trial.base_lr,
        status=trial.status, epochs=trial.epochs_done, steps=steps, samples=samples,
        best_val_accuracy=float(np.nanmax(val_acc)) if len(val_acc) else NAN,
        final_val_accuracy=_last(val_acc), final_train_accuracy=_last(epoch["train_accuracy"]),
        final_train_loss=_last(epoch["train_loss"]), final_val_loss=_last(epoch["val_loss"]),
        loss_gap=_last(epoch["val_loss"]) - _last(epoch["train_loss"]),
        generalization_gap=_last(epoch["train_accuracy"]) - _last(val_acc),
        samples_per_s=samples / wall if samples and wall > 0 else NAN,
        peak_memory_bytes=float(np.max(epoch["peak_memory_bytes"])) if len(epoch["peak_memory_bytes"]) else NAN,
        wall_time_s=wall,
        steps_to_target=float(epoch["step"][first]) if first is not None else NAN,
        samples_to_target=float(epoch["samples"][first]) if first is not None else NAN,
        time_to_target_s=float(epoch["wall_time_s"][first]) if first is not None else NAN,
        error=trial.error)


def summarize_run(run: RunData, target_accuracy: float | None = None) -> list[TrialSummary]:
    return [summarize_trial(trial, target_accuracy) for trial in run.trials]


def format_cell(summary: TrialSummary, key: str, fmt: str) -> str:
    value = getattr(summary, key)
    if key == "peak_memory_bytes":
        value = value / 2**20
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return fmt.format(value)


@dataclass
class BatchSizeStats:
    """One point of the summary plots: a batch size (and base lr), mean and spread over seeds."""
    batch_size: int
    base_lr: float
    trials: int
    completed: int
    mean: dict[str, float]
    std: dict[str, float]
    reached_target: int             # how many seeds reached the target accuracy


NUMERIC_FIELDS = tuple(f.name for f in fields(TrialSummary)
                       if f.type in ("float", "int") and f.name not in ("batch_size", "seed", "lr", "base_lr"))


def by_batch_size(summaries: list[TrialSummary]) -> list[BatchSizeStats]:
    """Group trials by (batch size, base lr) and average every numeric field over seeds, ignoring NaNs.

    Trials that failed before measuring anything contribute NaNs and so drop out of the means."""
    groups: dict[tuple[int, float], list[TrialSummary]] = defaultdict(list)
    for summary in summaries:
        groups[(summary.batch_size, summary.base_lr)].append(summary)
    stats = []
    for (batch_size, base_lr), members in sorted(groups.items()):
        mean, std = {}, {}
        for key in NUMERIC_FIELDS:
            values = np.array([getattr(m, key) for m in members], dtype=float)
            finite = values[np.isfinite(values)]
            mean[key] = float(finite.mean()) if len(finite) else NAN
            std[key] = float(finite.std(ddof=1)) if len(finite) > 1 else 0.0 if len(finite) else NAN
        stats.append(BatchSizeStats(
            batch_size=batch_size, base_lr=base_lr, trials=len(members),
            completed=sum(m.status == "completed" for m in members), mean=mean, std=std,
            reached_target=sum(math.isfinite(m.steps_to_target) for m in members)))
    return stats


@dataclass
class Recommendation:
    batch_size: int
    base_lr: float
    target_accuracy: float          # the accuracy every seed of the pick reached
    time_to_target_s: float
    reasons: list[str]


def recommend(run: RunData, tolerance: float = 0.01) -> Recommendation | None:
    """The batch size that reaches (nearly) the best validation accuracy of this run in the least training
    time, with the reasons in words. "Nearly" is `tolerance` below the best mean over seeds: a difference
    smaller than that is rarely worth waiting for. None when no trial finished with an accuracy."""
    stats = [s for s in by_batch_size(summarize_run(run)) if s.completed and math.isfinite(s.mean["best_val_accuracy"])]
    if not stats:
        return None
    best = max(stats, key=lambda s: s.mean["best_val_accuracy"])
    target = best.mean["best_val_accuracy"] - tolerance
    timed = by_batch_size(summarize_run(run, target))
    reaching = [s for s in timed if s.trials and s.reached_target == s.trials]
    if not reaching:
        return None
    pick = min(reaching, key=lambda s: s.mean["time_to_target_s"])
    lr_note = f" (base lr {pick.base_lr:g})" if len({s.base_lr for s in timed}) > 1 else ""
    reasons = [f"Every seed reached {target:.1%} validation accuracy (within {tolerance * 100:g} "
               f"percentage point of the best, "
               f"{best.mean['best_val_accuracy']:.1%} at batch size {best.batch_size}) in "
               f"{pick.mean['time_to_target_s']:.1f} s of training: the fastest of all batch sizes{lr_note}."]
    others = sorted((s for s in reaching if s is not pick), key=lambda s: s.mean["time_to_target_s"])
    if others:
        reasons.append("Also reached it: " + ", ".join(
            f"batch {s.batch_size} in {s.mean['time_to_target_s']:.1f} s" for s in others[:4]) + ".")
    missed = sorted({s.batch_size for s in timed if s.reached_target < s.trials})
    if missed:
        reasons.append("Did not reach it in every seed: batch " + ", ".join(map(str, missed)) + ".")
    reasons.append(f"It takes {pick.mean['steps_to_target']:,.0f} steps and {pick.mean['samples_to_target']:,.0f} "
                   f"examples, at {pick.mean['samples_per_s']:,.0f} examples/s, peak memory "
                   f"{pick.mean['peak_memory_bytes'] / 2**20:.0f} MiB.")
    return Recommendation(batch_size=pick.batch_size, base_lr=pick.base_lr, target_accuracy=target,
                          time_to_target_s=pick.mean["time_to_target_s"], reasons=reasons)
