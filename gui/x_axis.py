"""The x axis of the live plots, without Qt: the four ways to measure a trial's progress, where each of its points
lies on them, and how a range seen in one of them translates into another.

All four grow together along a trial (a later step has seen more samples and taken more time), so a point of a
trial can be located in any of them: that is what keeps a zoom when the user switches the x axis.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from engine import schema
from engine.runfile import TrialData

X_AXES: tuple[str, ...] = ("epoch", "step", "samples", "wall_time_s")


def steps_per_epoch(trial: TrialData) -> int:
    """From the trial's attribute, or from its first epoch when an older file lacks it."""
    if trial.steps_per_epoch > 0:
        return trial.steps_per_epoch
    if len(trial.epoch["epoch"]):
        return max(1, int(trial.epoch["step"][0] / max(trial.epoch["epoch"][0], 1)))
    return 1


def x_values(trial: TrialData, group: str, key: str) -> np.ndarray:
    """The x of each point of a trial's per-epoch, per-step or noise-scale columns (`group`) on the x axis `key`;
    per-step points on the epoch axis fall between epochs (step 150 of 100 a epoch is epoch 1.5)."""
    if key not in X_AXES:
        raise ValueError(f"unknown x axis {key!r}; one of {', '.join(X_AXES)}")
    if group == schema.EPOCH_GROUP:
        return trial.epoch[key]
    columns = trial.noise if group == schema.NOISE_GROUP else trial.step
    if key == "epoch":
        return columns["step"] / steps_per_epoch(trial)
    return columns[key]


def _trace(trial: TrialData, key: str) -> np.ndarray:
    """The trial's progress on `key`, per step where steps were logged, else per epoch."""
    group = schema.STEP_GROUP if len(trial.step["step"]) else schema.EPOCH_GROUP
    return np.asarray(x_values(trial, group, key), dtype=np.float64)


def _extent(xs: np.ndarray, positive: bool) -> tuple[float, float] | None:
    """First and last x of a trial's points, which grow along the trial (so this costs nothing on 100,000 steps);
    the finite minimum and maximum where an end is not finite."""
    if positive:
        xs = xs[np.searchsorted(xs, 0.0, side="right"):]
    if not len(xs):
        return None
    low, high = float(xs[0]), float(xs[-1])
    if np.isfinite(low) and np.isfinite(high):
        return low, high
    finite = xs[np.isfinite(xs)]
    return (float(finite.min()), float(finite.max())) if len(finite) else None


def data_range(trials: Iterable[TrialData], key: str, positive: bool = False) -> tuple[float, float] | None:
    """The smallest and largest x of every point of these trials on `key` (only x > 0 with `positive`, as a log
    axis needs); None when there is no such point."""
    low, high = np.inf, -np.inf
    for trial in trials:
        for group in (schema.EPOCH_GROUP, schema.STEP_GROUP):
            if key == "epoch" and group == schema.STEP_GROUP:     # no division of every step for two numbers
                per_epoch = steps_per_epoch(trial)
                extent = _extent(trial.step["step"] / per_epoch if positive else trial.step["step"], positive)
                if extent is not None and not positive:
                    extent = (extent[0] / per_epoch, extent[1] / per_epoch)
            else:
                extent = _extent(np.asarray(x_values(trial, group, key)), positive)
            if extent is not None:
                low, high = min(low, extent[0]), max(high, extent[1])
    return (low, high) if low <= high else None


def map_range(trials: Iterable[TrialData], old_key: str, new_key: str, low: float, high: float
              ) -> tuple[float, float] | None:
    """The range on `new_key` that shows what [low, high] on `old_key` showed: for each trial with points in
    [low, high], where those points lie on `new_key`, all trials together. None when no trial had points there
    (the user looked at an empty region, so there is nothing to keep)."""
    mapped_low, mapped_high = np.inf, -np.inf
    for trial in trials:
        old, new = _trace(trial, old_key), _trace(trial, new_key)
        finite = np.isfinite(old) & np.isfinite(new)
        old, new = old[finite], new[finite]
        if not len(old) or high < old[0] or low > old[-1]:
            continue
        start, end = np.interp([max(low, old[0]), min(high, old[-1])], old, new)
        mapped_low, mapped_high = min(mapped_low, float(start)), max(mapped_high, float(end))
    return (mapped_low, mapped_high) if mapped_low <= mapped_high else None
