"""A full disk or a file size limit stops a run with one line and exit status 3, and the run file still opens
with every epoch that finished before it. Real limits: RLIMIT_FSIZE in a child process (no root needed), and
a small tmpfs where the tests run as root."""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import tomli_w

from engine import schema
from engine.runfile import read_run
from tests.conftest import ROOT, tiny_table

# Writes trials of 3 epochs until the writer stops; prints what it wrote, then the error line. Each size
# limit is a soft RLIMIT_FSIZE set in this one child, with SIGXFSZ ignored so a write gets EFBIG instead.
WRITER = r"""
import json, resource, signal, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from engine import schema
from engine.errors import RunWriteError
from engine.runfile import RunWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
folder, limits, steps = sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
for limit in limits:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    path = f"{folder}/limit-{limit}.h5"
    epochs = {}
    try:
        writer = RunWriter(path, 'name = "limit"\n', {"device_name": "test"})
        for trial in range(40):
            name = schema.trial_name(8 * (trial + 1), 0)
            writer.start_trial(name, {"batch_size": 8 * (trial + 1), "seed": 0, "lr": 0.1})
            for epoch in range(1, 4):
                rows = np.arange(steps) + (epoch - 1) * steps
                writer.add_steps(name, {"step": rows, "samples": rows * 8, "wall_time_s": rows * 0.1,
                                        "loss": np.ones(steps, np.float32), "lr": np.ones(steps, np.float32),
                                        "grad_norm": np.ones(steps, np.float32)})
                writer.add_epoch(name, {m.name: epoch for m in schema.EPOCH_METRICS})
                epochs[name] = epoch
            writer.end_trial(name, schema.COMPLETED)
        writer.close(schema.COMPLETED)
        error = ""
    except RunWriteError as failure:
        error = str(failure)
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    print(json.dumps({"path": path, "limit": limit, "epochs": epochs, "error": error}), flush=True)
"""


def _ignore_sigxfsz():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.mark.parametrize("steps", [30, 2000])
def test_every_size_limit_keeps_every_finished_epoch(tmp_path, steps):
    # From a limit that leaves no room for the first epoch to one that stops in the fourth trial; 2000 steps
    # per epoch fill step chunks within one epoch. A write that started without room would leave a file
    # that does not open, or fewer epochs than the writer reported.
    limits = [20_000, 60_000, 150_000, 300_000, 420_000, 555_555, 700_000, 900_000, 1_300_000, 2_000_000]
    result = subprocess.run([sys.executable, "-c", WRITER, str(ROOT), str(tmp_path), json.dumps(limits), str(steps)],
                            capture_output=True, text=True, timeout=300, preexec_fn=_ignore_sigxfsz)
    assert result.returncode == 0, result.stderr
    outcomes = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["limit"] for o in outcomes] == limits
    saved_somewhere = 0
    for outcome in outcomes:
        assert outcome["error"].startswith("file size limit reached writing "), outcome
        assert "\n" not in outcome["error"]
        path = Path(outcome["path"])
        if not path.exists():          # no room even for the header: nothing is left behind
            assert outcome["limit"] < 100_000
            continue
        assert path.stat().st_size <= outcome["limit"]
        run = read_run(path)
        assert run.header.status == schema.FAILED
        saved = {trial.name: trial.epochs_done for trial in run.trials if trial.epochs_done}
        assert saved == outcome["epochs"], outcome
        for trial in run.trials:
            assert len(trial.step["step"]) == trial.epochs_done * steps
            if trial.status == schema.FAILED:
                assert trial.error == outcome["error"]
        saved_somewhere += sum(saved.values())
    assert saved_somewhere > 20


def _config(folder: Path) -> Path:
    path = folder / "experiment.toml"
    table = tiny_table(train={"epochs": 3}, sweep={"batch_sizes": [8, 16, 24, 32, 48, 64], "device": "cpu"})
    path.write_text(tomli_w.dumps(table))
    return path


def _run_cli(args, limit_bytes=None, timeout=300):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # as a shell's `ulimit -f` child sees it in Python
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit)


def _assert_stopped_cleanly(result, out: Path, words: str):
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {words} writing {out}"), result.stderr
    files = list(out.glob("*.h5"))
    assert len(files) == 1
    run = read_run(files[0])
    assert run.header.status == schema.FAILED
    assert sum(trial.epochs_done for trial in run.trials) >= 3
    assert run.trials[0].status == schema.COMPLETED
    return run


def test_run_under_ulimit_f_exits_3_with_one_line(tmp_path):
    out = tmp_path / "runs"
    _assert_stopped_cleanly(_run_cli(["run", _config(tmp_path), "--out", out], limit_bytes=1536 * 1024), out,
                            "file size limit reached")


@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="mounting a tmpfs needs root on Linux")
def test_run_on_a_full_tmpfs_exits_3_with_one_line(tmp_path):
    mount = Path(tempfile.mkdtemp(prefix="bsl-full-"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(mount)]).returncode != 0:
        shutil.rmtree(mount, ignore_errors=True)
        pytest.skip("mount -t tmpfs failed (a container without the capability)")
    try:
        out = mount / "full"
        _assert_stopped_cleanly(_run_cli(["run", _config(tmp_path), "--out", out]), out, "disk full")
        report = _run_cli(["report", next(out.glob("*.h5"))])
        assert report.returncode == 0 and "failed" in report.stdout
    finally:
        subprocess.run(["umount", str(mount)])
        shutil.rmtree(mount, ignore_errors=True)
