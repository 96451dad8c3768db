"""A sweep: a queue of trials fed by a search strategy, each trained in turn and written to one run file."""
from __future__ import annotations

import errno
import os
import platform
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch

from engine import __version__, schema
from engine.config import ExperimentConfig, check_batch_sizes
from engine.data import Dataset, load_dataset
from engine.devices import device_name, resolve_device
from engine.errors import ConfigError, RunWriteError
from engine.events import (EpochEnded, Evaluated, Event, Message, NoiseMeasured, RanksMeasured, StepsLogged, SweepEnded,
                           SweepStarted, TelemetryMeasured, TrialEnded, TrialExecution, TrialMemoryMeasured,
                           TrialScored, TrialSpec, TrialStarted)
from engine.execution.parallelism import run_parallel, trains_elsewhere
from engine.execution.ensemble import plan_ensembles, run_group
from engine.hardware.memory_model import device_memory_bytes
from engine.hardware.precision import check_sweep_precisions, sweep_precisions, trial_precision
from engine.hardware.threads import (ThreadChoice, available_cores, sweep_threads, thread_policy,
                                     training_step_probe)
from engine.runfile import RunWriter, TrialData
from engine.search import make_strategy
from engine.search.shared import check_shared
from engine.search.results import TrialResult, trial_data
from engine.train import TrialContext, scaled_lr, total_steps

# Train loss/accuracy are measured on this many training examples at most (a fixed subset, eval mode).
TRAIN_PROBE_MAX = 10_000


def plan_trials(config: ExperimentConfig) -> list[TrialSpec]:
    """Every trial of a grid: batch size × base learning rate × precision × seed, in that nesting order."""
    base_lrs = config.sweep.learning_rates or [config.train.lr]
    swept = bool(config.sweep.learning_rates)
    precisions_swept = bool(config.sweep.precisions)
    trials = []
    for batch_size in config.sweep.batch_sizes:
        for base_lr in base_lrs:
            for precision in sweep_precisions(config):
                for seed in config.train.seeds:
                    trials.append(TrialSpec(
                        index=len(trials), name=schema.trial_name(batch_size, seed, base_lr if swept else None,
                                                                  precision if precisions_swept else None),
                        batch_size=batch_size, seed=seed, base_lr=base_lr,
                        lr=scaled_lr(config.train, base_lr, batch_size), precision=precision))
    names = [trial.name for trial in trials]
    if len(set(names)) != len(names):
        # Only a config built without the validator can repeat a value; one name twice would overwrite a trial.
        raise ConfigError([f"sweep.batch_sizes, train.seeds, sweep.learning_rates and sweep.precisions give the "
                           f"trial {next(n for n in names if names.count(n) > 1)} twice: each value may appear once"])
    return trials


def environment(device: torch.device) -> dict[str, object]:
    return {"python_version": platform.python_version(), "torch_version": torch.__version__,
            "app_version": __version__, "device": str(device), "device_name": device_name(device),
            "cpu_count": os.cpu_count() or 0, "platform": platform.platform(),
            "cpu_cores_available": available_cores(), "thread_policy": thread_policy().describe(),
            "device_memory_bytes": device_memory_bytes(device)}


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

    def __init__(self, writer: RunWriter, on_event: Callable[[Event], None], config: ExperimentConfig):
        self.writer, self.on_event, self.train = writer, on_event, config.train
        self.statuses: dict[str, str] = {}
        self.threads: ThreadChoice | None = None
        self.epochs: dict[str, list[dict[str, float]]] = {}        # rows of the trials running, for `finished`
        self.evaluations: dict[str, list[dict[str, float]]] = {}
        self.finished: dict[str, TrialData] = {}    # trials that ended, as strategies are told them

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
                **dict(zip(schema.TRIAL_THREAD_ATTRS, (self.threads.threads, self.threads.reason))),
                **(dict(zip(schema.THREAD_TIMING_ATTRS, map(list, zip(*self.threads.step_seconds))))
                   if self.threads.step_seconds else {}),
                schema.TRIAL_PRECISION_ATTR: trial_precision(spec, self.train),
                **_proposal_attrs(spec)})
        elif isinstance(event, StepsLogged):
            self.writer.add_steps(event.trial.name, {m.name: getattr(event, m.name) for m in schema.STEP_METRICS})
        elif isinstance(event, EpochEnded):
            self.writer.add_epoch(event.trial.name, event.metrics)
            self.epochs.setdefault(event.trial.name, []).append(event.metrics)
        elif isinstance(event, Evaluated):
            self.writer.add_rows(event.trial.name, schema.EVAL_GROUP, event.metrics)
            self.evaluations.setdefault(event.trial.name, []).append(event.metrics)
        elif isinstance(event, NoiseMeasured):
            self.writer.add_rows(event.trial.name, schema.NOISE_GROUP, event.columns)
        elif isinstance(event, RanksMeasured):
            self.writer.set_trial_attrs(event.trial.name, dict(zip(schema.RANK_ATTRS, (event.ranks,
                                                                                      event.communication_s))))
        elif isinstance(event, TrialExecution):
            self.writer.set_trial_attrs(event.trial.name, {schema.EXECUTION_ATTR: event.execution})
        elif isinstance(event, TelemetryMeasured):
            self.writer.add_rows(event.trial.name, schema.TELEMETRY_GROUP, event.columns)
            if event.training_clock:
                self.writer.add_rows(event.trial.name, schema.TRAINING_CLOCK_GROUP, event.training_clock)
            self.writer.set_trial_attrs(event.trial.name, {schema.TELEMETRY_UNAVAILABLE_ATTR: event.unavailable})
        elif isinstance(event, TrialMemoryMeasured):
            self.writer.set_trial_attrs(event.trial.name, dict(zip(schema.TRIAL_MEMORY_ATTRS,
                                                                  (event.step_memory_bytes, event.method))))
        elif isinstance(event, TrialEnded):
            self.writer.end_trial(event.trial.name, event.status, event.error)
            self.statuses[event.trial.name] = event.status
            epochs = self.epochs.pop(event.trial.name, [])
            evaluations = self.evaluations.pop(event.trial.name, [])
            if event.status == schema.PRUNED and (evaluations or epochs):
                # The evaluation that the pruner stopped it at is its last.
                self.writer.set_trial_attrs(event.trial.name, {"pruned_step": int((evaluations or epochs)[-1]["step"])})
            self.finished[event.trial.name] = trial_data(event.trial, event.status, event.error, epochs, evaluations)
        elif isinstance(event, TrialScored):
            self.writer.set_trial_attrs(event.trial.name, {"objective": event.objective})
        self.on_event(event)


def _proposal_attrs(spec: TrialSpec) -> dict[str, object]:
    """schema.SEARCH_TRIAL_ATTRS known when a trial starts: which strategy proposed it, and a search's point."""
    return {"proposed_by": spec.proposed_by, **({"search_point": spec.search_point} if spec.search_point >= 0 else {})}


def load_sweep_data(config: ExperimentConfig, device: torch.device) -> Dataset:
    """Load the dataset and check it against the config; raises DataError / ConfigError."""
    dataset = load_dataset(config.data)
    check_batch_sizes(config, dataset.train_size)
    return dataset.to(device)


def run_sweep(config: ExperimentConfig, out_dir: str | Path, *, device: str | None = None,
              on_event: Callable[[Event], None] | None = None, stop: threading.Event | None = None,
              storage: str | None = None) -> Path:
    """Train every trial of the config and write one run file into out_dir; returns its path.

    Problems with the config or the data raise before any file is written. Failures inside a trial are
    recorded in that trial and the sweep goes on. Setting `stop` ends the running trial as `cancelled`
    within one step and ends the sweep. `storage`: a journal file that several processes' searches share
    (engine.search.shared)."""
    on_event = on_event or (lambda event: None)
    out_dir = Path(out_dir)
    torch_device = resolve_device(device or config.sweep.device)
    check_sweep_precisions(config, torch_device)
    _prepare_out_dir(out_dir)
    if storage is not None:
        check_shared(config, storage)
    dataset, probe = prepare_sweep_data(config, torch_device, on_event)
    env = environment(torch_device)
    writer = RunWriter.create(out_dir, config.name, config.to_toml(), {**env, **class_balance(dataset)})
    return train_trials(writer, config, dataset, probe, torch_device, plan_trials(config), env, on_event=on_event,
                        stop=stop, storage=storage)


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


def _search_samples(config: ExperimentConfig, strategy, train_size: int) -> int:
    """A search's training samples before it starts, for progress: its expected trials at the range's middle
    batch size (on a log scale). The bar is corrected as the real trials start."""
    points = getattr(strategy, "expected_points", 0)
    if not points:
        return 0
    sweep = config.sweep
    batch_size = max(1, round((sweep.batch_size_min * sweep.batch_size_max) ** 0.5))
    steps = total_steps(config.train, max(1, train_size // batch_size), batch_size)
    return points * len(config.train.seeds) * steps * batch_size


def train_trials(writer: RunWriter, config: ExperimentConfig, dataset: Dataset, probe: torch.Tensor,
                 torch_device: torch.device, planned: list[TrialSpec], env: dict[str, object], *,
                 on_event: Callable[[Event], None], stop: threading.Event | None = None,
                 to_train: list[TrialSpec] | None = None,
                 finished: dict[str, str] | None = None, restored: Iterable[Event] = (),
                 history: Mapping[str, TrialData] | None = None, storage: str | None = None) -> Path:
    """The trial loop shared by a new sweep and a resumed one; closes the writer and returns the file's path.

    `planned` is the whole sweep (for progress); `to_train` the trials still to train (all of them when
    None); `finished` the statuses of trials already in the file; `restored` the events that show those
    trials to the observer after SweepStarted (they are not written again); `history` their records, which a
    search strategy is told again in its own order, so that it goes on where it stopped."""
    stop = stop or threading.Event()
    strategy = make_strategy(config, planned if to_train is None else to_train, lambda text: on_event(Message(text)),
                             dataset.train_size, storage)
    recorder = _Recorder(writer, on_event, config)
    recorder.statuses.update(finished or {})
    recorder.finished.update(history or {})
    status = schema.COMPLETED
    try:
        steps_per_epoch = {t.batch_size: dataset.train_size // t.batch_size for t in planned}
        planned_samples = sum(total_steps(config.train, steps_per_epoch[t.batch_size], t.batch_size) * t.batch_size
                              for t in planned) or _search_samples(config, strategy, dataset.train_size)
        on_event(SweepStarted(run_path=str(writer.path), config_text=config.to_toml(),
                              created=writer.created, trials=tuple(planned),
                              total_samples=planned_samples, device=str(torch_device),
                              device_name=str(env["device_name"]), train_size=dataset.train_size,
                              val_size=dataset.val_size, **class_balance(dataset), environment=dict(env)))
        for event in restored:
            on_event(event)
        context = TrialContext(config=config, dataset=dataset, device=torch_device, train_eval_index=probe,
                               emit=recorder, stop=stop, after_evaluation=strategy.after_evaluation)

        def tell(spec: TrialSpec, trial_status: str) -> None:
            """A trial that ended, told to the strategy; a search's score of it goes into the file."""
            if trial_status != schema.CANCELLED:
                objective = strategy.tell(TrialResult(spec, recorder.finished[spec.name]))
                if objective is not None:
                    recorder(TrialScored(trial=spec, objective=objective))

        # sweep.ensemble: which trials of a batch size train together as one vectorized model (None: each alone).
        ensembles = plan_ensembles(config, planned if to_train is None else to_train, recorder)
        with sweep_threads() as threads:
            # sweep.parallel / data_parallel: trials in worker processes or on ranks; None: here, one at a time.
            in_workers = run_parallel(config, context, planned if to_train is None else to_train, threads,
                                      lambda: strategy.propose(recorder.finished), recorder.use_threads,
                                      tell) if trains_elsewhere(config) else None
            while in_workers is None and (spec := strategy.propose(recorder.finished)) is not None:
                recorder.use_threads(spec, threads.choose(training_step_probe(spec, context)))
                trained = run_group(spec, lambda: strategy.propose(recorder.finished), context, ensembles)
                for member, trial_status in trained:
                    tell(member, trial_status)
                if any(trial_status == schema.CANCELLED for _, trial_status in trained) or stop.is_set():
                    status = schema.CANCELLED
                    break
            status = in_workers or status
            if strategy.conclusion and status != schema.CANCELLED:
                on_event(Message(strategy.conclusion))
    except BaseException as error:
        # Whatever escapes (Ctrl-C without a handler, a bug in an observer) still leaves a readable file.
        writer.close(schema.CANCELLED if isinstance(error, KeyboardInterrupt) else schema.FAILED)
        raise
    writer.close(status)
    on_event(SweepEnded(run_path=str(writer.path), status=status, trial_statuses=dict(recorder.statuses)))
    return writer.path
