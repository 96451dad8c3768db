"""Ctrl-C at the very start of `main.py run`, while torch is still being imported, ends like a Ctrl-C during
training: exit 130, no traceback; before any file exists, one line."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from tests.conftest import ROOT, tiny_table

pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(),
                                reason="knows when torch loads from /proc/<pid>/maps (Linux only)")


def _default_ctrl_c() -> None:
    # A shell starts background jobs with SIGINT ignored and children inherit that; a terminal's Ctrl-C meets
    # the default disposition, so the child gets it too.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _loading_torch(pid: int) -> bool:
    """True once torch's shared library is mapped into the process: the import has begun, and takes seconds."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def test_ctrl_c_while_torch_is_imported_exits_130_with_one_line(tmp_path):
    config = tmp_path / "long.toml"
    # So long that the signal lands during the import or during training, however fast this machine is.
    config.write_text(tomli_w.dumps(tiny_table(train={"epochs": 100_000})), encoding="utf-8")
    process = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "run", str(config), "--out",
                                str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_default_ctrl_c)
    deadline = time.monotonic() + 120
    while not _loading_torch(process.pid):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "torch was never loaded"
        time.sleep(0.001)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    if stdout.strip():
        # The import had finished: the sweep stopped and printed its file, as after any Ctrl-C in training.
        assert stdout.strip().splitlines()[-1].endswith(".h5")
    else:
        assert stderr.splitlines() == ["interrupted"]
