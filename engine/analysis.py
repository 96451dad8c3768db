"""Analyses that read only run data: one summary per trial, and per-batch-size aggregates over seeds."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, fields

import numpy as np

from engine import schema
from engine.runfile import RunData, TrialData
from engine.hardware.energy import mean_gpu_utilization, trial_energy
from engine.science.targets import crossing

NAN = float("nan")


@dataclass
class TrialSummary:
    name: str
    batch_size: int
    seed: int
    lr: float
    base_lr: float
    precision: str                  # "" where a file without the attribute has an unreadable config
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
    samples_per_s: float            # training_throughput: over the whole trial, evaluation excluded
    peak_memory_bytes: float
    step_memory_bytes: float        # the trial's second step (schema.TRIAL_MEMORY_ATTRS); NaN when not measured
    energy_j: float                 # CPU packages and GPU as telemetry measured them; NaN when unavailable
    energy_per_example_j: float     # energy_j over the examples trained on
    energy_to_target_j: float       # the energy counters when training first reached the target
                                    # (engine.hardware.energy); NaN: not measured or not reached
    gpu_utilization_percent: float  # mean over the trial's telemetry samples; NaN without a GPU
    energy_unavailable: str         # why an energy figure above is NaN ('' when none is)
    wall_time_s: float              # training time, evaluation excluded
    steps_to_target: float          # NaN when the target was never reached (engine.science.targets.crossing)
    samples_to_target: float
    time_to_target_s: float
    error: str


# Column titles and formats for tables of TrialSummary (the command line and the GUI both use them).
REPORT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("batch_size", "batch size", "{:d}"),
    ("seed", "seed", "{:d}"),
    ("lr", "lr", "{:.4g}"),
    ("precision", "precision", "{}"),
    ("status", "status", "{}"),
    ("epochs", "epochs", "{:d}"),
    ("best_val_accuracy", "best val acc", "{:.4f}"),
    ("final_val_accuracy", "final val acc", "{:.4f}"),
    ("loss_gap", "val-train loss", "{:.4f}"),
    ("samples_per_s", "samples/s", "{:.0f}"),
    ("peak_memory_bytes", "peak memory MiB", "{:.1f}"),
    ("step_memory_bytes", "step memory MiB", "{:.3g}"),
    ("energy_per_example_j", "J/example", "{:.3g}"),
    ("energy_to_target_j", "J to target", "{:.3g}"),
    ("wall_time_s", "time s", "{:.1f}"),
)


def _last(values: np.ndarray) -> float:
    return float(values[-1]) if len(values) else NAN


def training_throughput(trial: TrialData) -> float:
    """Training examples per second over the whole trial, evaluation excluded: every example trained on,
    divided by the training clock. The one definition of a trial's throughput, for the trial table, the
    Summary and `report`; the per-epoch `samples_per_s` in the file is one epoch's share of it, which moves
    with warm-up and with the machine's load.

    The last epoch row is preferred when it is also the last step, because on CUDA its clock includes the
    final synchronization; a trial stopped inside an epoch is measured to its last logged step."""
    epoch, step = trial.epoch, trial.step
    if len(epoch["samples"]) and (not len(step["samples"]) or epoch["samples"][-1] >= step["samples"][-1]):
        samples, seconds = float(epoch["samples"][-1]), float(epoch["wall_time_s"][-1])
    elif len(step["samples"]):
        samples, seconds = float(step["samples"][-1]), float(step["wall_time_s"][-1])
    else:
        return NAN
    return samples / seconds if samples > 0 and seconds > 0 else NAN


# How peak memory was measured, by the device a run trained on (engine.devices.PeakMemory).
MEMORY_PER_TRIAL = "per_trial"          # CUDA: the allocator's peak of tensor memory within the trial
MEMORY_PROCESS = "process"              # CPU: the process's peak resident memory, which includes earlier trials


def memory_measure(run: RunData) -> str:
    """MEMORY_PER_TRIAL on CUDA, MEMORY_PROCESS elsewhere (then only the largest value means anything: the
    process never gives memory back, so later trials show at least what earlier ones used)."""
    return MEMORY_PER_TRIAL if str(run.environment.get("device", "")).startswith("cuda") else MEMORY_PROCESS


MEMORY_LABELS = {MEMORY_PER_TRIAL: "peak tensor memory of the trial",
                 MEMORY_PROCESS: "process peak RSS, includes earlier trials"}


def summarize_trial(trial: TrialData, target_accuracy: float | None = None) -> TrialSummary:
    epoch, step = trial.epoch, trial.step
    steps = int(step["step"][-1]) if len(step["step"]) else int(_last(epoch["step"]) if len(epoch["step"]) else 0)
    samples = int(step["samples"][-1]) if len(step["samples"]) else 0
    wall = _last(step["wall_time_s"]) if len(step["wall_time_s"]) else _last(epoch["wall_time_s"])
    val_acc = epoch["val_accuracy"]
    first = crossing(trial, target_accuracy)
    energy = trial_energy(trial, samples, first)
    return TrialSummary(
        name=trial.name, batch_size=trial.batch_size, seed=trial.seed, lr=trial.lr, base_lr=trial.base_lr,
        precision=trial.precision, status=trial.status, epochs=trial.epochs_done, steps=steps, samples=samples,
        best_val_accuracy=float(np.nanmax(val_acc)) if len(val_acc) else NAN,
        final_val_accuracy=_last(val_acc), final_train_accuracy=_last(epoch["train_accuracy"]),
        final_train_loss=_last(epoch["train_loss"]), final_val_loss=_last(epoch["val_loss"]),
        loss_gap=_last(epoch["val_loss"]) - _last(epoch["train_loss"]),
        generalization_gap=_last(epoch["train_accuracy"]) - _last(val_acc),
        samples_per_s=training_throughput(trial),
        peak_memory_bytes=float(np.max(epoch["peak_memory_bytes"])) if len(epoch["peak_memory_bytes"]) else NAN,
        step_memory_bytes=trial.step_memory_bytes,
        energy_j=energy.total_j, energy_per_example_j=energy.per_example_j, energy_to_target_j=energy.to_target_j,
        gpu_utilization_percent=mean_gpu_utilization(trial), energy_unavailable=energy.unavailable,
        wall_time_s=wall,
        steps_to_target=first.steps, samples_to_target=first.samples, time_to_target_s=first.time_s,
        error=trial.error)


def summarize_run(run: RunData, target_accuracy: float | None = None) -> list[TrialSummary]:
    return [summarize_trial(trial, target_accuracy) for trial in run.trials]


def format_cell(summary: TrialSummary, key: str, fmt: str) -> str:
    value = getattr(summary, key)
    if key in ("peak_memory_bytes", "step_memory_bytes"):
        value = value / 2**20
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return fmt.format(value)


@dataclass
class BatchSizeStats:
    """One point of the summary plots: a batch size (and base lr, and precision), mean and spread over seeds."""
    batch_size: int
    base_lr: float
    trials: int
    completed: int
    mean: dict[str, float]
    std: dict[str, float]
    spread: dict[str, float]        # highest minus lowest over seeds; NaN with fewer than two values
    reached_target: int             # how many seeds reached the target accuracy
    statuses: dict[str, int]        # trials by status (schema.STATUSES), for "2 · 1 out of memory"
    precision: str = ""             # sweep.precisions' value, or the config's train.precision

    def failed(self) -> dict[str, int]:
        """Trials that ended without a result of their own: diverged, out of memory, failed."""
        return {status: count for status, count in self.statuses.items()
                if status in (schema.DIVERGED, schema.OUT_OF_MEMORY, schema.FAILED)}


NUMERIC_FIELDS = tuple(f.name for f in fields(TrialSummary)
                       if f.type in ("float", "int") and f.name not in ("batch_size", "seed", "lr", "base_lr"))


def by_batch_size(summaries: list[TrialSummary]) -> list[BatchSizeStats]:
    """Group trials by (batch size, base lr, precision) and average every numeric field over seeds, ignoring NaNs.

    Trials that failed before measuring anything contribute NaNs and so drop out of the means."""
    groups: dict[tuple[int, float, str], list[TrialSummary]] = defaultdict(list)
    for summary in summaries:
        groups[(summary.batch_size, summary.base_lr, summary.precision)].append(summary)
    stats = []
    for (batch_size, base_lr, precision), members in sorted(groups.items()):
        mean, std, spread = {}, {}, {}
        for key in NUMERIC_FIELDS:
            values = np.array([getattr(m, key) for m in members], dtype=float)
            finite = values[np.isfinite(values)]
            mean[key] = float(finite.mean()) if len(finite) else NAN
            std[key] = float(finite.std(ddof=1)) if len(finite) > 1 else 0.0 if len(finite) else NAN
            spread[key] = float(finite.max() - finite.min()) if len(finite) > 1 else NAN
        statuses: dict[str, int] = {}
        for member in members:
            statuses[member.status] = statuses.get(member.status, 0) + 1
        stats.append(BatchSizeStats(
            batch_size=batch_size, base_lr=base_lr, trials=len(members),
            completed=statuses.get(schema.COMPLETED, 0), mean=mean, std=std, spread=spread,
            reached_target=sum(math.isfinite(m.steps_to_target) for m in members), statuses=statuses,
            precision=precision))
    return stats


def precision_lines(summaries: list[TrialSummary]) -> list[str]:
    """Throughput, step memory and best validation accuracy of each precision, over every trial trained with it,
    for a sweep that crosses precisions (none otherwise): the comparison sweep.precisions is for."""
    precisions = sorted({summary.precision for summary in summaries})
    if len(precisions) < 2:
        return []
    lines = ["By precision (mean over its trials; - where none measured it):"]
    for precision in precisions:
        members = [summary for summary in summaries if summary.precision == precision]
        shown = []
        for key, words, fmt, scale in (("samples_per_s", "{} samples/s", "{:.0f}", 1),
                                       ("step_memory_bytes", "step memory {} MiB", "{:.3g}", 2**20),
                                       ("best_val_accuracy", "best val acc {}", "{:.4f}", 1)):
            values = np.array([getattr(m, key) for m in members], dtype=float)
            finite = values[np.isfinite(values)]
            shown.append(words.format(fmt.format(float(finite.mean()) / scale) if len(finite) else "-"))
        lines.append(f"  {precision or 'unknown'}: {len(members)} trial{'s' if len(members) != 1 else ''}, "
                     + ", ".join(shown))
    return lines
