"""The Runs tab's rename, notes, tags, filter and config comparison, driven through the real widgets on real run
files: what is typed reaches the file and is there when the app opens again."""
from __future__ import annotations

import shutil

import h5py
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QLabel, QLineEdit, QMessageBox, QPushButton

from engine import schema
from engine.runfile import RunWriter, read_header
from gui.config_diff_view import ConfigDiffDialog
from gui.run_details_dialog import RunDetailsDialog
from gui.runs_browser import COLUMNS, RunsBrowser
from tests.gui.runfactory import write_run

NAME, TAGS, STATUS, NOTES = (COLUMNS.index(title) for title in ("Name", "Tags", "Status", "Notes"))


@pytest.fixture(scope="module")
def written_runs(tmp_path_factory):
    """Three run files written once for the module; each test works on its own copy."""
    folder = tmp_path_factory.mktemp("runs")
    write_run(folder / "mlp-a.h5", name="mlp-a", batch_sizes=(16, 32), epochs=1, train_size=256,
              created="2025-03-14T09:00:00+00:00")
    write_run(folder / "cnn-b.h5", name="cnn-b", dataset="synthetic", model="cnn", batch_sizes=(32, 64),
              epochs=1, train_size=256, statuses={64: schema.OUT_OF_MEMORY}, lr=0.1,
              created="2025-03-15T09:00:00+00:00")
    write_run(folder / "lstm-c.h5", name="lstm-c", dataset="sequence", model="lstm", batch_sizes=(8,), epochs=1,
              train_size=256, created="2025-03-16T09:00:00+00:00")
    return folder


@pytest.fixture
def folder(workspace, written_runs):
    shutil.copytree(written_runs, workspace, dirs_exist_ok=True)
    return workspace


@pytest.fixture
def browser(qtbot, folder):
    widget = RunsBrowser(folder)
    qtbot.addWidget(widget)
    widget.resize(1200, 400)
    widget.show()
    return widget


def _cell(browser: RunsBrowser, file_name: str, column: int) -> str:
    table = browser.table_widget()
    row = [path.name for path in browser.paths()].index(file_name)
    return table.item(row, column).text()


def _fill_dialog_when_open(qtbot, name: str, tags: str, notes: str, seen: list) -> None:
    """Type into the modal dialog once it is up, then press Save (as a user would)."""
    def fill():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, RunDetailsDialog):
            QTimer.singleShot(20, fill)
            return
        seen.append(dialog.name_edit.placeholderText())
        dialog.name_edit.clear()
        qtbot.keyClicks(dialog.name_edit, name)
        dialog.tags_edit.clear()
        qtbot.keyClicks(dialog.tags_edit, tags)
        dialog.notes_edit.setPlainText(notes)
        dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    QTimer.singleShot(0, fill)


def test_rename_notes_and_tags_reach_the_file_and_survive_reopening_the_app(qtbot, browser, folder, main_window):
    browser.select_paths([folder / "cnn-b.h5"])
    assert browser.rename_action.isEnabled() and browser.notes_action.isEnabled()
    seen = []
    _fill_dialog_when_open(qtbot, "Wide CNN, lr 0.1", "baseline, CNN ", "Two sizes only.\nOOM at 64.", seen)
    with qtbot.waitSignal(browser.annotated, timeout=10_000):
        browser.rename_action.trigger()
    assert seen == ["cnn-b (the config's name)"]
    header = read_header(folder / "cnn-b.h5")
    assert (header.name, header.tags, header.notes) == ("Wide CNN, lr 0.1", ("baseline", "CNN"),
                                                        "Two sizes only.\nOOM at 64.")
    assert _cell(browser, "cnn-b.h5", NAME) == "Wide CNN, lr 0.1"
    assert _cell(browser, "cnn-b.h5", TAGS) == "baseline, CNN"
    assert _cell(browser, "cnn-b.h5", NOTES) == "Two sizes only."
    notes = browser.findChild(QLabel, "runNotes")
    assert notes.isVisible() and notes.text() == "Notes on Wide CNN, lr 0.1: Two sizes only.\nOOM at 64."
    browser.select_paths([folder / "mlp-a.h5"])
    assert not notes.isVisible()

    # The app opened afresh lists the run the same way, and shows the name where the run is opened.
    main_window.close()
    from gui.main_window import MainWindow
    reopened = MainWindow()
    qtbot.addWidget(reopened)
    runs = reopened.runs_browser
    assert runs.workspace() == folder
    assert _cell(runs, "cnn-b.h5", NAME) == "Wide CNN, lr 0.1" and _cell(runs, "cnn-b.h5", TAGS) == "baseline, CNN"
    assert runs.table_widget().item([p.name for p in runs.paths()].index("cnn-b.h5"), NOTES).toolTip() == \
        "<p style='white-space:pre-wrap'>Two sizes only.\nOOM at 64.</p>"
    reopened.open_runs([folder / "cnn-b.h5"])
    assert reopened.table_hint.text() == "Wide CNN, lr 0.1"
    reopened.close()


def test_the_dialog_checks_what_is_typed(qtbot, browser, folder):
    dialog = RunDetailsDialog(read_header(folder / "mlp-a.h5"), browser)
    qtbot.addWidget(dialog)
    save = dialog.buttons.button(dialog.buttons.StandardButton.Save)
    qtbot.keyClicks(dialog.tags_edit, "ok, " + "x" * 41)
    assert not save.isEnabled() and "longer than 40 characters" in dialog.problem_label.text()
    dialog.tags_edit.setText("ok, fine")
    assert save.isEnabled() and dialog.problem_label.isHidden()
    assert dialog.values().tags == ("ok", "fine")


def test_the_filter_hides_and_shows_the_right_rows(qtbot, browser, folder):
    browser.annotate_run(folder / "lstm-c.h5", tags=["Sequence-Study"])
    (folder / "broken.h5").write_text("not HDF5")
    browser.refresh()
    assert len(browser.visible_paths()) == 4
    for typed, shown in (("cnn", {"cnn-b.h5"}),                        # model (and name)
                         ("SYNTHETIC", {"cnn-b.h5"}),                  # dataset, without regard to case
                         ("sequence-study", {"lstm-c.h5"}),            # a tag
                         ("out of memory", {"cnn-b.h5"}),              # status text, every word
                         ("mlp finished", {"mlp-a.h5"}),
                         ("not a run file", {"broken.h5"}),
                         ("mlp cnn", set()),
                         ("", {"mlp-a.h5", "cnn-b.h5", "lstm-c.h5", "broken.h5"})):
        filter_edit = browser.findChild(QLineEdit, "runsFilter")
        filter_edit.clear()
        qtbot.keyClicks(filter_edit, typed)
        assert {path.name for path in browser.visible_paths()} == shown, typed
    browser.set_filter("cnn")
    assert "1 shown by the filter" in browser.findChild(QLabel, "runsCount").text()
    rows = browser.table_rows()
    assert [row[NAME] for row in rows] == ["cnn-b"]                       # the CSV export holds what is shown


def test_the_filter_drops_hidden_rows_from_the_selection(browser, folder):
    browser.select_paths([folder / "mlp-a.h5", folder / "cnn-b.h5"])
    browser.set_filter("mlp")
    assert browser.selected_paths() == [folder / "mlp-a.h5"]


def test_a_run_being_written_cannot_be_annotated(qtbot, browser, folder, monkeypatch):
    path = folder / "live.h5"
    writer = RunWriter(path, 'name = "live"\n[data]\ndataset = "mnist1d"\n', {})
    try:
        browser.refresh()
        browser.select_paths([path])
        assert not browser.rename_action.isEnabled() and "a sweep is writing it" in browser.rename_action.text()
        details_button = browser.findChild(QPushButton, "runDetailsButton")
        assert not browser.notes_action.isEnabled() and not details_button.isEnabled()
        assert not browser.edit_selected()
        warnings = []
        monkeypatch.setattr(QMessageBox, "warning", lambda *args: warnings.append(args[2]))
        assert not browser.annotate_run(path, name="too early")
        assert len(warnings) == 1 and warnings[0].startswith("a sweep is writing this run now")
    finally:
        writer.close(schema.COMPLETED)
    assert read_header(path).given_name == ""
    browser.refresh()
    browser.select_paths([path])
    assert browser.rename_action.isEnabled() and browser.rename_action.text() == "Rename…"


def test_a_damaged_annotation_lists_the_file_as_damaged_with_its_reason(browser, folder):
    with h5py.File(folder / "mlp-a.h5", "r+") as handle:
        handle.attrs[schema.TAGS_ATTR] = 7
    browser.refresh()
    assert _cell(browser, "mlp-a.h5", STATUS) == "damaged: tags = 7, expected a list of texts"
    browser.select_paths([folder / "mlp-a.h5"])
    assert browser.selected_paths() == [] and not browser.rename_action.isEnabled()


def test_compare_configs_from_the_context_menu(qtbot, browser, folder):
    browser.select_paths([folder / "mlp-a.h5"])
    assert not browser.compare_action.isEnabled()
    browser.select_paths([folder / "mlp-a.h5", folder / "cnn-b.h5"])
    assert browser.compare_action in browser.table_widget().actions() and browser.compare_action.isEnabled()
    browser.compare_action.trigger()
    dialog = browser.findChild(ConfigDiffDialog)
    qtbot.addWidget(dialog)
    rows = {row[0]: row[1:] for row in dialog.rows()}
    # Each run's column in the table's order (newest first: cnn-b was written after mlp-a).
    order = [path.name for path in browser.selected_paths()]
    runs = {"mlp-a.h5": {"Name": "mlp-a", "Dataset": "mnist1d", "Architecture": "mlp", "Learning rate": "0.05",
                         "Batch sizes": "16, 32"},
            "cnn-b.h5": {"Name": "cnn-b", "Dataset": "synthetic", "Architecture": "cnn", "Learning rate": "0.1",
                         "Batch sizes": "32, 64"}}
    assert rows == {label: [runs[name][label] for name in order] for label in runs["mlp-a.h5"]}
    assert "5 of " in dialog.summary_label.text()
    dialog.same_check.setChecked(True)
    assert len(dialog.rows()) > 5 and ["Optimizer", "sgd", "sgd"] in dialog.rows()


def test_compare_configs_of_the_overlaid_runs_from_the_menu(qtbot, main_window, folder):
    window = main_window
    assert not window.compare_configs_action.isEnabled()
    window.open_runs([folder / "mlp-a.h5", folder / "lstm-c.h5"])
    assert window.compare_configs_action.isEnabled()
    view_menu = next(action.menu() for action in window.menuBar().actions() if action.text() == "&View")
    assert window.compare_configs_action in view_menu.actions()
    window.compare_configs_action.trigger()
    dialog = window.findChild(ConfigDiffDialog)
    assert dialog is not None and dialog.isVisible()
    rows = {row[0]: row[1:] for row in dialog.rows()}
    assert rows["Architecture"] == ["mlp", "lstm"] and rows["Batch sizes"] == ["16, 32", "8"]
    assert dialog.table.horizontalHeaderItem(1).text() == "mlp-a"
    dialog.close()
    # Renamed in the Runs tab while on screen: the window shows the new name at once.
    assert window.runs_browser.annotate_run(folder / "mlp-a.h5", name="Small MLP")
    assert [run.header.name for run in window.shown_runs()] == ["Small MLP", "lstm-c"]
    assert [run.header.name for run in window.plots.runs()] == ["Small MLP", "lstm-c"]
    assert "Small MLP" in window.table_hint.text()


def test_the_filter_holds_when_the_list_is_sorted_or_refreshed(qtbot, browser, folder):
    browser.set_filter("cnn")
    for column in range(len(COLUMNS)):
        browser.table_widget().sortItems(column, Qt.SortOrder.AscendingOrder)
        assert [path.name for path in browser.visible_paths()] == ["cnn-b.h5"], COLUMNS[column]
    browser.refresh()
    assert [path.name for path in browser.visible_paths()] == ["cnn-b.h5"]


def test_f2_renames_the_selected_run(qtbot, browser, folder):
    browser.select_paths([folder / "lstm-c.h5"])
    table = browser.table_widget()
    table.setFocus()
    seen = []
    _fill_dialog_when_open(qtbot, "By keyboard", "", "", seen)
    with qtbot.waitSignal(browser.annotated, timeout=10_000):
        qtbot.keyClick(table, Qt.Key.Key_F2)
    assert read_header(folder / "lstm-c.h5").name == "By keyboard"


def test_a_name_that_looks_like_markup_shows_as_typed(qtbot, browser, folder):
    browser.annotate_run(folder / "mlp-a.h5", name="<b>bold</b> & co", notes="<i>x</i>")
    row = [path.name for path in browser.paths()].index("mlp-a.h5")
    assert browser.table_widget().item(row, NAME).text() == "<b>bold</b> & co"
    tip = browser.table_widget().item(row, NAME).toolTip()
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in tip and "<b>" not in tip
