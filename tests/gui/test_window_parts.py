"""The main window's parts, each through what the user sees: the sweep's status bar, the trial table and its CSV,
the message log, export routing, the Experiment tab, the config-problem dialog, help, shortcuts, file manager."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QMessageBox, QStatusBar

from engine import schema
from engine.analysis import training_throughput
from engine.events import SweepEnded, TrialEnded
from engine.progress import SweepProgress
from engine.resources import presets
from engine.runfile import read_run
from gui.dialogs import MIN_TEXT_WIDTH
from gui.message_log import MAX_MESSAGES, MessageLog
from gui.sweep_status import SweepStatus
from gui.trial_table import TrialTable
from tests.gui.runfactory import sweep_events, write_run
from tests.progress_recordings import FakeClock


def test_status_bar_says_what_happens_while_preparing_then_the_time_left(qtbot):
    bar = QStatusBar()
    qtbot.addWidget(bar)
    clock = FakeClock()
    status = SweepStatus(bar, clock)
    progress = SweepProgress(clock)
    progress.start("Preparing the data set mnist1d…")
    status.show(progress)
    status.set_visible(running=True, sweep_shown=True)
    assert status.sweep_progress.maximum() == 0                     # a busy bar, not a stuck 0%
    assert not status.trial_progress.isVisibleTo(bar)               # no empty bar for a trial not yet begun
    assert status.trial_label.text() == "Preparing the data set mnist1d…"
    assert status.sweep_label.text() == "Preparing"

    events = list(sweep_events(batch_sizes=(16, 64), epochs=2, chunk_steps=16))
    for event in events[:-1]:
        clock.now += 0.05
        progress.apply(event)
        status.show(progress)
        if isinstance(event, TrialEnded):
            assert status.sweep_progress.maximum() > 0 and status.trial_progress.isVisibleTo(bar)
            shown = status.sweep_progress.format()
            clock.now += 0.1
            progress.apply(event)       # nothing new, and soon after: the bars are not redrawn
            status.sweep_progress.setFormat("unchanged")
            status.show(progress)
            assert status.sweep_progress.format() == "unchanged"
            status.sweep_progress.setFormat(shown)
            assert status.sweep_progress.format().endswith(" left")
            assert status.sweep_progress.format().split(" · ")[0].endswith("%")
    clock.now += 0.05
    progress.apply(events[-1])
    status.finished(progress)
    assert status.sweep_progress.format().startswith("done in")
    assert status.sweep_progress.value() == status.sweep_progress.maximum()
    assert status.trial_label.text() == ""


def test_a_stopped_sweep_says_so_in_the_status_bar(qtbot):
    bar = QStatusBar()
    qtbot.addWidget(bar)
    status = SweepStatus(bar)
    progress = SweepProgress(FakeClock())
    progress.start()
    for event in sweep_events(batch_sizes=(16, 64), stop_after_trials=1):
        progress.apply(event)
    assert isinstance(event, SweepEnded)
    status.finished(progress)
    assert status.sweep_progress.format().startswith("cancelled after")


def test_trial_table_csv_holds_numbers_with_units_and_the_summarys_throughput(qtbot, main_window, tmp_path):
    window = main_window
    path = write_run(tmp_path / "units.h5", name="units", batch_sizes=(16, 64),
                     statuses={64: schema.OUT_OF_MEMORY})
    window.open_runs([path])
    out = tmp_path / "trials.csv"
    window.export_table(out, "trials")
    with open(out, encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    header = table[0]
    assert header == ["Batch size", "Seed", "Learning rate", "Status", "Epoch", "Best val. accuracy (%)",
                      "Throughput (samples/s)", "Peak memory (MiB)", "Training time (s)"]
    rows = [dict(zip(header, row)) for row in table[1:]]
    run = read_run(path)
    trial = run.trials[0]
    first = rows[0]
    assert first["Status"] == "completed" and rows[1]["Status"] == "out_of_memory"
    assert float(first["Best val. accuracy (%)"]) == pytest.approx(100 * max(trial.epoch["val_accuracy"]))
    assert float(first["Throughput (samples/s)"]) == pytest.approx(training_throughput(trial))
    assert float(first["Peak memory (MiB)"]) == pytest.approx(max(trial.epoch["peak_memory_bytes"]) / 2**20)
    assert float(first["Training time (s)"]) > 0
    assert rows[1]["Best val. accuracy (%)"] == ""                   # nothing measured: an empty cell
    # On screen: the unit in the header, bare numbers in the cells; the same throughput as the Summary's.
    model = window.trial_table.table_model
    titles = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert "Throughput (samples/s)" in titles
    shown = model.data(model.index(0, titles.index("Throughput (samples/s)")))
    assert float(shown.replace(",", "")) == pytest.approx(training_throughput(trial), abs=1)


def test_several_runs_are_named_by_file_in_the_trial_csv_as_in_the_summary_csv(qtbot, main_window, tmp_path):
    window = main_window
    first = write_run(tmp_path / "same-name-1.h5", name="same", batch_sizes=(16,))
    second = write_run(tmp_path / "same-name-2.h5", name="same", batch_sizes=(16,))
    window.open_runs([first, second])
    window.export_table(tmp_path / "trials.csv", "trials")
    window.export_table(tmp_path / "summary.csv", "summary")
    with open(tmp_path / "trials.csv", encoding="utf-8") as handle:
        trials = list(csv.DictReader(handle))
    with open(tmp_path / "summary.csv", encoding="utf-8") as handle:
        summary = list(csv.DictReader(handle))
    assert sorted(row["Run"] for row in trials) == ["same-name-1", "same-name-2"]
    assert {row["Run"] for row in trials} == {row["Run"] for row in summary}


def test_message_log_keeps_levels_and_the_newest_messages(qtbot):
    log = MessageLog()
    qtbot.addWidget(log)
    log.add("first")
    log.add("careful", "warning")
    log.add("broken", "error")
    assert log.texts() == ["first", "careful", "broken"]
    assert log.texts("warning") == ["careful"] and log.texts("error") == ["broken"]
    for number in range(MAX_MESSAGES):
        log.add(f"message {number}")
    assert log.count() == MAX_MESSAGES and log.texts()[-1] == f"message {MAX_MESSAGES - 1}"
    assert "first" not in log.texts()
    log.copy_to_clipboard()
    assert QApplication.clipboard().text().splitlines()[-1].endswith(f"message {MAX_MESSAGES - 1}")
    # The newest message is scrolled to, once the burst is over.
    log.show()
    log.add("newest")
    bar = log.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())


def test_exports_follow_the_tab_and_suggest_the_runs_name(qtbot, main_window, tmp_path):
    window = main_window
    path = write_run(tmp_path / "named-run.h5", name="named", batch_sizes=(16, 32))
    window.open_runs([path])
    routing = window.exports
    for widget, table, view in ((window.live_splitter, "trials", window.plots),
                                (window.summary, "summary", window.summary),
                                (window.runs_browser, "runs", window.plots)):
        window.tabs.setCurrentWidget(widget)
        assert routing.table_name() == table and routing.plot_view() is view
    assert routing.suggested_name("trials", "csv") == "named-run-trials.csv"
    assert routing.suggested_name("runs", "csv") == "runs.csv"


def test_experiment_tab_shows_a_presets_claim_and_an_opened_runs_config(qtbot, main_window, tmp_path):
    window = main_window
    preset = presets()["demo"]
    assert window.load_config_file(preset)
    window.tabs.setCurrentWidget(window.experiment)
    panel = window.experiment
    assert panel.description.text().startswith("A first look")
    assert 'name = "demo"' in panel.config_view.toPlainText()
    assert not panel.run_again_button.isEnabled()                   # the form is already this experiment

    path = write_run(tmp_path / "opened.h5", name="opened", batch_sizes=(16,), dataset="synthetic")
    window.open_runs([path])
    window.tabs.setCurrentWidget(panel)
    assert panel.title.text() == "opened" and "opened.h5" in panel.source.text()
    assert panel.config_view.toPlainText() == read_run(path).config_text
    assert panel.config_view.isReadOnly()
    panel.load_button.click()
    assert window.setup.table()["name"] == "opened"


def test_run_again_trains_the_shown_runs_config_into_a_new_file(qtbot, main_window, tmp_path):
    window = main_window
    path = write_run(tmp_path / "again.h5", name="again", batch_sizes=(16,), epochs=1, dataset="synthetic")
    window.open_runs([path])
    with qtbot.waitSignal(window.sweep_finished, timeout=60_000) as finished:
        window.experiment.run_again_button.click()
        assert not window.experiment.run_again_button.isEnabled()      # one sweep at a time
    new = read_run(finished.args[0])
    assert new.path != path and new.header.name == "again" and [t.batch_size for t in new.trials] == [16]
    assert new.path.name in window.experiment.source.text() and "completed" in window.experiment.source.text()


def test_config_problems_dialog_is_wide_and_lists_each_problem(qtbot, main_window, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[train]\nlr = -1\nlearning_rate = 3\n', encoding="utf-8")
    seen = {}

    def inspect():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, inspect)
            return
        seen["width"] = box.width()
        seen["text"] = box.informativeText()
        box.button(QMessageBox.StandardButton.Ok).click()

    QTimer.singleShot(0, inspect)
    assert not main_window.load_config_file(bad)
    assert seen["width"] >= MIN_TEXT_WIDTH
    assert seen["text"].count("<li>") == 2 and "train.lr" in seen["text"]


def test_help_page_explains_the_views_and_lists_every_shortcut(qtbot, main_window):
    dialog = main_window.show_help()
    text = dialog.text()
    for phrase in ("Time to target", "recommendation", "Gradient norm", "not run", "Keyboard shortcuts"):
        assert phrase in text
    for action in (main_window.run_action, main_window.export_png_action, main_window.tab_actions[1]):
        assert action.shortcut().toString(QKeySequence.SequenceFormat.NativeText) in text
    dialog.close()


def test_no_two_commands_share_a_shortcut_and_alt_numbers_switch_tabs(qtbot, main_window):
    window = main_window
    keys = Counter()
    for action in window.findChildren(QAction):
        for sequence in action.shortcuts():
            if not sequence.isEmpty():
                keys[sequence.toString()] += 1
    assert [key for key, count in keys.items() if count > 1] == []
    assert [a.shortcut().toString() for a in window.tab_actions] == [f"Alt+{n}" for n in range(1, window.tabs.count() + 1)]
    assert window.tabs.count() >= 6      # Live, Summary, Runs, Experiment, Search, Science
    window.tab_actions[3].trigger()
    assert window.tabs.currentWidget() is window.experiment
    window.tab_actions[0].trigger()
    assert window.tabs.currentWidget() is window.live_splitter
    assert window.export_table_action.shortcut().toString() == "Ctrl+Shift+E"


def test_show_in_file_manager_opens_the_shown_runs_folder(qtbot, main_window, tmp_path, workspace):
    window = main_window
    assert window.run_folder() == workspace
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    window.open_runs([write_run(folder / "run.h5", batch_sizes=(16,))])
    assert window.run_folder() == folder
    assert window.show_folder_action in window.menuBar().actions()[0].menu().actions()


def test_status_words_are_spelled_only_in_the_schema():
    """No module of the GUI spells a trial status or its label itself: they read engine.schema."""
    import ast

    import gui
    # The words no other vocabulary uses ("failed" or "running" also say other things).
    words = {schema.QUEUED, schema.NOT_RUN, schema.OUT_OF_MEMORY, schema.STATUS_LABELS[schema.NOT_RUN],
             schema.STATUS_LABELS[schema.OUT_OF_MEMORY]}
    restated = []
    for source in sorted(Path(gui.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in words:
                restated.append((source.name, node.lineno, node.value))
    assert restated == []
    assert set(schema.STATUSES) <= set(schema.STATUS_LABELS)


def test_a_hidden_summary_is_brought_up_to_date_when_shown_or_exported(qtbot, main_window, fill_form, tmp_path):
    window = main_window
    fill_form(window, batch_sizes=(16, 32), num_samples=200, epochs=1, name="hidden")
    with qtbot.waitSignal(window.sweep_finished, timeout=60_000):
        window.run_action.trigger()
    assert window.tabs.currentWidget() is window.live_splitter
    assert window.summary.table_rows() == []            # not recomputed while out of sight
    window.export_table(tmp_path / "summary.csv", "summary")
    with open(tmp_path / "summary.csv", encoding="utf-8") as handle:
        assert [row[0] for row in csv.reader(handle)][1:] == ["16", "32"]
    window.tabs.setCurrentWidget(window.summary)
    assert [row[0] for row in window.summary.table_rows()] == [16, 32]


def test_trial_table_titles_sit_over_their_cells(qtbot, tmp_path):
    """Numbers are right-aligned, and so are their titles: the last column stretches, and a left-aligned
    title stood far from its numbers at the other end of a wide table."""
    table = TrialTable()
    qtbot.addWidget(table)
    table.table_model.show_runs([read_run(write_run(tmp_path / "run.h5", batch_sizes=(16, 32), epochs=1))])
    model = table.table_model
    for column in range(model.columnCount()):
        assert (model.headerData(column, Qt.Orientation.Horizontal, Qt.ItemDataRole.TextAlignmentRole)
                == model.data(model.index(0, column), Qt.ItemDataRole.TextAlignmentRole)), column
