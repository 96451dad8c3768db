"""Energy to a target accuracy and GPU utilisation per trial, from its telemetry (engine.hardware.telemetry).

Energy to target is the energy counter read at the moment training first reached the target. The crossing is
known on the training clock (engine.science.targets.crossing: interpolated in log-steps between evaluations, its
time linearly between theirs), which leaves evaluation out; the counters are sampled on the telemetry clock, which
runs from the trial's start through setup and every evaluation. The trial's training_clock group maps one onto
the other: a mark each time steps were logged (just after a step) and each time an evaluation ended. The crossing's
training time is placed on the telemetry clock by linear interpolation between the marks around it, and each energy
counter (CPU packages, GPU) is interpolated linearly between the samples around that moment. So the figure holds
the evaluations and setup that happened before the crossing, as the energy bill does; a crossing read at an
evaluation itself (the first one, or a file's epoch rows) holds that evaluation too.

NaN with a reason where the file has no energy (no readable RAPL counter, no NVIDIA GPU), no training clock (files
written before it) or the trial never reached the target; never 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.events import EpochEnded, Evaluated, Event, StepsLogged
from engine.hardware.telemetry import energy_j
from engine.runfile import TrialData
from engine.science.targets import Crossing

NAN = math.nan
ENERGY_COLUMNS = ("cpu_energy_j", "gpu_energy_j")
NO_TELEMETRY = "no telemetry in this run file (written before it was recorded)"
NO_TRAINING_CLOCK = "no training clock for this trial (a file written before it was recorded)"
NOT_REACHED = "the target was not reached"


def training_clock_at(event: Event) -> float | None:
    """Where the training clock stands when this event is sent, for the marks of schema.TRAINING_CLOCK_GROUP: after
    logged steps, their last step's time; after an evaluation (scheduled or at an epoch's end), the time it was
    taken at, which the evaluation did not advance. None for other events."""
    if isinstance(event, StepsLogged):
        return float(event.wall_time_s[-1]) if len(event.wall_time_s) else None
    if isinstance(event, (Evaluated, EpochEnded)):
        return float(event.metrics["wall_time_s"])
    return None


def telemetry_time_at(clock: dict[str, np.ndarray], training_time_s: float) -> float:
    """The telemetry-clock moment at which the training clock first reached `training_time_s`: between the marks
    around it, linearly; before the first mark, training is taken to have run up to it without a pause (no
    evaluation comes before the first steps are logged). NaN past the last mark."""
    times, training = np.asarray(clock["time_s"], np.float64), np.asarray(clock["training_time_s"], np.float64)
    reached = np.flatnonzero(training >= training_time_s)
    if not len(reached):
        return NAN
    at = int(reached[0])
    if at == 0:
        return max(0.0, float(times[0] - (training[0] - training_time_s)))
    fraction = (training_time_s - training[at - 1]) / (training[at] - training[at - 1])
    return float(times[at - 1] + fraction * (times[at] - times[at - 1]))


def energy_at(telemetry: dict[str, np.ndarray], time_s: float) -> float:
    """CPU packages and GPU energy since the trial started at a telemetry-clock moment, each counter interpolated
    linearly between its samples; NaN when no counter was read."""
    total, measured = 0.0, False
    for key in ENERGY_COLUMNS:
        values = np.asarray(telemetry.get(key, ()), np.float64)
        finite = np.isfinite(values)
        if finite.any():
            total += float(np.interp(time_s, np.asarray(telemetry["time_s"], np.float64)[finite], values[finite]))
            measured = True
    return total if measured else NAN


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
    if not len(trial.training_clock.get("time_s", ())):
        return TrialEnergy(total, per_example, NAN, NO_TRAINING_CLOCK)
    moment = telemetry_time_at(trial.training_clock, found.time_s)
    if not math.isfinite(moment):
        return TrialEnergy(total, per_example, NAN, "the crossing lies past the trial's last training-clock mark")
    return TrialEnergy(total, per_example, energy_at(trial.telemetry, moment), "")


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
                                          else "not reached" if s.energy_unavailable == NOT_REACHED
                                          else f"unavailable ({s.energy_unavailable})")
             for s in summaries]
    return f"Energy to target ({target:.1%}; the energy counters when training first reached it): " + ", ".join(parts)
