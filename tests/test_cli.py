"""The command line as a user runs it: real subprocesses, real exit codes, real signals."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import tomli_w

from engine import schema
from engine.runfile import read_run
from tests.conftest import ROOT, frozen_where_whole, tiny_table


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=os.environ.copy())


def write_config(folder: Path, **sections) -> Path:
    path = folder / "experiment.toml"
    path.write_text(tomli_w.dumps(tiny_table(**sections)))
    return path


def test_run_prints_the_run_file_last_and_report_reads_it(tmp_path):
    result = cli("run", write_config(tmp_path), "--out", tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.exists() and path.parent == tmp_path / "runs"
    assert "Traceback" not in result.stderr
    assert "sample" in result.stderr   # the progress bar

    report = cli("report", path, "--csv", tmp_path / "t.csv", "--png", tmp_path / "t.png")
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    assert "batch size" in lines[1] and "best val acc" in lines[1] and "samples/s" in lines[1]
    assert len([line for line in lines[2:] if "completed" in line]) == 3
    with open(tmp_path / "t.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["batch_size"]) for r in rows] == [16, 32, 64]
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_invalid_config_exits_2_with_one_line_per_problem(tmp_path):
    config = write_config(tmp_path, train={"lr": -1, "optimiser": "sgd"}, model={"kind": "resnet"})
    result = cli("run", config, "--out", tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines)
    assert any("train.lr = -1" in line for line in lines)
    assert any("train.optimiser: unknown key" in line for line in lines)
    assert any("model.kind = 'resnet'" in line for line in lines)
    assert "Traceback" not in result.stderr and not list(tmp_path.glob("*.h5"))


def test_missing_files_exit_2_naming_them(tmp_path):
    result = cli("run", tmp_path / "nope.toml", "--out", tmp_path)
    assert result.returncode == 2 and "nope.toml: no such config file" in result.stderr
    result = cli("run", write_config(tmp_path, data={"dataset": "missing.csv"}), "--out", tmp_path)
    assert result.returncode == 2 and "data.dataset = 'missing.csv': no such file" in result.stderr


def test_malformed_data_file_exits_2_naming_it(tmp_path):
    data = tmp_path / "broken.csv"
    data.write_text("a,b,label\n1,2,0\n3,oops,1\n")
    result = cli("run", write_config(tmp_path, data={"dataset": "broken.csv"}), "--out", tmp_path)
    assert result.returncode == 2, result.stderr
    assert "broken.csv" in result.stderr and "Traceback" not in result.stderr


def test_report_refuses_files_that_are_not_run_files(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    result = cli("report", text)
    assert result.returncode == 2 and "not a Batch Size Lab run file" in result.stderr
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["x"] = [1, 2, 3]
    result = cli("report", tmp_path / "other.h5")
    assert result.returncode == 2 and "no format = 'batch-size-lab'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_demo_preset_runs_by_name(tmp_path):
    result = cli("run", "demo", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    run = read_run(result.stdout.strip().splitlines()[-1])
    assert run.header.name == "demo" and run.header.dataset == "mnist1d"
    assert all(t.status == schema.COMPLETED for t in run.trials)
    result = cli("run", "no-such-preset", "--out", tmp_path)
    assert result.returncode == 2 and "no-such-preset: no such config file" in result.stderr


def test_version():
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("Batch Size Lab ")


def _start_long_run(tmp_path):
    config = write_config(tmp_path, train={"epochs": 100_000}, sweep={"batch_sizes": [8, 16]},
                          data={"num_samples": 2000})
    return subprocess.Popen([sys.executable, str(ROOT / "main.py"), "run", str(config), "--out",
                             str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_epochs(folder: Path, epochs: int, process, timeout=60.0) -> Path:
    """Poll the file being written (read without the lock) until the first trial has `epochs` epochs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        for path in folder.glob("*.h5"):
            try:
                with h5py.File(path, "r", locking=False) as handle:
                    if len(handle["trials/bs00008_seed0/epoch/epoch"]) >= epochs:
                        return path
            except (OSError, KeyError):
                pass   # caught mid-write, or not created yet
        time.sleep(0.1)
    raise AssertionError("the run never reached the wanted epoch")


def test_sigkill_mid_trial_leaves_a_readable_file_with_finished_epochs(tmp_path):
    process = _start_long_run(tmp_path)
    path = _wait_for_epochs(tmp_path / "runs", 3, process)
    while not frozen_where_whole(process, path):
        time.sleep(0.01)
    process.kill()
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    run = read_run(path)
    trial = run.trials[0]
    assert run.header.status == schema.RUNNING and trial.status == schema.RUNNING
    assert trial.epochs_done >= 3
    assert list(trial.epoch["epoch"]) == list(range(1, trial.epochs_done + 1))
    assert len(trial.step["step"]) >= trial.epochs_done * trial.steps_per_epoch


def test_ctrl_c_saves_the_trial_as_cancelled_and_exits_130(tmp_path):
    process = _start_long_run(tmp_path)
    path = _wait_for_epochs(tmp_path / "runs", 2, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stdout.strip().splitlines()[-1] == str(path)
    assert "Traceback" not in stderr
    run = read_run(path)
    assert run.header.status == schema.CANCELLED
    assert [t.status for t in run.trials] == [schema.CANCELLED]
    assert run.trials[0].epochs_done >= 2
