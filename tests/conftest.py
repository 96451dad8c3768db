"""Shared fixtures. Every test runs with the cache and workspace in temporary folders, never the user's."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.config import parse_config  # noqa: E402
from engine.hardware.threads import ThreadPolicy, set_thread_policy, thread_policy  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _isolated_dirs(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    workspace = tmp_path_factory.mktemp("workspace")
    saved = {key: os.environ.get(key) for key in ("BATCH_SIZE_LAB_CACHE", "BATCH_SIZE_LAB_WORKSPACE")}
    os.environ["BATCH_SIZE_LAB_CACHE"] = str(cache)
    os.environ["BATCH_SIZE_LAB_WORKSPACE"] = str(workspace)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def tiny_table(**sections) -> dict:
    """A config table for a sweep that trains in well under a second per trial; sections override keys."""
    table = {
        "name": "tiny",
        "data": {"dataset": "synthetic", "num_samples": 300, "num_features": 8, "num_classes": 3},
        "model": {"kind": "mlp", "width": 16, "depth": 1},
        "train": {"optimizer": "sgd", "lr": 0.05, "epochs": 2, "seeds": [0], "eval_batch_size": 256},
        "sweep": {"batch_sizes": [16, 32, 64], "device": "cpu"},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            table.setdefault(section, {}).update(values)
        else:
            table[section] = values
    return table


@pytest.fixture
def tiny_config():
    return lambda **sections: parse_config(tiny_table(**sections))


@pytest.fixture
def one_thread_each():
    """Every trial on one thread, in this process and in the workers: sums are bit-identical only then."""
    before_policy, before_threads = thread_policy(), torch.get_num_threads()
    set_thread_policy(ThreadPolicy(requested=1))
    torch.set_num_threads(1)
    yield
    set_thread_policy(before_policy)
    torch.set_num_threads(before_threads)


def frozen_where_whole(process, path: Path) -> bool:
    """Stop a writing process (SIGSTOP, waited for) and say whether its run file now reads whole, as it will
    after a kill. Kill tests kill only then: a poller that sees a new epoch at once is apt to land inside the
    writer's short save, the one moment a run file is not promised to survive (engine/runfile.py). Where it
    does not read whole, the writer is let go on (SIGCONT) and False says to try again a moment later."""
    import signal
    import time

    import psutil

    from engine import reader_process
    from engine.errors import RunFileError
    from engine.runfile_reader import read_run_here
    process.send_signal(signal.SIGSTOP)
    writer = psutil.Process(process.pid)
    while writer.status() not in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE):
        time.sleep(0.001)
    try:
        reader_process.call(read_run_here, path)   # one try: the writer cannot finish its save while stopped
        return True
    except RunFileError:
        process.send_signal(signal.SIGCONT)
        return False
