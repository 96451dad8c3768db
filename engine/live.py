"""A run being trained, held in memory as the same RunData a run file reads back into.

The GUI feeds every engine event to `LiveRun.apply` (on its own thread) and draws from `LiveRun.run`, so a
run opened from disk shows exactly what it showed live: both are RunData.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np

from engine import schema
from engine.events import TelemetryMeasured, TrialExecution, TrialMemoryMeasured, TrialScored
from engine.events import (EpochEnded, Evaluated, Event, NoiseMeasured, RanksMeasured, StepsLogged, SweepEnded,
                           SweepStarted, TrialEnded, TrialSpec, TrialStarted)
from engine.runfile import RunData, RunHeader, TrialData


class _Columns:
    """Append-only columns with amortized O(1) growth; `views()` are the filled parts."""

    def __init__(self, metrics: tuple[schema.Metric, ...]):
        self._metrics = metrics
        self._data = {m.name: np.empty(256, dtype=m.dtype) for m in metrics}
        self.length = 0

    def append(self, columns: dict[str, np.ndarray | float]) -> None:
        rows = len(np.atleast_1d(columns[self._metrics[0].name]))
        needed = self.length + rows
        capacity = len(next(iter(self._data.values())))
        if needed > capacity:
            capacity = max(needed, capacity * 2)
            for name, old in self._data.items():
                grown = np.empty(capacity, dtype=old.dtype)
                grown[:self.length] = old[:self.length]
                self._data[name] = grown
        for name, array in self._data.items():
            array[self.length:needed] = columns[name]
        self.length = needed

    def views(self) -> dict[str, np.ndarray]:
        return {name: array[:self.length] for name, array in self._data.items()}


class LiveRun:
    def __init__(self) -> None:
        self.run: RunData | None = None
        self._trials: dict[str, TrialData] = {}
        self._columns: dict[tuple[str, str], _Columns] = {}
        self._config_precision = ""   # the running config's train.precision, for trials that cross no precisions

    def apply(self, event: Event) -> set[str]:
        """Fold one event into the run; returns the names of trials whose data changed."""
        if isinstance(event, SweepStarted):
            self._start(event)
            return set()
        if self.run is None:
            return set()
        if isinstance(event, TrialStarted):
            trial = self._new_trial(event.trial, event.parameter_count, event.steps_per_epoch)
            trial.noise_scale_unavailable = event.noise_scale_unavailable
            return {trial.name}
        if isinstance(event, StepsLogged):
            self._append(event.trial.name, schema.STEP_GROUP, {m.name: getattr(event, m.name)
                                                               for m in schema.STEP_METRICS})
            return {event.trial.name}
        if isinstance(event, EpochEnded):
            self._append(event.trial.name, schema.EPOCH_GROUP, event.metrics)
            return {event.trial.name}
        if isinstance(event, Evaluated):
            self._append(event.trial.name, schema.EVAL_GROUP, event.metrics)
            return {event.trial.name}
        if isinstance(event, NoiseMeasured):
            self._append(event.trial.name, schema.NOISE_GROUP, event.columns)
            return {event.trial.name}
        if isinstance(event, RanksMeasured):
            trial = self._trials[event.trial.name]
            trial.ranks, trial.communication_s = event.ranks, event.communication_s
            return {trial.name}
        if isinstance(event, TrialExecution):
            self._trials[event.trial.name].execution = event.execution
            return {event.trial.name}
        if isinstance(event, TelemetryMeasured):
            self._append(event.trial.name, schema.TELEMETRY_GROUP, event.columns)
            if event.training_clock:
                self._append(event.trial.name, schema.TRAINING_CLOCK_GROUP, event.training_clock)
            self._trials[event.trial.name].telemetry_unavailable = event.unavailable
            return {event.trial.name}
        if isinstance(event, TrialMemoryMeasured):
            trial = self._trials[event.trial.name]
            trial.step_memory_bytes, trial.step_memory_method = event.step_memory_bytes, event.method
            return {event.trial.name}
        if isinstance(event, TrialScored):
            self._trials[event.trial.name].objective = event.objective
            return {event.trial.name}
        if isinstance(event, TrialEnded):
            trial = self._trials[event.trial.name]
            trial.status, trial.error = event.status, event.error
            if event.status == schema.PRUNED:
                # As the writer records it: the step of the last evaluation, the one the pruner stopped it at.
                rows = trial.eval if len(trial.eval["step"]) else trial.epoch
                trial.pruned_step = int(rows["step"][-1]) if len(rows["step"]) else -1
            self._refresh_header()
            return {trial.name}
        if isinstance(event, SweepEnded):
            self.run.header.status = event.status
        return set()

    def _start(self, event: SweepStarted) -> None:
        config = tomllib.loads(event.config_text)
        self._config_precision = config.get("train", {}).get("precision", "fp32")
        header = RunHeader(path=Path(event.run_path), name=config.get("name", ""), created=event.created,
                           status=schema.RUNNING, dataset=config["data"]["dataset"],
                           model=config["model"]["kind"], batch_sizes=sorted({t.batch_size for t in event.trials}),
                           trial_count=0, trial_statuses={}, device_name=event.device_name)
        self.run = RunData(path=Path(event.run_path), header=header, config_text=event.config_text,
                           environment={**event.environment, "device": event.device,
                                        "device_name": event.device_name}, trials=[],
                           num_classes=event.num_classes, val_majority_fraction=event.val_majority_fraction)
        self._trials.clear()
        self._columns.clear()

    def _new_trial(self, spec: TrialSpec, parameter_count: int, steps_per_epoch: int) -> TrialData:
        for group, metrics in schema.TRIAL_GROUPS.items():
            self._columns[(spec.name, group)] = _Columns(metrics)
        trial = TrialData(name=spec.name, batch_size=spec.batch_size, seed=spec.seed, lr=spec.lr,
                          base_lr=spec.base_lr, status=schema.RUNNING, error="", parameter_count=parameter_count,
                          steps_per_epoch=steps_per_epoch,
                          epoch=self._columns[(spec.name, schema.EPOCH_GROUP)].views(),
                          step=self._columns[(spec.name, schema.STEP_GROUP)].views(),
                          eval=self._columns[(spec.name, schema.EVAL_GROUP)].views(),
                          noise=self._columns[(spec.name, schema.NOISE_GROUP)].views(),
                          proposed_by=spec.proposed_by, search_point=spec.search_point,
                          precision=spec.precision or self._config_precision)
        self._trials[spec.name] = trial
        self.run.trials.append(trial)
        self.run.trials.sort(key=lambda t: (t.batch_size, t.base_lr, t.precision, t.seed))
        self._refresh_header()
        return trial

    def _append(self, name: str, group: str, columns: dict) -> None:
        store = self._columns[(name, group)]
        store.append(columns)
        setattr(self._trials[name], group, store.views())

    def _refresh_header(self) -> None:
        statuses: dict[str, int] = {}
        for trial in self.run.trials:
            statuses[trial.status] = statuses.get(trial.status, 0) + 1
        self.run.header.trial_count = len(self.run.trials)
        self.run.header.trial_statuses = statuses
