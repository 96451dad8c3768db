"""Resuming an interrupted sweep in its own run file.

The run file is the single truth: the config stored in it says what the sweep was, the trials in it what
was done. Trials that ended (completed, diverged, out of memory, failed) are kept untouched. A trial that was
interrupted (`running` after kill -9 or a power cut, `cancelled` after Stop, `failed` with the text of the
write error, such as a full disk, that stopped the run while writing it) is trained again from its start,
since its optimizer state was never saved; its partial epochs move to /attempts/<trial name>/<n> (see
engine/schema.py), kept and readable with runfile.read_attempts, ignored by read_run. The trials never
started follow. Every trial seeds its own model, batch order and data from the config, so a resumed sweep
gives the numbers of an uninterrupted one on the same device with the same number of threads.
"""
from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine import schema
from engine.config import ExperimentConfig, loads_config
from engine.devices import resolve_device
from engine.hardware.precision import check_sweep_precisions
from engine.errors import ConfigError, RunFileError, UserError
from engine.events import (EpochEnded, Evaluated, Event, Message, NoiseMeasured, StepsLogged, TrialEnded, TrialSpec,
                           TrialStarted)
from engine.runfile import RunData, RunWriter, TrialData, read_run
from engine.sweep import environment, plan_trials, prepare_sweep_data, train_trials
from engine.train import total_steps

# A trial left in one of these states did not finish: it is trained again.
INTERRUPTED = (schema.RUNNING, schema.CANCELLED)


class NothingToResume(UserError):
    """The run file's sweep had already finished: every trial ended and the run is marked completed."""


@dataclass
class ResumePlan:
    """What resuming a run file will do, worked out from the file alone before anything is written."""
    path: Path
    run: RunData
    config: ExperimentConfig
    planned: list[TrialSpec]               # the whole sweep, in order, named as in the file
    finished: dict[str, str]               # trial name -> status of the trials kept untouched
    interrupted: list[TrialSpec]           # trained again from the start; their partial attempts set aside
    to_train: list[TrialSpec]              # the interrupted trials and those never started, in plan order
    # A search's kept trials by name: its strategy is told them again, in its own order, and so proposes next
    # what it would have proposed had it never stopped. A search has no plan: `planned` holds the trials stored.
    history: dict[str, TrialData] = field(default_factory=dict)

    @property
    def already_complete(self) -> bool:
        return not self.to_train and self.run.header.status == schema.COMPLETED

    def summary(self) -> str:
        """One line for the user: what is kept and what will be trained."""
        if self.already_complete:
            return (f"{self.path}: already complete, all {len(self.planned)} trials finished; nothing to resume")
        words = [f"{len(self.finished)} of {len(self.planned)} trials finished and kept"]
        for spec in self.interrupted:
            epochs = next(t.epochs_done for t in self.run.trials if t.name == spec.name)
            words.append(f"{spec.name} interrupted after {epochs} epoch{'s' if epochs != 1 else ''}, trained again "
                         "from its start (the partial attempt is kept)")
        if self.history:
            words[0] = f"{len(self.finished)} trials of the {self.config.sweep.strategy} search kept"
            words.append("the search goes on from there (its strategy is told the kept trials again)")
        else:
            words.append(f"{len(self.to_train)} to train")
        return f"resuming {self.path.name}: " + "; ".join(words)


# HDF5 takes an exclusive lock on a file it writes; this is how it says that the lock is taken.
_LOCKED = "unable to lock file"


def _being_written(path: Path) -> RunFileError:
    return RunFileError(f"{path}: cannot be resumed while another process has it open for writing (is its sweep "
                        "still running?)")


def _identity(batch_size: int, base_lr: float, precision: str, seed: int) -> tuple[int, float, str, int]:
    return batch_size, float(base_lr), precision, seed


def plan_resume(path: str | Path) -> ResumePlan:
    """Read a run file and work out what resuming it does. Raises RunFileError for anything that is not a
    readable run file, ConfigError when its stored config cannot be used here (e.g. its data file moved)."""
    path = Path(path)
    try:
        run = read_run(path)
    except RunFileError as error:
        if _LOCKED in str(error):   # readers that honour HDF5's lock cannot read a file being written
            raise _being_written(path) from None
        raise
    if run.header.being_written:
        raise _being_written(path)
    try:
        config = loads_config(run.config_text, source=f"{path}: stored config")
    except ConfigError as error:
        raise ConfigError([problem if problem.startswith(str(path)) else f"{path}: stored config: {problem}"
                           for problem in error.problems]) from None
    if config.sweep.strategy != "grid":
        return _plan_search_resume(path, run, config)
    # Trials are matched on what they are, not on their names, so files named by an older naming rule resume.
    stored = {_identity(t.batch_size, t.base_lr, t.precision, t.seed): t for t in run.trials}
    matched = [(spec, stored.get(_identity(spec.batch_size, spec.base_lr, spec.precision, spec.seed)))
               for spec in plan_trials(config)]
    started = [trial for _, trial in matched if trial is not None]
    # A write error (a full disk, a file size limit) ends the run `failed` and marks the trials it was writing
    # `failed` with its text: the last one started, and with trials in worker processes (sweep.parallel) the
    # others running then, which carry the same text. They were interrupted rather than failed by their training.
    last = started[-1] if started and run.header.status == started[-1].status == schema.FAILED else None
    planned, finished, interrupted, to_train = [], {}, [], []
    for spec, trial in matched:
        if trial is not None:
            spec = dataclasses.replace(spec, name=trial.name)
        planned.append(spec)
        if trial is None:
            to_train.append(spec)
        elif trial.status in INTERRUPTED or (last is not None and trial.status == schema.FAILED
                                             and (trial.name == last.name or trial.error == last.error)):
            interrupted.append(spec)
            to_train.append(spec)
        else:
            finished[trial.name] = trial.status
    return ResumePlan(path=path, run=run, config=config, planned=planned, finished=finished,
                      interrupted=interrupted, to_train=to_train)


def _plan_search_resume(path: Path, run: RunData, config: ExperimentConfig) -> ResumePlan:
    """A search resumes with its kept trials as history; the interrupted ones are proposed again by the strategy
    when it reaches them, and trained from their start."""
    trials = sorted(run.trials, key=lambda t: (t.search_point, config.train.seeds.index(t.seed)
                                               if t.seed in config.train.seeds else len(config.train.seeds)))
    last = trials[-1].name if trials and run.header.status == schema.FAILED else None
    planned, finished, interrupted, history = [], {}, [], {}
    for trial in trials:
        spec = TrialSpec(index=len(planned), name=trial.name, batch_size=trial.batch_size, seed=trial.seed,
                         base_lr=trial.base_lr, lr=trial.lr, proposed_by=trial.proposed_by,
                         search_point=trial.search_point)
        planned.append(spec)
        if trial.status in INTERRUPTED or (trial.name == last and trial.status == schema.FAILED):
            interrupted.append(spec)
        else:
            finished[trial.name] = trial.status
            history[trial.name] = trial
    return ResumePlan(path=path, run=run, config=config, planned=planned, finished=finished,
                      interrupted=interrupted, to_train=list(interrupted), history=history)


def _resume_device(plan: ResumePlan, device: str | None) -> torch.device:
    """The device the run was trained on (same device, same numbers), unless the caller names another."""
    if device is not None:
        return resolve_device(device)
    stored = str(plan.run.environment.get("device", "") or plan.config.sweep.device)
    kind = stored.split(":")[0]
    if kind not in ("cpu", "cuda"):
        kind = plan.config.sweep.device
    try:
        return resolve_device(kind)
    except ConfigError:
        raise RunFileError(f"{plan.path}: was trained on {stored}, which is not usable here; resume with "
                           "--device cpu to go on on the CPU (its trials will not give the numbers they would "
                           "have given there)") from None


def restored_events(plan: ResumePlan, train_size: int) -> list[Event]:
    """The kept trials as events, so that progress bars and live views show the whole sweep, not only what
    this session trains. Not written again: they are already in the file."""
    trials = {t.name: t for t in plan.run.trials}
    events: list[Event] = []
    for spec in plan.planned:
        if spec.name not in plan.finished:
            continue
        trial: TrialData = trials[spec.name]
        steps_per_epoch = train_size // spec.batch_size
        steps = total_steps(plan.config.train, steps_per_epoch, spec.batch_size)
        events.append(TrialStarted(trial=spec, steps_per_epoch=steps_per_epoch, total_steps=steps,
                                   total_samples=steps * spec.batch_size, parameter_count=trial.parameter_count,
                                   noise_scale_unavailable=trial.noise_scale_unavailable))
        if len(trial.step["step"]):
            events.append(StepsLogged(trial=spec, epoch_fraction=float(trial.epochs_done),
                                      **{m.name: trial.step[m.name] for m in schema.STEP_METRICS}))
        for row in range(trial.epochs_done):
            events.append(EpochEnded(trial=spec, metrics={m.name: trial.epoch[m.name][row].item()
                                                          for m in schema.EPOCH_METRICS}))
        for row in range(len(trial.eval["step"])):
            events.append(Evaluated(trial=spec, metrics={m.name: trial.eval[m.name][row].item()
                                                         for m in schema.EVAL_METRICS}))
        if len(trial.noise["step"]):
            events.append(NoiseMeasured(trial=spec, columns=dict(trial.noise)))
        events.append(TrialEnded(trial=spec, status=trial.status, error=trial.error))
    return events


def resume_sweep(plan: ResumePlan, *, device: str | None = None, on_event: Callable[[Event], None] | None = None,
                 stop: threading.Event | None = None) -> Path:
    """Go on with the sweep of plan_resume(path) in the same file; returns its path.

    Raises NothingToResume for a completed run, and ConfigError / DataError / RunFileError before anything is
    written. From then on it behaves as run_sweep: failures are trial outcomes, `stop` cancels."""
    if plan.already_complete:
        raise NothingToResume(plan.summary())
    on_event = on_event or (lambda event: None)
    torch_device = _resume_device(plan, device)
    check_sweep_precisions(plan.config, torch_device)
    dataset, probe = prepare_sweep_data(plan.config, torch_device, on_event)
    env = environment(torch_device)
    stored_device = str(plan.run.environment.get("device", ""))
    if stored_device and stored_device != str(torch_device):
        on_event(Message(f"This run was trained on {stored_device} and goes on on {torch_device}: the trials "
                         "trained now may not give the numbers they would have given there.", "warning"))
    try:
        writer = RunWriter.reopen(plan.path)
    except OSError as error:
        if _LOCKED in str(error):
            raise _being_written(plan.path) from None
        raise RunFileError(f"{plan.path}: cannot be opened for writing ({error})") from None
    stored_names = {trial.name for trial in plan.run.trials}
    try:
        for spec in plan.to_train:
            # The interrupted trials, and any stored trial of the same name that the plan does not recognise.
            if spec.name in stored_names:
                writer.set_aside(spec.name)
    except BaseException:
        writer.close(plan.run.header.status)   # as it was: still a run to resume
        raise
    on_event(Message(plan.summary()))
    return train_trials(writer, plan.config, dataset, probe, torch_device, plan.planned, env, on_event=on_event,
                        stop=stop, to_train=plan.to_train, finished=plan.finished,
                        restored=restored_events(plan, dataset.train_size), history=plan.history)
