"""Steps, examples and training time to a target validation accuracy: per trial, and per batch size "tuned" over a
learning-rate grid (Shallue et al. 2019).

Per trial: the first evaluation at or above the target, interpolated in log-steps between it and the evaluation
before it (accuracy taken as linear in log-steps between two evaluations). A trial that never reaches the target
is censored: it has no number, never a made-up one. Evaluations are the trial's eval/ group (the schedule in
examples seen) with the end of each epoch; files without the group fall back to the epoch rows alone, and then the
first epoch that reached the target counts, without interpolation (their resolution is one epoch, as it always
was).

Per batch size, tuned: at each learning rate the median over seeds (a censored seed counts as never, so a median
over mostly censored seeds is censored), then the learning rate with the fewest steps.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from engine import schema
from engine.runfile import TrialData

EVAL_SOURCE, EPOCH_SOURCE = "eval", "epoch"


@dataclass(frozen=True)
class Crossing:
    """When one trial first reached the target. NaN numbers and censored=True when it never did."""
    steps: float
    samples: float
    time_s: float
    censored: bool
    source: str            # EVAL_SOURCE or EPOCH_SOURCE: which evaluations it was read from


def evaluations(trial: TrialData) -> tuple[dict[str, np.ndarray], str]:
    """The trial's evaluations (step, samples, wall_time_s, val_loss, val_accuracy) in step order: the schedule's
    and the end of each epoch's together when it has a schedule, else its epoch rows alone.

    An epoch's end is a full validation pass too; leaving it out would call a trial that reached the target at
    its last epoch, after the last scheduled point, censored while its best accuracy says it got there."""
    if not len(trial.eval["step"]):
        return trial.epoch, EPOCH_SOURCE
    keys = [m.name for m in schema.EVAL_METRICS]
    scheduled = {key: np.asarray(trial.eval[key]) for key in keys}
    epochs = {key: np.asarray(trial.epoch[key]) for key in keys}
    # Where an epoch ended at a scheduled point, both are the same pass: keep the scheduled one.
    extra = ~np.isin(epochs["step"], scheduled["step"])
    merged = {key: np.concatenate([scheduled[key], epochs[key][extra]]) for key in keys}
    order = np.argsort(merged["step"], kind="stable")
    return {key: values[order] for key, values in merged.items()}, EVAL_SOURCE


def first_crossing(steps: np.ndarray, wall_time_s: np.ndarray, accuracy: np.ndarray, target: float,
                   interpolate: bool = True) -> tuple[float, float] | None:
    """(steps, seconds) at which `accuracy` first reaches `target`, or None when it never does. With
    `interpolate`, between the evaluation that reached it and the one before, linearly in log(steps)."""
    reached = np.flatnonzero(np.asarray(accuracy) >= target)
    if not len(reached):
        return None
    at = int(reached[0])
    if at == 0 or not interpolate:
        return float(steps[at]), float(wall_time_s[at])
    before_accuracy, after_accuracy = float(accuracy[at - 1]), float(accuracy[at])
    fraction = (target - before_accuracy) / (after_accuracy - before_accuracy) if after_accuracy > before_accuracy \
        else 1.0
    if not math.isfinite(fraction) or fraction >= 1:   # at the evaluation itself (or the one before was NaN)
        return float(steps[at]), float(wall_time_s[at])
    log_before, log_after = math.log(steps[at - 1]), math.log(steps[at])
    return (math.exp(log_before + fraction * (log_after - log_before)),
            float(wall_time_s[at - 1] + fraction * (wall_time_s[at] - wall_time_s[at - 1])))


def crossing(trial: TrialData, target: float | None) -> Crossing:
    if target is None:
        return Crossing(math.nan, math.nan, math.nan, True, EVAL_SOURCE)
    columns, source = evaluations(trial)
    found = first_crossing(columns["step"], columns["wall_time_s"], columns["val_accuracy"], target,
                           interpolate=source == EVAL_SOURCE)
    if found is None:
        return Crossing(math.nan, math.nan, math.nan, True, source)
    steps, seconds = found
    return Crossing(steps, steps * trial.batch_size, seconds, False, source)


@dataclass(frozen=True)
class TunedPoint:
    """One batch size's steps to target at its best learning rate (medians over that rate's seeds)."""
    batch_size: int
    base_lr: float             # the best learning rate; NaN when no rate reached the target
    steps: float               # NaN when censored
    samples: float
    time_s: float
    seeds_reached: int         # at the best rate
    seeds: int
    rates_tried: int
    per_seed_steps: tuple[float, ...]    # at the best rate, inf for a censored seed (for the bootstrap)

    @property
    def censored(self) -> bool:
        return not math.isfinite(self.steps)


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.inf


# Trials that ended without a result of their own: not a seed that missed the target, no seed at all.
NO_RESULT_STATUSES = (schema.OUT_OF_MEMORY, schema.FAILED)


def tuned(trials: list[TrialData], target: float | None) -> list[TunedPoint]:
    """Per batch size, the best learning rate's median steps to target (and its samples and time), ordered by
    batch size. Trials that ended without a result (out of memory, failed) are left out; a diverged or pruned
    trial is a seed that did not reach the target."""
    by_size: dict[int, dict[float, list[tuple[Crossing, TrialData]]]] = defaultdict(lambda: defaultdict(list))
    for trial in trials:
        if trial.status not in NO_RESULT_STATUSES:
            by_size[trial.batch_size][trial.base_lr].append((crossing(trial, target), trial))
    points = []
    for batch_size, rates in sorted(by_size.items()):
        best = None
        for base_lr, seeds in sorted(rates.items()):
            steps = [c.steps if not c.censored else math.inf for c, _ in seeds]
            median = _median(steps)
            if best is None or median < best[0]:
                best = (median, base_lr, seeds)
        median, base_lr, seeds = best
        reached = [c for c, _ in seeds if not c.censored]
        if math.isfinite(median):
            samples = _median([c.samples if not c.censored else math.inf for c, _ in seeds])
            time_s = _median([c.time_s if not c.censored else math.inf for c, _ in seeds])
        else:
            samples = time_s = math.nan
        points.append(TunedPoint(batch_size=batch_size, base_lr=base_lr if math.isfinite(median) else math.nan,
                                 steps=median if math.isfinite(median) else math.nan, samples=samples,
                                 time_s=time_s, seeds_reached=len(reached), seeds=len(seeds),
                                 rates_tried=len(rates),
                                 per_seed_steps=tuple(c.steps if not c.censored else math.inf for c, _ in seeds)))
    return points


def per_rate_seed_steps(trials: list[TrialData], target: float) -> dict[int, dict[float, list[float]]]:
    """{batch size: {base lr: steps to target per seed (inf when censored)}}, for the bootstrap over seeds."""
    table: dict[int, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for trial in trials:
        if trial.status in NO_RESULT_STATUSES:
            continue
        found = crossing(trial, target)
        table[trial.batch_size][trial.base_lr].append(math.inf if found.censored else found.steps)
    return table
