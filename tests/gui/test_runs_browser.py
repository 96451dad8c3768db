"""RunsBrowser over a real workspace folder of run files (and one file that is not a run file)."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFileDialog, QMessageBox

from engine import schema
from gui.runs_browser import COLUMNS, RunsBrowser
from tests.gui.runfactory import write_run

NAME, CREATED, STATUS = COLUMNS.index("Name"), COLUMNS.index("Created"), COLUMNS.index("Status")


@pytest.fixture
def workspace(tmp_path) -> Path:
    folder = tmp_path / "runs"
    folder.mkdir()
    write_run(folder / "mlp-a.h5", name="mlp-a", batch_sizes=(16, 32), epochs=1, train_size=256,
              created="2025-03-14T09:26:53+00:00")
    write_run(folder / "cnn-b.h5", name="cnn-b", dataset="cifar10", model="cnn", batch_sizes=(32, 64), epochs=1,
              train_size=256, statuses={64: schema.OUT_OF_MEMORY}, created="2025-03-15T10:00:00+00:00")
    write_run(folder / "lstm-c.h5", name="lstm-c", model="lstm", batch_sizes=(8,), epochs=1, train_size=256,
              created="2025-03-16T11:00:00+00:00")
    (folder / "notes.h5").write_text("not an HDF5 file")
    (folder / "readme.txt").write_text("ignored: not *.h5")
    return folder


@pytest.fixture
def browser(qtbot, workspace):
    widget = RunsBrowser(workspace)
    qtbot.addWidget(widget)
    widget.resize(1000, 400)
    widget.show()
    return widget


def _row(browser: RunsBrowser, file_name: str) -> int:
    return [path.name for path in browser.paths()].index(file_name)


def test_lists_run_files_newest_first_with_their_header(browser, workspace):
    table = browser.table_widget()
    assert table.rowCount() == 4
    runs = [path.name for path in browser.paths() if path.name != "notes.h5"]
    assert runs == ["lstm-c.h5", "cnn-b.h5", "mlp-a.h5"]            # sorted by date, newest first
    row = _row(browser, "cnn-b.h5")
    texts = dict(zip(COLUMNS, (table.item(row, column).text() for column in range(len(COLUMNS)))))
    assert [texts[title] for title in ("Name", "Tags", "Dataset", "Model", "Batch sizes", "Trials", "Notes")] == \
        ["cnn-b", "", "cifar10", "cnn", "32, 64", "2", ""]
    assert texts["Created"].startswith("2025-03-1")
    assert "1 of 2 trials completed" in texts["Status"] and "1 out of memory" in texts["Status"]
    table.sortItems(NAME, Qt.SortOrder.AscendingOrder)
    assert [path.name for path in browser.paths()] == ["cnn-b.h5", "lstm-c.h5", "mlp-a.h5", "notes.h5"]


def test_a_file_that_is_not_a_run_file_is_a_greyed_error_row(browser):
    table = browser.table_widget()
    row = _row(browser, "notes.h5")
    status = table.item(row, STATUS)
    assert status.text().startswith("not a run file:") and "HDF5" in status.text()
    disabled = browser.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
    assert table.item(row, NAME).foreground().color() == disabled
    browser.select_paths([browser.workspace() / "notes.h5"])
    assert browser.selected_paths() == [] and not browser._open_button.isEnabled()
    assert browser._delete_button.isEnabled()


def test_open_selection_emits_the_paths(browser, workspace, qtbot):
    chosen = [workspace / "mlp-a.h5", workspace / "lstm-c.h5", workspace / "notes.h5"]
    browser.select_paths(chosen)
    with qtbot.waitSignal(browser.open_requested, timeout=1000) as signal:
        qtbot.mouseClick(browser._open_button, Qt.MouseButton.LeftButton)
    assert sorted(signal.args[0]) == sorted(chosen[:2])               # the unreadable file is not opened
    with qtbot.waitSignal(browser.open_requested, timeout=1000) as signal:
        browser.table_widget().cellDoubleClicked.emit(_row(browser, "cnn-b.h5"), 0)
    assert signal.args[0] == [workspace / "cnn-b.h5"]


def test_delete_asks_first_and_removes_the_file(browser, workspace, monkeypatch, qtbot):
    target = workspace / "mlp-a.h5"
    browser.select_paths([target])
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: asked.append(args) or
                        QMessageBox.StandardButton.No)
    assert browser.delete_selected() == []
    assert target.exists() and len(asked) == 1 and "mlp-a.h5" in asked[0][2]

    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(browser.files_deleted, timeout=1000) as signal:
        qtbot.mouseClick(browser._delete_button, Qt.MouseButton.LeftButton)
    assert signal.args[0] == [target]
    assert not target.exists()
    assert target not in browser.paths() and browser.table_widget().rowCount() == 3


def test_watches_the_folder(browser, workspace, qtbot):
    write_run(workspace / "new.h5", name="new", batch_sizes=(16,), epochs=1, train_size=256)
    qtbot.waitUntil(lambda: workspace / "new.h5" in browser.paths(), timeout=5000)
    (workspace / "lstm-c.h5").unlink()
    qtbot.waitUntil(lambda: workspace / "lstm-c.h5" not in browser.paths(), timeout=5000)


def test_change_folder(browser, tmp_path, monkeypatch, qtbot):
    other = tmp_path / "other"
    other.mkdir()
    write_run(other / "only.h5", name="only", batch_sizes=(16,), epochs=1, train_size=256)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(other))
    with qtbot.waitSignal(browser.workspace_changed, timeout=1000) as signal:
        qtbot.mouseClick(browser._change_button, Qt.MouseButton.LeftButton)
    assert signal.args == [other] and browser.workspace() == other
    assert browser.paths() == [other / "only.h5"]
    browser.set_workspace(tmp_path / "made" / "for" / "runs")        # a missing folder is created
    assert browser.workspace().is_dir() and browser.paths() == []
    assert "No run files here yet" in browser._empty_label.text()


def test_refresh_rereads_only_changed_files(browser, workspace, monkeypatch):
    import gui.runs_browser as module
    reads = []
    original = module.read_header
    monkeypatch.setattr(module, "read_header", lambda path: reads.append(Path(path)) or original(path))
    browser.refresh()
    assert reads == []                                                # all from the cache
    (workspace / "mlp-a.h5").unlink()                                 # the writer never overwrites a file
    write_run(workspace / "mlp-a.h5", name="mlp-a-rewritten", batch_sizes=(16,), epochs=1, train_size=256)
    browser.refresh()
    assert reads == [workspace / "mlp-a.h5"]
    assert browser.table_widget().item(_row(browser, "mlp-a.h5"), NAME).text() == "mlp-a-rewritten"
