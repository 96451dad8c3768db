"""Sweeps on a Ray cluster (`run --ray`): a local Ray instance started here, one for the module (its start takes
seconds), real tasks in Ray's worker processes, real run files. The driver's file equals a sequential sweep's,
a killed task's worker costs only its trial, Stop cancels the tasks and resume trains what is missing."""
import os
import signal
import sys
import threading

import h5py
import psutil
import pytest

from engine import schema
from engine.cli import main as cli_main
from engine.config import parse_config
from engine.events import StepsLogged
from engine.execution import ray_backend
from engine.resume import plan_resume, resume_sweep
from engine.runfile import read_run
from engine.sweep import run_sweep
from tests.conftest import tiny_table
from tests.test_resume import assert_same_numbers

# Ray's own timeouts are minutes; a sweep here takes seconds.
pytestmark = pytest.mark.timeout(120)
TABLE = tiny_table(sweep={"batch_sizes": [16, 32, 64]})
TASK_TITLE = "ray::batch-size-lab-trial"


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -r requirements-ray.txt "
                              "(make test installs it)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def write_config(tmp_path, table) -> str:
    path = tmp_path / "experiment.toml"
    path.write_text(parse_config(table).to_toml(), encoding="utf-8")
    return str(path)


def test_a_sweep_on_ray_writes_the_sequential_sweeps_file(local_ray, tmp_path, one_thread_each, capsys):
    sequential = {t.name: t for t in read_run(run_sweep(parse_config(TABLE), tmp_path / "sequential")).trials}
    code = cli_main(["run", write_config(tmp_path, TABLE), "--out", str(tmp_path / "ray"), "--ray", "auto",
                     "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "trials on the Ray cluster at auto: 1 node, 2 CPUs; up to 2 at once" in captured.err
    path = captured.out.strip().splitlines()[-1]
    run = read_run(path)
    assert run.header.status == schema.COMPLETED
    assert sorted(t.name for t in run.trials) == sorted(sequential)
    for trial in run.trials:
        assert (trial.status, trial.error) == (schema.COMPLETED, "")
        assert_same_numbers(trial, sequential[trial.name])
    with h5py.File(path) as handle:
        assert {handle[schema.TRIALS_GROUP][name].attrs["torch_threads"] for name in sequential} == {1}


def trial_tasks() -> list[psutil.Process]:
    """Ray's worker processes running a trial's task now (Ray titles a busy worker after its task)."""
    tasks = []
    for child in psutil.Process().children(recursive=True):
        try:
            if " ".join(child.cmdline()).startswith(TASK_TITLE):
                tasks.append(child)
        except psutil.Error:
            pass
    return tasks


def test_a_killed_task_fails_its_trial_stop_cancels_and_resume_trains_the_rest(local_ray, tmp_path):
    """Two threads a task on two CPUs: one trial at a time. The first task's worker is killed (kill -9) while it
    trains, then Stop comes during the second trial; resuming on Ray trains the second and third."""
    table = tiny_table(data={"num_samples": 1200}, train={"epochs": 3}, sweep={"batch_sizes": [8, 16, 32]})
    stop, killed, stopped = threading.Event(), [], []

    def kill_then_stop(event):
        if not isinstance(event, StepsLogged):
            return
        if not killed:
            (task,) = trial_tasks()
            os.kill(task.pid, signal.SIGKILL)
            killed.append(event.trial.name)
        elif event.trial.name not in killed and not stopped:
            stopped.append(event.trial.name)
            stop.set()

    from engine.hardware.threads import ThreadPolicy, set_thread_policy, thread_policy
    before = thread_policy()
    set_thread_policy(ThreadPolicy(requested=2))
    try:
        with ray_backend.on_cluster("auto"):
            path = run_sweep(parse_config(table), tmp_path / "ray", on_event=kill_then_stop, stop=stop)
            statuses = {t.name: (t.status, t.error) for t in read_run(path).trials}
            resumed = read_run(resume_sweep(plan_resume(path)))
    finally:
        set_thread_policy(before)
    assert statuses[killed[0]][0] == schema.FAILED
    assert "Ray worker process training this trial died" in statuses[killed[0]][1]
    assert statuses[stopped[0]] == (schema.CANCELLED, "stopped: its Ray task was cancelled")
    assert len(statuses) == 2   # the third trial had not started
    assert resumed.header.status == schema.COMPLETED
    after = {t.name: (t.status, t.error) for t in resumed.trials}
    assert after[killed[0]] == statuses[killed[0]]   # a failed trial is kept as it ended
    assert [status for name, (status, _) in after.items() if name != killed[0]] == [schema.COMPLETED] * 2
    assert trial_tasks() == []


def test_ray_refuses_what_it_cannot_do_in_one_line(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path, tiny_table(sweep={"strategy": "random", "batch_size_min": 8,
                                                      "batch_size_max": 64, "trials": 2, "pruner": "median"}))
    assert cli_main(["run", config, "--out", str(tmp_path), "--ray", "auto"]) == 2
    assert "sweep.pruner = 'median' with --ray" in capsys.readouterr().err
    plain = write_config(tmp_path, TABLE)
    assert cli_main(["run", plain, "--out", str(tmp_path), "--ray", "127.0.0.1:1"]) == 2
    assert capsys.readouterr().err.startswith("error: --ray 127.0.0.1:1: no Ray cluster answers there (")
    monkeypatch.setitem(sys.modules, "ray", None)   # as where the extra is not installed
    assert cli_main(["run", plain, "--out", str(tmp_path), "--ray", "auto"]) == 2
    assert capsys.readouterr().err == "error: Ray is not installed: pip install -r requirements-ray.txt\n"
    assert list(tmp_path.glob("*.h5")) == []
