"""A sweep: a queue of trials fed by a search strategy, each trained in turn and written to one run file."""
from __future__ import annotations

import errno
import os
import platform
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from engine import __version__, schema
from engine.config import ExperimentConfig, check_batch_sizes
from engine.data import Dataset, load_dataset
from engine.devices import device_name, resolve_device
from engine.errors import ConfigError, RunWriteError
from engine.events import (EpochEnded, Evaluated, Event, Message, NoiseMeasured, StepsLogged, SweepEnded,
                           SweepStarted, TrialEnded, TrialSpec, TrialStarted)
from engine.hardware.threads import ThreadChoice, available_cores, sweep_threads, thread_policy
from engine.runfile import RunWriter
from engine.train import TrialContext, run_trial, scaled_lr, total_steps

# Train loss/accuracy are measured on this many training examples at most (a fixed subset, eval mode).
TRAIN_PROBE_MAX = 10_000


def plan_trials(config: ExperimentConfig) -> list[TrialSpec]:
    """Every trial of a grid: batch size × base learning rate × seed, in that nesting order."""
    base_lrs = config.sweep.learning_rates or [config.train.lr]
    swept = bool(config.sweep.learning_rates)
    trials = []
    for batch_size in config.sweep.batch_sizes:
        for base_lr in base_lrs:
            for seed in config.train.seeds:
                trials.append(TrialSpec(
                    index=len(trials), name=schema.trial_name(batch_size, seed, base_lr if swept else None),
                    batch_size=batch_size, seed=seed, base_lr=base_lr,
                    lr=scaled_lr(config.train, base_lr, batch_size)))
    names = [trial.name for trial in trials]
    if len(set(names)) != len(names):
        # Only a config built without the validator can repeat a value; one name twice would overwrite a trial.
        raise ConfigError([f"sweep.batch_sizes, train.seeds and sweep.learning_rates give the trial "
                           f"{next(n for n in names if names.count(n) > 1)} twice: each value may appear once"])
    return trials


class GridStrategy:
    """Proposes the planned trials one at a time. Search strategies will propose from what finished."""

    def __init__(self, trials: list[TrialSpec]):
        self.planned = list(trials)
        self._queue = list(trials)

    def propose(self, finished: dict[str, str]) -> TrialSpec | None:
        return self._queue.pop(0) if self._queue else None


def environment(device: torch.device) -> dict[str, object]:
    return {"python_version": platform.python_version(), "torch_version": torch.__version__,
            "app_version": __version__, "device": str(device), "device_name": device_name(device),
            "cpu_count": os.cpu_count() or 0, "platform": platform.platform(),
            "cpu_cores_available": available_cores(), "thread_policy": thread_policy().describe()}


def class_balance(dataset: Dataset) -> dict[str, object]:
    """The validation set's class count and largest class share (schema.CLASS_BALANCE_ATTRS): always
    predicting that class scores the share, the no-skill baseline a recommendation must beat."""
    counts = torch.bincount(dataset.y_val.cpu(), minlength=dataset.num_classes)
    share = float(counts.max()) / max(int(counts.sum()), 1)
    return {"num_classes": int(dataset.num_classes), "val_majority_fraction": share}


def _prepare_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):   # the disk, not the config: exit 3, like a full file
            raise RunWriteError(f"output folder {out_dir}: cannot be created ({error.strerror})") from None
        raise ConfigError([f"output folder {out_dir}: cannot be created ({error.strerror})"]) from None
    if not os.access(out_dir, os.W_OK):
        raise ConfigError([f"output folder {out_dir}: not writable"])


class _Recorder:
    """Writes each event into the run file, then hands it to the caller's observer."""

    def __init__(self, writer: RunWriter, on_event: Callable[[Event], None]):
        self.writer, self.on_event = writer, on_event
        self.statuses: dict[str, str] = {}
        self.threads: ThreadChoice | None = None

    def use_threads(self, spec: TrialSpec, choice: ThreadChoice) -> None:
        """The next trial trains with `choice`: written with its attributes, told when the count changes."""
        if self.threads is None or choice.threads != self.threads.threads:
            plural = "s" if choice.threads != 1 else ""
            self.on_event(Message(f"{spec.name}: {choice.threads} CPU thread{plural} ({choice.reason})"))
        self.threads = choice

    def __call__(self, event: Event) -> None:
        if isinstance(event, TrialStarted):
            spec = event.trial
            self.writer.start_trial(spec.name, {
                "batch_size": spec.batch_size, "seed": spec.seed, "lr": spec.lr, "base_lr": spec.base_lr,
                "parameter_count": event.parameter_count, "steps_per_epoch": event.steps_per_epoch,
                schema.NOISE_UNAVAILABLE_ATTR: event.noise_scale_unavailable,
                **dict(zip(schema.TRIAL_THREAD_ATTRS, (self.threads.threads, self.threads.reason)))})
        elif isinstance(event, StepsLogged):
            self.writer.add_steps(event.trial.name, {m.name: getattr(event, m.name) for m in schema.STEP_METRICS})
        elif isinstance(event, EpochEnded):
            self.writer.add_epoch(event.trial.name, event.metrics)
        elif isinstance(event, Evaluated):
            self.writer.add_rows(event.trial.name, schema.EVAL_GROUP, event.metrics)
        elif isinstance(event, NoiseMeasured):
            self.writer.add_rows(event.trial.name, schema.NOISE_GROUP, event.columns)
        elif isinstance(event, TrialEnded):
            self.writer.end_trial(event.trial.name, event.status, event.error)
            self.statuses[event.trial.name] = event.status
        self.on_event(event)


def load_sweep_data(config: ExperimentConfig, device: torch.device) -> Dataset:
    """Load the dataset and check it against the config; raises DataError / ConfigError."""
    dataset = load_dataset(config.data)
    check_batch_sizes(config, dataset.train_size)
    return dataset.to(device)


def run_sweep(config: ExperimentConfig, out_dir: str | Path, *, device: str | None = None,
              on_event: Callable[[Event], None] | None = None, stop: threading.Event | None = None) -> Path:
    """Train every trial of the config and write one run file into out_dir; returns its path.

    Problems with the config or the data raise before any file is written. Failures inside a trial are
    recorded in that trial and the sweep goes on. Setting `stop` ends the running trial as `cancelled`
    within one step and ends the sweep."""
    on_event = on_event or (lambda event: None)
    out_dir = Path(out_dir)
    torch_device = resolve_device(device or config.sweep.device)
    _prepare_out_dir(out_dir)
    dataset, probe = prepare_sweep_data(config, torch_device, on_event)
    env = environment(torch_device)
    writer = RunWriter.create(out_dir, config.name, config.to_toml(), {**env, **class_balance(dataset)})
    return train_trials(writer, config, dataset, probe, torch_device, plan_trials(config), env, on_event=on_event,
                        stop=stop)


def prepare_sweep_data(config: ExperimentConfig, torch_device: torch.device,
                       on_event: Callable[[Event], None]) -> tuple[Dataset, torch.Tensor]:
    """The dataset on the device and the fixed subset of training examples that train metrics are measured on.
    Raises DataError / ConfigError before anything is written."""
    dataset = load_sweep_data(config, torch_device)
    on_event(Message(f"{dataset.name}: {dataset.train_size} training and {dataset.val_size} validation examples "
                     f"({dataset.val_source}), {dataset.num_classes} classes"))
    probe = torch.randperm(dataset.train_size, generator=torch.Generator().manual_seed(config.data.data_seed))
    probe = probe[:min(TRAIN_PROBE_MAX, max(dataset.val_size, 1000))].to(torch_device)
    if torch_device.type == "cuda":
        # Reproducibility on the same device over the last bit of speed.
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return dataset, probe


def train_trials(writer: RunWriter, config: ExperimentConfig, dataset: Dataset, probe: torch.Tensor,
                 torch_device: torch.device, planned: list[TrialSpec], env: dict[str, object], *,
                 on_event: Callable[[Event], None], stop: threading.Event | None = None,
                 to_train: list[TrialSpec] | None = None,
                 finished: dict[str, str] | None = None, restored: Iterable[Event] = ()) -> Path:
    """The trial loop shared by a new sweep and a resumed one; closes the writer and returns the file's path.

    `planned` is the whole sweep (for progress); `to_train` the trials still to train (all of them when
    None); `finished` the statuses of trials already in the file; `restored` the events that show those
    trials to the observer after SweepStarted (they are not written again)."""
    stop = stop or threading.Event()
    strategy = GridStrategy(planned if to_train is None else to_train)
    recorder = _Recorder(writer, on_event)
    recorder.statuses.update(finished or {})
    status = schema.COMPLETED
    try:
        steps_per_epoch = {t.batch_size: dataset.train_size // t.batch_size for t in planned}
        planned_samples = sum(total_steps(config.train, steps_per_epoch[t.batch_size], t.batch_size) * t.batch_size
                              for t in planned)
        on_event(SweepStarted(run_path=str(writer.path), config_text=config.to_toml(),
                              created=writer.created, trials=tuple(planned),
                              total_samples=planned_samples, device=str(torch_device),
                              device_name=str(env["device_name"]), train_size=dataset.train_size,
                              val_size=dataset.val_size, **class_balance(dataset)))
        for event in restored:
            on_event(event)
        context = TrialContext(config=config, dataset=dataset, device=torch_device, train_eval_index=probe,
                               emit=recorder, stop=stop)
        with sweep_threads() as threads:
            while (spec := strategy.propose(recorder.statuses)) is not None:
                recorder.use_threads(spec, threads.choose())
                if run_trial(spec, context) == schema.CANCELLED or stop.is_set():
                    status = schema.CANCELLED
                    break
    except BaseException as error:
        # Whatever escapes (Ctrl-C without a handler, a bug in an observer) still leaves a readable file.
        writer.close(schema.CANCELLED if isinstance(error, KeyboardInterrupt) else schema.FAILED)
        raise
    writer.close(status)
    on_event(SweepEnded(run_path=str(writer.path), status=status, trial_statuses=dict(recorder.statuses)))
    return writer.path
