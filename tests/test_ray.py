"""Sweeps on a Ray cluster (`run --ray`): a local Ray instance started here, one for the module (its start takes
seconds), real tasks in Ray's worker processes, real run files. The driver's file equals a sequential sweep's,
a killed task's worker costs only its trial, Stop cancels the tasks and resume trains what is missing. Each
sweep is tiny: Ray's workers import torch on their first trial, which is most of the time here."""
import math
import os
import signal
import sys
import threading

import psutil
import pytest

from engine import schema
from engine.cli import main as cli_main
from engine.config import parse_config
from engine.events import StepsLogged, TrialEnded
from engine.execution import ray_backend
from engine.resume import plan_resume, resume_sweep
from engine.runfile import RunData, read_run
from engine.sweep import run_sweep
from tests.conftest import tiny_table
from tests.test_resume import assert_same_numbers

# Ray's own timeouts are minutes; a sweep here takes seconds.
pytestmark = pytest.mark.timeout(120)
TABLE = tiny_table(sweep={"batch_sizes": [16, 32, 64]})


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -r requirements-ray.txt "
                              "(make test installs it)")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def write_config(tmp_path, table) -> str:
    path = tmp_path / "experiment.toml"
    path.write_text(parse_config(table).to_toml(), encoding="utf-8")
    return str(path)


def run_cli(arguments, capsys) -> tuple[RunData, str]:
    code = cli_main(arguments)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    run = read_run(captured.out.strip().splitlines()[-1])
    assert run.header.status == schema.COMPLETED
    return run, captured.err


def test_a_pruned_search_on_ray_writes_the_file_of_one_in_this_process(local_ray, tmp_path, one_thread_each,
                                                                       capsys):
    """The same search with a pruner (config, seed, one thread a trial) through `run` here and `run --ray auto`:
    the same points, one at a time (each chosen from the results before it), pruned at the same evaluations,
    the same numbers to the last bit."""
    search = write_config(tmp_path, tiny_table(train={"epochs": 3}, sweep={
        "strategy": "random", "trials": 8, "batch_size_min": 4, "batch_size_max": 128, "pruner": "median",
        "lr_min": 0.0005, "lr_max": 1.0}))
    here, _ = run_cli(["run", search, "--out", str(tmp_path / "here"), "--threads", "1"], capsys)
    on_ray, err = run_cli(["run", search, "--out", str(tmp_path / "ray"), "--threads", "1", "--ray", "auto"],
                          capsys)
    assert "trials on the Ray cluster at auto: 1 node, 2 CPUs; up to 1 at once, 1 CPU thread each" in err
    assert [t.name for t in on_ray.trials] == [t.name for t in here.trials]
    for trial, expected in zip(on_ray.trials, here.trials):
        assert (trial.status, trial.error, trial.proposed_by, trial.pruned_step) == \
            (expected.status, expected.error, "random", expected.pruned_step)
        assert trial.objective == expected.objective or math.isnan(trial.objective) and math.isnan(expected.objective)
        assert_same_numbers(trial, expected)
    # The pruner in the driver stopped trials on the cluster, after the same evaluations as here.
    assert schema.PRUNED in {t.status for t in here.trials} and schema.COMPLETED in {t.status for t in here.trials}
    # Several drivers may share one study (--storage; its sampler is seeded by the process, so not compared).
    shared, _ = run_cli(["run", search, "--out", str(tmp_path / "shared"), "--threads", "1", "--ray", "auto",
                         "--storage", str(tmp_path / "study.journal")], capsys)
    assert shared.trials and {t.status for t in shared.trials} <= {schema.COMPLETED, schema.PRUNED}
    assert (tmp_path / "study.journal").stat().st_size > 0


def trial_task(name: str) -> psutil.Process:
    """The Ray worker process running the task of trial `name` (Ray titles a busy worker after its task)."""
    for child in psutil.Process().children(recursive=True):
        try:
            if " ".join(child.cmdline()).startswith(f"ray::{ray_backend.TASK_PREFIX}{name}"):
                return child
        except psutil.Error:
            pass
    raise AssertionError(f"no Ray worker trains {name}")


def test_a_killed_task_fails_its_trial_stop_cancels_and_resume_trains_the_rest(local_ray, tmp_path,
                                                                              one_thread_each):
    """A grid on two CPUs, two trials at once: the worker training bs8 is killed (kill -9), Stop comes while
    bs4 trains; resuming on Ray trains what is missing with a sequential sweep's numbers. A task sends its events
    every 0.2 s, so the trials killed and stopped are long enough not to end within one batch of events."""
    table = tiny_table(data={"num_samples": 3000}, train={"epochs": 3}, sweep={"batch_sizes": [8, 4, 32]})
    stop, killed = threading.Event(), []

    def kill_then_stop(event):
        if isinstance(event, StepsLogged) and event.trial.batch_size == 8 and not killed:
            os.kill(trial_task(event.trial.name).pid, signal.SIGKILL)
            killed.append(event.trial.name)
        elif isinstance(event, TrialEnded) and event.trial.name in killed:
            stop.set()   # bs4, begun with bs8 and twice as long, still trains

    with ray_backend.on_cluster("auto"):
        path = run_sweep(parse_config(table), tmp_path / "ray", on_event=kill_then_stop, stop=stop)
        statuses = {t.name: (t.status, t.error) for t in read_run(path).trials}
        resumed = read_run(resume_sweep(plan_resume(path)))
    assert statuses[killed[0]][0] == schema.FAILED
    assert "Ray worker process training this trial died" in statuses[killed[0]][1]
    assert statuses["bs00004_seed0"] == (schema.CANCELLED, "stopped: its Ray task was cancelled")
    assert resumed.header.status == schema.COMPLETED
    sequential = {t.name: t for t in read_run(run_sweep(parse_config(
        {**table, "sweep": {**table["sweep"], "batch_sizes": [4, 32]}}), tmp_path / "sequential")).trials}
    for trial in resumed.trials:
        if trial.name == killed[0]:
            assert (trial.status, trial.error) == statuses[killed[0]]   # a failed trial is kept as it ended
        else:
            assert trial.status == schema.COMPLETED
            assert_same_numbers(trial, sequential[trial.name])
    assert sorted(t.name for t in resumed.trials) == sorted([*sequential, *killed])


def test_without_ray_installed_and_with_ranks_run_ray_is_one_line(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path, tiny_table(sweep={"batch_sizes": [16, 32], "data_parallel": 2}))
    assert cli_main(["run", config, "--out", str(tmp_path), "--ray", "auto"]) == 2
    assert capsys.readouterr().err.startswith("error: sweep.data_parallel = 2 with --ray: ")
    monkeypatch.setitem(sys.modules, "ray", None)   # as where the extra is not installed
    assert cli_main(["run", write_config(tmp_path, TABLE), "--out", str(tmp_path), "--ray", "auto"]) == 2
    assert capsys.readouterr().err == "error: Ray is not installed: pip install -r requirements-ray.txt\n"
    assert list(tmp_path.glob("*.h5")) == []


def test_an_address_where_no_cluster_answers_is_one_line_at_once(tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install -r requirements-ray.txt")
    assert cli_main(["run", write_config(tmp_path, TABLE), "--out", str(tmp_path), "--ray", "127.0.0.1:1"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --ray 127.0.0.1:1") and ": no Ray cluster answers there (" in error
    assert error.count("\n") == 1
    assert list(tmp_path.glob("*.h5")) == []
