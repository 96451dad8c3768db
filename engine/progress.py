"""How far a sweep has come and how long the rest will take, from the engine's events and a clock.

The estimate is built from what this sweep has measured, not from samples: a small batch size costs more
time per sample than a large one (each step has a fixed cost), so "a quarter of the samples" can be most of
the time. Each trial's time is modelled as

    setup + steps × step_time(batch size) + epochs × evaluation time per epoch

- steps and epochs per trial come from the config's budget (an epochs budget: the same epochs, fewer steps for
  larger batches; a samples budget: the same samples, so steps fall as 1 / batch size), replaced by the
  engine's own count once a trial starts.
- step_time is measured for every batch size already trained: the trial's speed over its last
  RECENT_WINDOW_S of training. The machine's speed drifts as other programs come and go, and the next trial
  runs at the speed the machine has now, not the one it had a minute ago. (In the equal-samples-budget
  recording the first trial ran at 0.7 ms per step for two seconds and 1.2 for the rest; the next trials kept
  the slower pace. Averaged over its whole 3.6 s, the first trial predicted the rest 31% too short.)
- For batch sizes not yet trained, step_time is interpolated on a log-log scale between measured sizes and,
  beyond them, extrapolated along a power law from the nearest measured size, with an exponent between 0 (a
  fixed cost per step) and 1 (a cost per sample): the slope fitted through all measured sizes, and upwards at
  least the slope between the two largest, because the cost per sample takes over as batches grow (the curve
  bends up on a log-log scale). A power law and not a fitted "fixed + per-sample" line, because the line's
  slope comes from small differences of noisy measurements and multiplies into the largest sizes (tried:
  errors up to 170% on the recordings once two sizes had trained, against 30% with the power law). While only
  one size has trained nothing tells how the cost splits, so ONE_SIZE_EXPONENT, a typical measured value,
  stands in.
- Evaluation time per epoch (the same for every batch size: a fixed evaluation set and batch) and set-up time
  per trial are measured from the gaps between the engine's clock of training time and the wall clock.

Every finished report, epoch and trial refines the estimate. The clock is injected, so the model is tested by
replaying recorded sweeps (tests/progress_recordings.py) without waiting. What it cannot foresee: a change of
load after the estimate was made, and how much faster than the power law the largest batches grow (their
cost per sample takes over); both are measured once those trials run.
"""
from __future__ import annotations

import dataclasses
import math
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import singledispatchmethod

from engine import schema
from engine.config import TrainConfig
from engine.events import (EpochEnded, Message, StepsLogged, SweepEnded, SweepStarted, TrialEnded, TrialSpec,
                           TrialStarted)
from engine.train import total_steps

# How seconds per step grow with the batch size (t ∝ batch size ** exponent) while only one size has trained.
# Small batches are mostly a fixed cost per step (exponent near 0), large ones mostly a cost per sample (near
# 1); from the smallest to the next size in the recorded presets (MLP, CNN, GRU, batch norm; CPU) it was 0.05
# to 0.47, mean 0.24. The sizes measured next replace it.
ONE_SIZE_EXPONENT = 0.25

PREPARING = "preparing"     # Run pressed, data loading: nothing to measure yet
TRAINING = "training"
ENDED = "ended"
IDLE = "idle"

# A trial's speed is taken over the last this many seconds of its training (or all of it when shorter): the
# recent past predicts the next minutes best, as other programs come and go and the first steps warm up.
# Two seconds are ~20 progress reports, enough to average out single slow steps, and short enough to follow a
# change of load within the first trial (5 s averaged the equal-samples-budget preset's whole first trial).
RECENT_WINDOW_S = 2.0


@dataclass
class _TrialPlan:
    spec: TrialSpec
    steps: int                      # planned optimizer steps
    epochs: int


@dataclass
class _Measured:
    """Training time and steps of one trial so far, and the recent part of its step log."""
    batch_size: int
    steps: int = 0
    train_s: float = 0.0
    recent: list[tuple[int, float]] = dataclasses.field(default_factory=list)   # (step, training time)


class SweepProgress:
    """Progress and time left of one sweep. Feed every engine event to `apply`, in order, as it arrives."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.phase = IDLE
        self.activity = ""              # what is happening, in words, while there is no number to show
        self.status = ""                # the sweep's final status once it ended
        self.planned: tuple[TrialSpec, ...] = ()
        self.current: TrialSpec | None = None
        self.trial_total_steps = 0
        self.trial_steps_done = 0
        self.trial_samples_seen = 0
        self.trial_epochs: float | None = None
        self.trial_epoch_fraction = 0.0
        self._plans: dict[str, _TrialPlan] = {}
        self._train_config: TrainConfig | None = None
        self._train_size = 0
        self._ended: set[str] = set()
        self._measured: dict[str, _Measured] = {}
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._last_boundary_at = 0.0        # the wall clock at the last trial end (or the sweep's start)
        self._last_epoch_at = 0.0
        self._last_epoch_train_s = 0.0
        self._setup_s: list[float] = []
        self._eval_s = 0.0
        self._eval_epochs = 0

    # --- feeding ---------------------------------------------------------------------------------------
    def start(self, activity: str = "Preparing…") -> None:
        """Run was pressed: the clock starts, and until the first trial trains this says what is going on."""
        self.__init__(self._clock)
        self._started_at = self._clock()
        self.phase = PREPARING
        self.activity = activity

    @singledispatchmethod
    def apply(self, event) -> None:
        """Fold one engine event in."""

    @apply.register
    def _sweep_started(self, event: SweepStarted) -> None:
        if self._started_at is None:
            self._started_at = self._clock()
        self.phase = TRAINING
        self.activity = "Building the first model…"
        self.planned = event.trials
        self._train_size = event.train_size
        self._train_config = _train_config(event.config_text)
        self._plans = {spec.name: self._plan(spec) for spec in event.trials}
        self._last_boundary_at = self._clock()

    @apply.register
    def _trial_started(self, event: TrialStarted) -> None:
        now = self._clock()
        spec = event.trial
        self._setup_s.append(now - self._last_boundary_at)
        self.current = spec
        epochs = math.ceil(event.total_steps / event.steps_per_epoch) if event.steps_per_epoch else 1
        self._plans[spec.name] = _TrialPlan(spec, event.total_steps, epochs)
        if spec not in self.planned:
            self.planned = self.planned + (spec,)
        self._measured[spec.name] = _Measured(spec.batch_size)
        self.trial_total_steps = event.total_steps
        self.trial_steps_done = self.trial_samples_seen = 0
        self.trial_epochs = (event.total_steps / event.steps_per_epoch) if event.steps_per_epoch else None
        self.trial_epoch_fraction = 0.0
        self._last_epoch_at = now
        self._last_epoch_train_s = 0.0
        self.activity = ""

    @apply.register
    def _steps_logged(self, event: StepsLogged) -> None:
        if not len(event.step):
            return
        measured = self._measured.setdefault(event.trial.name, _Measured(event.trial.batch_size))
        measured.steps, measured.train_s = int(event.step[-1]), float(event.wall_time_s[-1])
        measured.recent.append((measured.steps, measured.train_s))
        while len(measured.recent) > 2 and measured.train_s - measured.recent[1][1] >= RECENT_WINDOW_S:
            measured.recent.pop(0)
        self.trial_steps_done = measured.steps
        self.trial_samples_seen = int(event.samples[-1])
        self.trial_epoch_fraction = event.epoch_fraction

    @apply.register
    def _epoch_ended(self, event: EpochEnded) -> None:
        now = self._clock()
        train_s = float(event.metrics["wall_time_s"])
        # What the wall clock spent beyond training since the last epoch: evaluation, mostly.
        self._eval_s += max(0.0, (now - self._last_epoch_at) - (train_s - self._last_epoch_train_s))
        self._eval_epochs += 1
        self._last_epoch_at, self._last_epoch_train_s = now, train_s

    @apply.register
    def _trial_ended(self, event: TrialEnded) -> None:
        self._ended.add(event.trial.name)
        self._last_boundary_at = self._clock()
        if self.current == event.trial:
            self.current = None
            self.trial_steps_done = self.trial_samples_seen = self.trial_total_steps = 0

    @apply.register
    def _sweep_ended(self, event: SweepEnded) -> None:
        self.phase = ENDED
        self.status = event.status
        self.activity = ""
        self._ended_at = self._clock()

    @apply.register
    def _message(self, event: Message) -> None:
        if self.phase == PREPARING:
            self.activity = event.text

    # --- reading ---------------------------------------------------------------------------------------
    @property
    def trial_count(self) -> int:
        return len(self.planned)

    def trials_ended(self) -> int:
        return len(self._ended)

    def elapsed_s(self) -> float:
        """Seconds since Run was pressed (until the sweep ended)."""
        if self._started_at is None:
            return math.nan
        return (self._ended_at if self._ended_at is not None else self._clock()) - self._started_at

    def trial_fraction(self) -> float:
        if not self.trial_total_steps:
            return 0.0
        return min(1.0, self.trial_steps_done / self.trial_total_steps)

    def eta_s(self) -> float | None:
        """Seconds the rest of the sweep will take; None until one trial has trained long enough to tell."""
        if self.phase != TRAINING:
            return None
        rates = self._step_times()
        if not rates:
            return None
        remaining = 0.0
        for name, plan in self._plans.items():
            if name in self._ended:
                continue
            remaining += self._remaining_s(name, plan, rates)
        return max(0.0, remaining)

    def sweep_fraction(self) -> float | None:
        """The share of the sweep's time already spent; None while there is no estimate (show a busy bar)."""
        if self.phase == ENDED:
            return 1.0 if self.status == schema.COMPLETED else None
        eta = self.eta_s()
        if eta is None:
            return None
        elapsed = self.elapsed_s()
        return elapsed / (elapsed + eta) if elapsed + eta > 0 else 0.0

    def planned_steps(self) -> dict[str, int]:
        """Optimizer steps of every trial by name: from the config's budget, or the engine's once started."""
        return {name: plan.steps for name, plan in self._plans.items()}

    def step_time_s(self, batch_size: int) -> float | None:
        """Estimated training seconds per optimizer step at this batch size (measured, or fitted)."""
        return _predict(self._step_times(), batch_size)

    # --- estimating ------------------------------------------------------------------------------------
    def _plan(self, spec: TrialSpec) -> _TrialPlan:
        steps_per_epoch = max(1, self._train_size // spec.batch_size)
        if self._train_config is not None:
            steps = total_steps(self._train_config, steps_per_epoch, spec.batch_size)
        else:
            steps = steps_per_epoch
        return _TrialPlan(spec, steps, math.ceil(steps / steps_per_epoch))

    def _step_times(self) -> dict[int, float]:
        """Measured seconds per step by batch size: each trial's recent speed, averaged over the trials of
        that size. Recent rather than whole-trial, because the first steps include warming up and the
        machine's load changes while a sweep runs; the latest speed predicts the next minutes best."""
        found: dict[int, list[float]] = {}
        for name, measured in self._measured.items():
            # Until its second report a running trial's only figure includes its first, slow steps.
            if len(measured.recent) < 2 and name not in self._ended:
                continue
            step_time = _recent_step_time(measured)
            if step_time:
                found.setdefault(measured.batch_size, []).append(step_time)
        return {batch_size: sum(times) / len(times) for batch_size, times in found.items()}

    def _eval_per_epoch_s(self) -> float:
        return self._eval_s / self._eval_epochs if self._eval_epochs else 0.0

    def _setup_per_trial_s(self) -> float:
        # The first trial's set-up also warms the framework up (seconds, where a later one takes milliseconds),
        # so only later ones tell what the rest will cost.
        later = self._setup_s[1:]
        return sum(later) / len(later) if later else 0.0

    def _remaining_s(self, name: str, plan: _TrialPlan, rates: dict[int, float]) -> float:
        eval_s = self._eval_per_epoch_s()
        measured = self._measured.get(name)
        if measured is None:        # not started
            step_time = _predict(rates, plan.spec.batch_size) or 0.0
            return self._setup_per_trial_s() + plan.steps * step_time + plan.epochs * eval_s
        own = _recent_step_time(measured) if len(measured.recent) >= 2 else None
        step_time = own or _predict(rates, plan.spec.batch_size) or 0.0
        steps_left = max(0, plan.steps - measured.steps)
        epochs_done = self._eval_epochs_in_trial(plan, measured)
        return steps_left * step_time + max(0, plan.epochs - epochs_done) * eval_s

    @staticmethod
    def _eval_epochs_in_trial(plan: _TrialPlan, measured: _Measured) -> int:
        steps_per_epoch = plan.steps / plan.epochs if plan.epochs else plan.steps
        return int(measured.steps // steps_per_epoch) if steps_per_epoch else 0


def _recent_step_time(measured: _Measured) -> float | None:
    if len(measured.recent) >= 2:
        (first_step, first_s), (last_step, last_s) = measured.recent[0], measured.recent[-1]
        if last_step > first_step and last_s > first_s:
            return (last_s - first_s) / (last_step - first_step)
    return measured.train_s / measured.steps if measured.steps else None


def _predict(rates: dict[int, float], batch_size: int) -> float | None:
    """Seconds per step at `batch_size`: measured when it was; between measured sizes, interpolated on a
    log-log scale; beyond them, from the nearest measured size along a power law (see the module docstring),
    with an exponent between 0 (a fixed cost per step) and 1 (a cost per sample). One measured size alone
    cannot say how the cost splits: it then follows ONE_SIZE_EXPONENT until a second size has trained."""
    if not rates:
        return None
    if batch_size in rates:
        return rates[batch_size]
    points = sorted((math.log(size), math.log(seconds)) for size, seconds in rates.items() if seconds > 0)
    x = math.log(batch_size)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 < x < x1:
            return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    if x < points[0][0]:
        return math.exp(points[0][1] + _exponent(points) * (x - points[0][0]))
    # Upwards, cost per step grows faster the larger the batch (from mostly fixed per step to mostly per
    # sample): at least as steep as between the two largest sizes, and than the one-size assumption.
    exponent = max(_exponent(points), _exponent(points[-2:]), ONE_SIZE_EXPONENT)
    return math.exp(points[-1][1] + exponent * (x - points[-1][0]))


def _exponent(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of log(seconds per step) over log(batch size), kept within [0, 1]."""
    if len(points) < 2:
        return ONE_SIZE_EXPONENT
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0
    return min(1.0, max(0.0, slope))


def _train_config(config_text: str) -> TrainConfig | None:
    """The [train] table of the stored config, for each planned trial's step budget; None if unreadable."""
    try:
        table = tomllib.loads(config_text).get("train", {})
        names = {field.name for field in dataclasses.fields(TrainConfig)}
        return TrainConfig(**{key: value for key, value in table.items() if key in names})
    except (tomllib.TOMLDecodeError, TypeError, AttributeError):
        return None
