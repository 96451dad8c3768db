"""Energy to a target accuracy and GPU utilisation per trial, from its telemetry (engine.hardware.telemetry).

Energy to target is the trial's measured energy per training example times the examples it needed to reach the
target (engine.science.targets.crossing, interpolated in log-steps between evaluations). The counter is not read at
the crossing itself: the telemetry clock runs from the trial's start through its setup and every evaluation, while
the crossing is known on the training clock, which leaves evaluation out, and the file holds no map between the two.
Spreading the trial's whole energy over its examples charges each example its share of setup and evaluation, the
same way `energy_per_example_j` does, so the two figures agree: energy to target = energy per example × examples to
target, exactly.

Both are NaN with a reason where the file has no energy (no readable RAPL counter, no NVIDIA GPU) or the trial never
reached the target; never 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.hardware.telemetry import energy_j
from engine.runfile import TrialData
from engine.science.targets import Crossing

NAN = math.nan
NO_TELEMETRY = "no telemetry in this run file (written before it was recorded)"
NOT_REACHED = "the target was not reached"


@dataclass(frozen=True)
class TrialEnergy:
    """A trial's energy in joules: in all, per training example and to the target; `unavailable` says why a
    figure is NaN ('' when none is)."""
    total_j: float
    per_example_j: float
    to_target_j: float
    unavailable: str


def no_energy_reason(trial: TrialData) -> str:
    """Why a trial has no energy figure: its telemetry's reasons, or that the file has no telemetry."""
    if not len(trial.telemetry.get("time_s", ())):
        return NO_TELEMETRY
    return trial.telemetry_unavailable or "no energy counter answered during the trial"


def trial_energy(trial: TrialData, samples: float, found: Crossing) -> TrialEnergy:
    """The energy of a trial that trained on `samples` examples and reached the target at `found`."""
    total = energy_j(trial.telemetry)
    if not math.isfinite(total):
        return TrialEnergy(NAN, NAN, NAN, no_energy_reason(trial))
    per_example = total / samples if samples > 0 else NAN
    if found.censored:
        return TrialEnergy(total, per_example, NAN, NOT_REACHED)
    return TrialEnergy(total, per_example, per_example * found.samples, "")


def mean_gpu_utilization(trial: TrialData) -> float:
    """The trial's GPU utilisation in percent, averaged over its telemetry samples; NaN where no GPU was sampled."""
    values = np.asarray(trial.telemetry.get("gpu_utilization", ()), dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else NAN


def energy_to_target_text(summaries, target: float | None) -> str:
    """One line for `report`: each trial's energy to the target, or why there is none."""
    if target is None:
        return "Energy to target: unavailable (no target accuracy)"
    if not any(math.isfinite(s.energy_j) for s in summaries):
        return "Energy to target: unavailable (no energy measured, see above)"
    parts = [f"batch {s.batch_size}: " + (f"{s.energy_to_target_j:.3g} J" if math.isfinite(s.energy_to_target_j)
                                          else "not reached" if math.isfinite(s.energy_j) else "not measured")
             for s in summaries]
    return (f"Energy to target ({target:.1%}; energy per example × examples to target): " + ", ".join(parts))
