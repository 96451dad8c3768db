"""A search shared by several processes or machines: one Optuna study in a journal file (run --storage FILE) or a
database (run --storage sqlite:///study.db, or a server's URL where its driver is installed), each process
writing its own run file, and `report` merging the files back into one search.

A shared search is not reproducible from search_seed (its points depend on which process asks first), and it
is not resumed from a run file: the journal is the study then. Every point of the study counts towards
[sweep] trials; processes that ask at the same moment can overshoot it by one point each.
"""
from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from engine import schema
from engine.config import SEARCHES, ExperimentConfig
from engine.errors import ConfigError, RunFileError, UserError
from engine.runfile import RunData

# The config tables that must be equal for runs to be one search (name and description may differ).
SAME_EXPERIMENT = ("data", "model", "train", "sweep")


def is_database_url(storage: str) -> bool:
    """sqlite:///study.db, postgresql://host/db, ...: a database (Optuna's RDB storage), not a journal file."""
    return "://" in storage


def check_shared(config: ExperimentConfig, storage: str) -> None:
    """Before anything is written: a shared study needs a sampler, and a journal file it can write."""
    if config.sweep.strategy not in SEARCHES:
        raise ConfigError([f"--storage {storage}: sharing a study applies to the {' and '.join(SEARCHES)} "
                           f"strategies, not to sweep.strategy = {config.sweep.strategy!r}"])
    if is_database_url(storage):
        shared_storage(storage)     # a wrong URL, a missing driver or an unreachable server: said now
        return
    folder = Path(storage).expanduser().resolve().parent
    if not folder.is_dir():
        raise UserError(f"--storage {storage}: no such folder {folder}")


def shared_storage(storage: str):
    """A database URL's storage (SQLAlchemy, which the desktop bundle leaves out), else a journal file's."""
    if not is_database_url(storage):
        return journal_storage(storage)
    try:
        from optuna.storages import RDBStorage
        return RDBStorage(storage)
    except ImportError as error:
        raise UserError(f"--storage {storage}: a database needs {error.name or 'a driver'}, which is not installed "
                        "here (the desktop app has none): use a journal file instead") from None
    except Exception as error:  # noqa: BLE001 — SQLAlchemy's and the drivers' errors have no common base here
        raise UserError(f"--storage {storage}: cannot open this database ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else 'no reason given'})") from None


def journal_storage(path: str):
    """Optuna's journal storage on a file that several processes append to (its own file lock keeps them
    apart); created when missing."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    try:
        return JournalStorage(JournalFileBackend(str(Path(path).expanduser())))
    except OSError as error:
        raise UserError(f"--storage {path}: cannot be used as a journal file ({error.strerror or error})") from None


def merge_runs(runs: list[RunData]) -> RunData:
    """Several run files of one shared search as one run: the first file's header and environment, every file's
    trials. Raises RunFileError when a file holds another experiment (a config that differs in data, model,
    train or sweep) or a trial name twice."""
    first = runs[0]
    tables = [tomllib.loads(run.config_text) for run in runs]
    for run, table in zip(runs[1:], tables[1:]):
        differs = [key for key in SAME_EXPERIMENT if table.get(key) != tables[0].get(key)]
        if differs:
            raise RunFileError(f"{run.path}: not the same experiment as {first.path} (its [{differs[0]}] differs), "
                               "so it cannot be merged into one report")
    trials = [trial for run in runs for trial in run.trials]
    names = [trial.name for trial in trials]
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise RunFileError(f"trial {twice} is in two of the files: they are not one shared search")
    trials.sort(key=lambda t: (t.batch_size, t.base_lr, t.seed))
    statuses: dict[str, int] = {}
    for trial in trials:
        statuses[trial.status] = statuses.get(trial.status, 0) + 1
    running = [run.header.status for run in runs if run.header.status != schema.COMPLETED]
    header = dataclasses.replace(first.header, trial_count=len(trials), trial_statuses=statuses,
                                 batch_sizes=sorted({t.batch_size for t in trials}),
                                 status=running[0] if running else schema.COMPLETED)
    return dataclasses.replace(first, header=header, trials=trials)
