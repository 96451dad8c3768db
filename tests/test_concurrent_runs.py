"""Runs side by side: two `run`s of one name into one folder get two files, a long name is shortened safely,
and a run another process is writing can be read (shown as running) while it is written."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tomli_w

from engine import schema
from engine.runfile import RunWriter, read_header, read_run
from tests.conftest import ROOT, tiny_table

# Creates run files of one name in one folder as fast as it can, all starting at the same moment (a file
# that appears as the starting gun, fired once every creator has said it is ready), and prints the paths.
CREATOR = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from engine.runfile import RunWriter
folder, gun, name = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
Path(sys.argv[6]).touch()
while not gun.exists():
    time.sleep(0.001)
for _ in range(int(sys.argv[5])):
    writer = RunWriter.create(folder, name, 'name = "same"\n', {"device_name": "test"})
    writer.close("completed")
    print(writer.path, flush=True)
"""


def test_simultaneous_runs_of_one_name_get_separate_files(tmp_path):
    gun = tmp_path / "go"
    folder = tmp_path / "runs"
    folder.mkdir()
    ready = [tmp_path / f"ready-{index}" for index in range(4)]
    creators = [subprocess.Popen([sys.executable, "-c", CREATOR, str(ROOT), str(folder), str(gun), "same", "15",
                                  str(flag)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for flag in ready]
    while not all(flag.exists() for flag in ready):     # all four imported and waiting for the gun
        assert all(creator.poll() is None for creator in creators)
        time.sleep(0.01)
    gun.touch()
    paths = []
    for creator in creators:
        out, err = creator.communicate(timeout=300)
        assert creator.returncode == 0, err
        paths += out.split()
    assert len(paths) == 60 and len(set(paths)) == 60
    assert sorted(paths) == sorted(str(path) for path in folder.glob("*.h5"))
    for path in paths:
        assert read_header(path).status == schema.COMPLETED


def test_two_cli_runs_of_one_name_at_once(tmp_path):
    config = tmp_path / "same.toml"
    config.write_text(tomli_w.dumps(tiny_table(train={"epochs": 1}, sweep={"batch_sizes": [32], "device": "cpu"})))
    runs = [subprocess.Popen([sys.executable, str(ROOT / "main.py"), "run", str(config), "--out", str(tmp_path / "o")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    paths = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(paths) == 2 and all(read_run(path).trials[0].epochs_done == 1 for path in paths)


@pytest.mark.parametrize("name", ["x" * 300, "é" * 300, "数据" * 100 + "-experiment"])
def test_a_long_name_is_shortened_to_fit_a_file_name(tmp_path, name):
    writers = [RunWriter.create(tmp_path, name, 'name = "long"\n', {}) for _ in range(3)]
    for writer in writers:
        writer.close(schema.COMPLETED)
        file_name = writer.path.name
        assert len(file_name.encode()) <= 255 and file_name.endswith(".h5")
        assert name.startswith(file_name.split("-2")[0][:50])    # the start of the name, cut at a character
        file_name.encode().decode("utf-8")
    assert len({writer.path for writer in writers}) == 3


def test_a_run_being_written_reads_as_running(tmp_path):
    path = tmp_path / "live.h5"
    writer = RunWriter(path, 'name = "live"\n[data]\ndataset = "synthetic"\n', {"device_name": "test"})
    writer.start_trial("t", {"batch_size": 8, "seed": 0, "lr": 0.1})
    steps = np.arange(1, 11)
    writer.add_steps("t", {"step": steps, "samples": steps * 8, "wall_time_s": steps * 0.1,
                           "loss": np.ones(10, np.float32), "lr": np.ones(10, np.float32),
                           "grad_norm": np.ones(10, np.float32)})
    writer.add_epoch("t", {m.name: 1 for m in schema.EPOCH_METRICS})
    # The writer holds HDF5's lock: the old reader said "unable to lock file" here.
    header = read_header(path)
    assert header.status == schema.RUNNING and header.being_written
    assert header.note == "being written: a sweep is running"
    assert read_run(path).trials[0].epochs_done == 1
    writer.close(schema.COMPLETED)
    assert not read_header(path).being_written and read_header(path).note == ""


def test_a_file_that_never_reads_while_it_is_written_is_not_called_damaged(tmp_path):
    # Every try catching the writer mid-save (a run of millisecond epochs) is not damage: the file is whole between
    # saves. Here the lock a writer holds, on bytes that never read, stands for a writer always saving.
    import fcntl
    from engine.errors import RunFileError
    path = tmp_path / "busy.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(3000))
    with path.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RunFileError) as caught:
            read_run(path)
    assert "could not be read while it is being written" in str(caught.value)
    assert "damaged" not in str(caught.value)
    with pytest.raises(RunFileError, match="damaged run file"):   # once nobody writes it, it is damaged
        read_run(path)


def test_report_follows_a_cli_run_while_it_trains(tmp_path):
    # A real sweep in another process; `report` on its file while it trains answers, and says it is running.
    config = tmp_path / "slow.toml"
    # Far more epochs than it is given time for: it is killed once the reports are taken. Epochs of 300 steps, so
    # that the file is between flushes most of the time, as a real run's is: the tiny set's 30-step epochs kept it
    # in a flush so often on a loaded machine that all five tries of a read could catch one (HDF5 can then spin).
    config.write_text(tomli_w.dumps(tiny_table(data={"num_samples": 3000}, train={"epochs": 5000},
                                               sweep={"batch_sizes": [8], "device": "cpu"})))
    out = tmp_path / "o"
    run = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "run", str(config), "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        reports = []
        deadline = time.monotonic() + 240
        while run.poll() is None and time.monotonic() < deadline and len(reports) < 3:
            files = list(out.glob("*.h5")) if out.exists() else []
            if files and os.path.getsize(files[0]) > 0:
                report = subprocess.run([sys.executable, str(ROOT / "main.py"), "report", str(files[0])],
                                        capture_output=True, text=True, timeout=120)
                reports.append(report)
            time.sleep(0.2)
    finally:
        run.kill()
        run.wait()
    assert len(reports) == 3, "the sweep ended before the reports were taken"
    for report in reports:
        assert report.returncode == 0, report.stderr
        assert "running" in report.stdout.splitlines()[0]
        assert "being written" in report.stdout
