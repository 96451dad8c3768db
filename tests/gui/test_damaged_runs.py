"""Damaged, crashing and unfinished run files in the workspace: the app starts, the runs browser lists each with
its one-line reason, and opening one logs that line."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from engine import schema
from gui.runs_browser import COLUMNS, RunsBrowser
from tests.conftest import ROOT
from tests.damaged_corpus import LEGACY_CRASHERS, write_legacy_copy, write_source

STATUS = COLUMNS.index("Status")


def _damaged_workspace(folder: Path) -> Path:
    folder.mkdir()
    good = write_source(folder / "good.h5")
    bad_version = write_source(folder / "bad-version.h5")
    with h5py.File(bad_version, "r+") as handle:
        handle.attrs["format_version"] = "abc"
    legacy = write_legacy_copy(good, folder.parent / "legacy.h5")
    data = bytearray(legacy.read_bytes())
    offset, xor = LEGACY_CRASHERS[0]
    data[offset] ^= xor
    (folder / "crashes-hdf5.h5").write_bytes(bytes(data))
    (folder / "truncated.h5").write_bytes(good.read_bytes()[:3000])
    (folder / "empty.h5").write_bytes(b"")
    return folder


@pytest.fixture
def workspace(tmp_path) -> Path:
    return _damaged_workspace(tmp_path / "runs")


def _status(browser: RunsBrowser, name: str) -> str:
    row = [path.name for path in browser.paths()].index(name)
    return browser.table_widget().item(row, STATUS).text()


def test_each_damaged_file_is_listed_with_its_reason(qtbot, workspace):
    browser = RunsBrowser(workspace)
    qtbot.addWidget(browser)
    assert _status(browser, "good.h5").startswith("finished")
    assert _status(browser, "bad-version.h5") == "damaged: format_version = 'abc', expected a whole number"
    assert _status(browser, "crashes-hdf5.h5") == "damaged: reading it crashed the HDF5 library: SIGSEGV"
    assert _status(browser, "truncated.h5").startswith("damaged: HDF5 cannot open it")
    assert _status(browser, "empty.h5") == "not a run file: empty file, not a run file (yet)"
    assert [entry.is_run for entry in browser.entries()].count(True) == 1


def test_a_run_that_was_not_closed_is_listed_as_interrupted(qtbot, tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    script = ("import os, sys; sys.path.insert(0, sys.argv[1]); from engine.runfile import RunWriter;"
              "from engine import schema; w = RunWriter(sys.argv[2], 'name = \"cut\"', {});"
              "w.start_trial('t', {'batch_size': 8, 'seed': 0, 'lr': 0.1});"
              "w.add_epoch('t', {m.name: 1 for m in schema.EPOCH_METRICS}); os._exit(0)")
    subprocess.run([sys.executable, "-c", script, str(ROOT), str(folder / "cut.h5")], check=True, timeout=120)
    browser = RunsBrowser(folder)
    qtbot.addWidget(browser)
    assert _status(browser, "cut.h5").startswith("interrupted (not closed by its writer)")
    assert browser.entries()[0].header.status == schema.RUNNING


def test_the_app_starts_with_damaged_files_in_its_workspace(tmp_path):
    workspace = _damaged_workspace(tmp_path / "runs")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path),
           "BATCH_SIZE_LAB_WORKSPACE": str(workspace)}
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--startup-check"], capture_output=True,
                          text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"window shown after \d+\.\d{3} s", done.stdout.strip()), done.stdout
    assert "Traceback" not in done.stderr


def test_open_run_on_damaged_files_logs_one_line_each(qtbot, workspace):
    from gui.main_window import MainWindow
    window = MainWindow()
    qtbot.addWidget(window)
    names = ("bad-version.h5", "crashes-hdf5.h5", "truncated.h5", "empty.h5")
    assert window.open_runs([workspace / name for name in names]) == []
    errors = window.message_texts("error")
    for name in names:
        lines = [line for line in errors if str(workspace / name) in line]
        assert len(lines) == 1 and "\n" not in lines[0], errors
    assert window.open_runs([workspace / "good.h5"])[0].header.name == "corpus"
    window.quit_without_asking()


def test_every_readable_damaged_file_shows_in_every_view(qtbot, tmp_path):
    # Damage the reader lets through (NaN columns, a short column, odd but valid attribute values...) must not
    # break the plots, the summary or the table: each such file is opened and every tab shown.
    from engine.errors import RunFileError
    from engine.runfile import read_run
    from gui.main_window import MainWindow
    from tests.damaged_corpus import make_corpus
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    readable = []
    for case in make_corpus(write_source(tmp_path / "source.h5"), tmp_path / "corpus", count=0):
        try:
            read_run(case.path)
        except RunFileError:
            continue
        readable.append(case)
    # Every view of every file takes half a second: `make test` shows every third file, `make fuzz` all of them.
    stride = 1 if os.environ.get("DAMAGED_FILES_IN_VIEWS") == "all" else 3
    shown = 0
    for case in readable[::stride]:
        assert window.open_runs([case.path]), case.name
        for tab in range(window.tabs.count()):
            window.tabs.setCurrentIndex(tab)
            qtbot.wait(1)
        shown += 1
    shutil.rmtree(tmp_path / "corpus")   # ~170 MB of copies: not left for pytest to keep
    assert shown > 100 // stride
    window.quit_without_asking()
