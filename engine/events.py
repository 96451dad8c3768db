"""Event records the engine hands to its one observer callback (the command line's progress bar, the GUI's
worker). Plain frozen dataclasses: no Qt, cheap to pass across threads."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TrialSpec:
    """One trial of a sweep: what to train. `lr` is the learning rate after the scaling rule."""
    index: int
    name: str
    batch_size: int
    seed: int
    base_lr: float
    lr: float
    proposed_by: str = "grid"          # the strategy that proposed it (config sweep.strategy)
    search_point: int = -1             # a search's point number, shared by the point's seeds; -1 for a grid
    precision: str = ""                # sweep.precisions' value for it; "" trains with the config's train.precision


@dataclass(frozen=True)
class SweepStarted:
    run_path: str
    config_text: str                   # the validated config as TOML, as stored in the run file
    created: str                       # ISO 8601, as stored in the run file
    trials: tuple[TrialSpec, ...]      # the plan as known now; a search strategy may add more later
    total_samples: int                 # training samples over all planned trials, for progress and ETA
    device: str
    device_name: str
    train_size: int
    val_size: int
    num_classes: int | None = None              # the validation set's class balance (schema.CLASS_BALANCE_ATTRS)
    val_majority_fraction: float | None = None
    # The run file's environment attributes (schema.ENVIRONMENT_ATTRS), so that a live view reads what a
    # reopened file does (the device's memory for "will not fit", the threads, ...).
    environment: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialStarted:
    trial: TrialSpec
    steps_per_epoch: int
    total_steps: int
    total_samples: int
    parameter_count: int
    noise_scale_unavailable: str = ""  # why the noise scale asked for cannot be measured (schema.NOISE_UNAVAILABLE_ATTR)


@dataclass(frozen=True)
class StepsLogged:
    """Several optimizer steps at once: the engine batches them (a few per second at most)."""
    trial: TrialSpec
    step: np.ndarray
    samples: np.ndarray
    wall_time_s: np.ndarray
    loss: np.ndarray
    lr: np.ndarray
    grad_norm: np.ndarray
    epoch_fraction: float              # progress through the trial, 0..epochs (fractional)


@dataclass(frozen=True)
class EpochEnded:
    trial: TrialSpec
    metrics: dict[str, float]          # one value for each name in schema.EPOCH_METRICS


@dataclass(frozen=True)
class Evaluated:
    """One evaluation on the schedule in examples seen (schema.EVAL_METRICS): the one "evaluation finished" fact
    that the run file, the live views and anything that judges a trial while it trains (pruning) all hear."""
    trial: TrialSpec
    metrics: dict[str, float]          # one value for each name in schema.EVAL_METRICS


@dataclass(frozen=True)
class NoiseMeasured:
    """Gradient noise scale measurements since the last flush (schema.NOISE_METRICS), as columns."""
    trial: TrialSpec
    columns: dict[str, np.ndarray]     # one array for each name in schema.NOISE_METRICS


@dataclass(frozen=True)
class TelemetryMeasured:
    """Telemetry rows of a trial (schema.TELEMETRY_METRICS, as columns) sampled since the last such event: sent
    with its steps while it trains, and the rest when it ends. `unavailable` is as of the last row."""
    trial: TrialSpec
    columns: dict[str, np.ndarray]
    unavailable: str                   # why a source was not sampled, source by source ('' when all were)
    # schema.TRAINING_CLOCK_METRICS columns marked since the last such event: where the training clock stood on the
    # telemetry's clock. Empty where the trainer marks none.
    training_clock: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialMemoryMeasured:
    """The memory one step of a trial took (schema.TRIAL_MEMORY_ATTRS), measured on its second step
    (engine.hardware.step_memory: on CUDA the allocator's peak, on the CPU the tensors alive at once)."""
    trial: TrialSpec
    step_memory_bytes: float
    method: str                        # how it was measured, in words


@dataclass(frozen=True)
class TrialEnded:
    trial: TrialSpec
    status: str                        # one of schema.STATUSES
    error: str = ""


@dataclass(frozen=True)
class TrialScored:
    """A search trial's own value of the objective (NaN: none, e.g. a target never reached), once it ended."""
    trial: TrialSpec
    objective: float


@dataclass(frozen=True)
class RanksMeasured:
    """A data-parallel trial's rank count and how long its gradient all-reduces were in flight (they overlap the
    backward pass), sent just before its end (schema.RANK_ATTRS)."""
    trial: TrialSpec
    ranks: int
    communication_s: float


@dataclass(frozen=True)
class TrialExecution:
    """How a trial trained when sweep.ensemble asked (schema.EXECUTION_ATTR): in an ensemble with others, or alone
    and why; sent just after its TrialStarted."""
    trial: TrialSpec
    execution: str


@dataclass(frozen=True)
class SweepEnded:
    run_path: str
    status: str                        # completed, or cancelled when the stop flag ended it
    trial_statuses: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """Something to tell the user that is not a metric (dataset generated, device chosen, ...)."""
    text: str
    level: str = "info"                # info | warning


Event = (SweepStarted | TrialStarted | StepsLogged | EpochEnded | Evaluated | NoiseMeasured | TrialEnded | TrialScored
         | RanksMeasured | SweepEnded | Message | TrialMemoryMeasured
         | TelemetryMeasured)
