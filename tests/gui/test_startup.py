"""The app as `make run` starts it: a real process, the real main window, offscreen."""
import os
import re
import subprocess
import sys

from tests.conftest import ROOT


def test_main_py_opens_the_window_and_exits_cleanly(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--startup-check"], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"window shown after \d+\.\d{3} s", done.stdout.strip()), done.stdout
    assert "Traceback" not in done.stderr
