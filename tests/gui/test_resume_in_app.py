"""Resume in the app: the runs browser offers it for a run that did not complete, the window goes on with the
sweep in the same file and shows the whole sweep, kept trials included."""
from __future__ import annotations

import subprocess
import sys
import threading

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from engine import schema
from engine.config import parse_config
from engine.events import EpochEnded
from engine.runfile import read_attempts, read_run
from engine.sweep import run_sweep
from gui.runs_browser import RunsBrowser
from tests.conftest import tiny_table

SWEEP_TIMEOUT_MS = 60_000


def _stopped_run(folder):
    """A real sweep stopped by its stop flag after the first epoch of its second trial (as Stop does)."""
    stop = threading.Event()

    def on_event(event) -> None:
        if isinstance(event, EpochEnded) and event.trial.index == 1:
            stop.set()

    config = parse_config(tiny_table(name="stopped", train={"epochs": 2}, sweep={"batch_sizes": [16, 32, 64]}))
    return run_sweep(config, folder, stop=stop, on_event=on_event)


def test_resume_from_the_runs_browser_finishes_the_sweep_in_the_same_file(qtbot, main_window, workspace):
    window = main_window
    stopped = _stopped_run(workspace)
    complete = run_sweep(parse_config(tiny_table(name="complete", sweep={"batch_sizes": [32]})), workspace)
    before = read_run(stopped)
    assert [(t.batch_size, t.status) for t in before.trials] == [(16, schema.COMPLETED), (32, schema.CANCELLED)]

    browser = window.runs_browser
    browser.refresh()
    resume_button = next(b for b in browser.findChildren(QPushButton) if b.text() == "Resume")
    browser.select_paths([complete])
    assert not resume_button.isEnabled()      # nothing to go on with
    browser.select_paths([stopped, complete])
    assert not resume_button.isEnabled()      # one run at a time
    browser.select_paths([stopped])
    assert resume_button.isEnabled()
    menu_texts = [action.text() for action in browser.table_widget().actions() if action.isEnabled()]
    assert "Resume" in menu_texts

    with qtbot.waitSignal(window.sweep_finished, timeout=SWEEP_TIMEOUT_MS) as finished:
        qtbot.mouseClick(resume_button, Qt.MouseButton.LeftButton)
        assert window.is_running() and not window.run_action.isEnabled()
        window.resume_sweep(stopped)          # pressed again while it runs: one sweep at a time, and it says so
    assert finished.args[0] == str(stopped)
    assert any("can be resumed once the running sweep has ended" in text for text in window.message_texts("warning"))

    run = read_run(stopped)
    assert run.header.status == schema.COMPLETED
    assert [(t.batch_size, t.status) for t in run.trials] == [(16, schema.COMPLETED), (32, schema.COMPLETED),
                                                              (64, schema.COMPLETED)]
    kept = run.trials[0]
    assert list(kept.epoch["wall_time_s"]) == list(before.trials[0].epoch["wall_time_s"])   # untouched
    assert [(a.status, a.epochs_done) for a in read_attempts(stopped)["bs00032_seed0"]] == [(schema.CANCELLED, 1)]

    # The live view holds the whole sweep, the kept trial as well, and the listing says it finished.
    rows = window.trial_table.table_model.rows()
    assert [(r.batch_size, r.status) for r in rows] == [(16, "completed"), (32, "completed"), (64, "completed")]
    assert [t.epochs_done for t in window.shown_runs()[0].trials] == [2, 2, 2]
    browser.select_paths([stopped])
    assert not resume_button.isEnabled()
    assert any("Resuming" in text for text in window.message_texts())


def test_resuming_a_run_that_cannot_go_on_is_one_message(qtbot, main_window, workspace):
    window = main_window
    stopped = _stopped_run(workspace)
    stopped.write_bytes(stopped.read_bytes()[:3000])    # damaged after it was listed
    with qtbot.waitSignal(window.sweep_finished, timeout=SWEEP_TIMEOUT_MS) as finished:
        window.resume_sweep(stopped)
    assert finished.args[0] == ""
    errors = window.message_texts("error")
    assert len(errors) == 1 and str(stopped) in errors[0]
    assert window.run_action.isEnabled() and not window.is_running()


def test_a_run_another_process_is_writing_is_not_offered_for_resuming(qtbot, tmp_path):
    stopped = _stopped_run(tmp_path)
    # As a sweep writing it would be: open for writing, status running.
    writer = subprocess.Popen([sys.executable, "-c", "import sys, h5py; f = h5py.File(sys.argv[1], 'r+'); "
                               "f.attrs['status'] = 'running'; f.flush(); print('open', flush=True); "
                               "sys.stdin.read()", str(stopped)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "open"
        browser = RunsBrowser(tmp_path)
        qtbot.addWidget(browser)
        browser.select_paths([stopped])
        assert browser.selected_paths() == [stopped] and browser.resumable_path() is None
    finally:
        writer.communicate("", timeout=30)
