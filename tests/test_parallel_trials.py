"""Several trials at once in worker processes (sweep.parallel): the numbers equal a sequential sweep's, Stop
ends every worker's trial as `cancelled`, resume goes on in workers, a killed worker costs only its trial.
Real spawned workers, real run files; each test starts two or three workers (seconds each on a loaded machine)."""
import multiprocessing
import os
import signal
import threading
from types import SimpleNamespace

import h5py
import pytest
import torch

from engine import schema
from engine.config import parse_config
from engine.events import StepsLogged, TrialStarted
from engine.execution import workers
from engine.execution.parallelism import decide_cpu_workers, plan_parallel
from engine.hardware.threads import ThreadChoice, ThreadPolicy, split_among_workers
from engine.resume import plan_resume, resume_sweep
from engine.runfile import read_run
from engine.sweep import plan_trials, run_sweep
from tests.conftest import tiny_table
from tests.test_resume import assert_same_numbers

# bs4 trains 240 steps an epoch and bs8 120, for 4 epochs: long enough to be caught running by an event.
TABLE = tiny_table(data={"num_samples": 1200}, train={"epochs": 4},
                   sweep={"batch_sizes": [4, 8, 32, 64], "parallel": 2})


def trial_workers() -> list[multiprocessing.Process]:
    return [child for child in multiprocessing.active_children() if child.name.startswith("trial-worker")]


def test_workers_killed_stopped_and_resumed_give_the_sequential_numbers(tmp_path, one_thread_each, monkeypatch):
    """One sweep of two workers: the first worker is killed (kill -9) while it trains bs4, then Stop comes while
    the second still trains bs8; resuming it in workers finishes the sweep with a sequential sweep's numbers."""
    # A loaded machine may take long to schedule a worker; the stop within a step is what is tested here.
    monkeypatch.setattr(workers, "STOP_GRACE_S", 60.0)
    stop = threading.Event()
    killed: list[str] = []
    # The second worker is frozen (SIGSTOP) as it starts bs8 and let go only once Stop has been sent to it, so
    # Stop finds bs8 running however slowly the first worker starts: no race against the machine's load.
    frozen: list[int] = []
    send = workers.WorkerPool._send

    def send_then_continue(pool, worker, message):
        send(pool, worker, message)
        if message == workers._STOP and worker.process.pid in frozen:
            os.kill(worker.process.pid, signal.SIGCONT)
    monkeypatch.setattr(workers.WorkerPool, "_send", send_then_continue)

    def kill_then_stop(event):
        if isinstance(event, TrialStarted) and event.trial.batch_size == 8 and not frozen:
            # The first two trials proposed go to the first two workers started, in order.
            worker = next(w for w in trial_workers() if w.name == "trial-worker-2")
            os.kill(worker.pid, signal.SIGSTOP)
            frozen.append(worker.pid)
        if isinstance(event, StepsLogged) and not killed and event.trial.batch_size == 4:
            worker = next(w for w in trial_workers() if w.name == "trial-worker-1")
            os.kill(worker.pid, signal.SIGKILL)
            killed.append(event.trial.name)
        if killed and frozen:
            stop.set()   # bs8 has barely started: it ends cancelled, not completed

    path = run_sweep(parse_config(TABLE), tmp_path / "parallel", on_event=kill_then_stop, stop=stop)
    assert trial_workers() == []
    stopped = read_run(path)
    assert stopped.header.status == schema.CANCELLED
    statuses = {t.name: (t.status, t.error) for t in stopped.trials}
    status, error = statuses[killed[0]]
    assert status == schema.FAILED and "SIGKILL" in error and "worker process" in error
    cancelled = [t.name for t in stopped.trials if t.status == schema.CANCELLED]
    # bs8, frozen until Stop reached it, is among them; a worker started for bs32 meanwhile may be stopped too.
    assert 8 in [t.batch_size for t in stopped.trials if t.status == schema.CANCELLED], statuses
    # Ended by its worker within a step, not killed by the parent after the grace period.
    assert all(statuses[name][1] == "" for name in cancelled)

    resumed = read_run(resume_sweep(plan_resume(path)))
    assert trial_workers() == []
    assert resumed.header.status == schema.COMPLETED
    others = {**TABLE["sweep"], "batch_sizes": [8, 32, 64], "parallel": 1}
    sequential = {t.name: t for t in read_run(run_sweep(parse_config({**TABLE, "sweep": others}),
                                                        tmp_path / "sequential")).trials}
    for trial in resumed.trials:
        if trial.name == killed[0]:
            assert (trial.status, trial.error) == (status, error)   # a failed trial is kept as it ended
            continue
        assert trial.status == schema.COMPLETED
        assert_same_numbers(trial, sequential[trial.name])
    assert sorted(t.name for t in resumed.trials) == sorted([*sequential, *killed])


def test_auto_splits_the_cores_only_when_threads_scale_badly():
    assert decide_cpu_workers(8, 16, thread_speedup=2.0).workers == 8
    assert decide_cpu_workers(8, 3, thread_speedup=2.0).workers == 3
    assert decide_cpu_workers(8, 16, thread_speedup=7.0).workers == 1
    assert decide_cpu_workers(1, 16, thread_speedup=1.0).workers == 1
    assert "2.00×" in decide_cpu_workers(8, 16, thread_speedup=2.0).reason


def test_auto_measures_the_sweeps_own_model_at_its_smallest_batch_size():
    config = parse_config(tiny_table(sweep={"batch_sizes": [16, 32, 64], "parallel": "auto"}))
    trials = plan_trials(config)
    asked = []

    def measure(config, context, batch_size, cores):
        asked.append((batch_size, cores))
        return 1.2

    cpu = SimpleNamespace(device=torch.device("cpu"))
    assert plan_parallel(config, cpu, trials, cores=4, measure=measure).workers == 3   # never more than trials
    assert asked == [(16, 4)]
    assert plan_parallel(config, cpu, trials, cores=1, measure=measure).workers == 1
    assert len(asked) == 1   # one core: nothing to measure
    fixed = parse_config(tiny_table(sweep={"parallel": 8}))
    assert plan_parallel(fixed, cpu, plan_trials(fixed), cores=2, measure=measure).workers == 3


def test_workers_share_the_free_cores_unless_the_count_is_fixed():
    free = ThreadChoice(8, "8 cores")
    assert split_among_workers(free, 3, ThreadPolicy()).threads == 2
    assert split_among_workers(ThreadChoice(2, "2 cores"), 4, ThreadPolicy()).threads == 1
    assert split_among_workers(ThreadChoice(3, "fixed"), 4, ThreadPolicy(requested=3)).threads == 3


def test_every_trial_a_write_error_stopped_is_trained_again_on_resume(tmp_path, tiny_config):
    """With trials in workers, a full disk stops several running trials at once: the writer marks each
    `failed` with its text (as engine.runfile.RunWriter does), and each is interrupted, not a finished failure."""
    path = run_sweep(tiny_config(sweep={"batch_sizes": [16, 32, 64, 80]}), tmp_path)
    with h5py.File(path, "r+") as handle:
        handle.attrs["status"] = schema.FAILED
        trials = handle[schema.TRIALS_GROUP]
        for name, error in (("bs00016_seed0", "RuntimeError: its own failure"),
                            ("bs00064_seed0", f"disk full writing {path}"),
                            ("bs00080_seed0", f"disk full writing {path}")):
            trials[name].attrs["status"], trials[name].attrs["error"] = schema.FAILED, error
    plan = plan_resume(path)
    assert [spec.name for spec in plan.interrupted] == ["bs00064_seed0", "bs00080_seed0"]
    assert plan.finished == {"bs00016_seed0": schema.FAILED, "bs00032_seed0": schema.COMPLETED}
