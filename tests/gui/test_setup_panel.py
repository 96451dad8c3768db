"""The setup panel shows what the engine knows about each field (labels, choice words, when a field applies,
which files it reads) and marks the field each engine problem names; driven through its real widgets."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QComboBox, QFileDialog, QLabel

from engine.config import field_info, iter_fields
from engine.data import FILE_FORMATS, HEAD_ROWS
from gui.setup_panel import PathEdit, SetupPanel

DOCK_WIDTH = 300      # the setup dock's width in a 1280×720 window


@pytest.fixture
def panel(qtbot):
    panel = SetupPanel()
    qtbot.addWidget(panel)
    panel.resize(DOCK_WIDTH, 900)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def shown(panel, key) -> bool:
    return panel.editor(key).isVisibleTo(panel)


def type_into(qtbot, edit, text: str) -> None:
    edit.selectAll()
    qtbot.keyClicks(edit, text)


def type_dataset(qtbot, panel, text: str) -> None:
    type_into(qtbot, panel.editor("data.dataset").lineEdit(), text)


def choose(panel, key, value) -> None:
    combo = panel.editor(key)
    combo.setCurrentIndex(combo.findData(value))


def problem_items(panel) -> list[tuple[str, str | None]]:
    """(what the problem list shows, the config key of the field it goes to)."""
    items = [panel.problem_list.item(i) for i in range(panel.problem_list.count())]
    return [(item.text(), item.data(Qt.ItemDataRole.UserRole)) for item in items]


def is_marked(widget) -> bool:
    return widget.property("invalid") is True


def test_labels_and_choice_words_are_the_engines(panel):
    for key, _ in iter_fields():
        info = field_info(key)
        labels = [label.text() for label in panel.findChildren(QLabel) if label.buddy() is panel.editor(key)]
        assert labels == [info["label"]], key
        editor = panel.editor(key)
        if isinstance(editor, QComboBox) and "choices" in info:
            words = [editor.itemText(i) for i in range(editor.count())]
            values = [editor.itemData(i) for i in range(editor.count())]
            assert words == [info["choice_labels"].get(value, value) for value in values], key
    optimizer = panel.editor("train.optimizer")
    assert optimizer.currentText() == "SGD with momentum" and optimizer.currentData() == "sgd"


def test_fields_show_only_where_the_engine_says_they_apply(qtbot, panel, tmp_path):
    assert shown(panel, "train.momentum") and shown(panel, "model.batch_norm")
    choose(panel, "train.optimizer", "adam")
    assert not shown(panel, "train.momentum")
    choose(panel, "train.optimizer", "sgd")
    assert shown(panel, "train.momentum")
    choose(panel, "model.kind", "lstm")
    assert not shown(panel, "model.batch_norm")
    choose(panel, "model.kind", "cnn")
    assert shown(panel, "model.batch_norm")

    assert shown(panel, "data.num_samples") and not shown(panel, "data.num_features")
    type_dataset(qtbot, panel, "synthetic")
    assert shown(panel, "data.num_features") and shown(panel, "data.label_noise")
    csv = tmp_path / "readings.csv"
    csv.write_text("a,label\n1,x\n2,y\n", encoding="utf-8")
    type_dataset(qtbot, panel, str(csv))
    assert shown(panel, "data.label_column")
    assert not any(shown(panel, key) for key in ("data.num_samples", "data.num_features", "data.x_key"))
    type_dataset(qtbot, panel, str(tmp_path / "arrays.h5"))
    assert shown(panel, "data.x_key") and shown(panel, "data.y_key") and not shown(panel, "data.label_column")
    type_dataset(qtbot, panel, str(tmp_path))
    assert shown(panel, "data.image_size") and shown(panel, "data.grayscale")


def test_the_file_dialog_offers_the_file_types_the_engine_reads(qtbot, panel, tmp_path):
    data_file = tmp_path / "picked.npz"
    data_file.write_bytes(b"")
    offered: list[str] = []

    def answer():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QFileDialog):
            QTimer.singleShot(20, answer)
            return
        offered.extend(dialog.nameFilters())
        dialog.selectFile(str(data_file))
        dialog.accept()

    QTimer.singleShot(0, answer)
    [choose_file] = [action for action in panel.findChildren(QAction) if action.text() == "Choose a file…"]
    choose_file.trigger()
    assert panel.table()["data"]["dataset"] == str(data_file)
    every_suffix = " ".join(f"*{suffix}" for _, suffixes in FILE_FORMATS for suffix in suffixes)
    assert offered == [f"Data files ({every_suffix})", "CSV (*.csv)", "NumPy array (*.npy)",
                       "NumPy archive (*.npz)", "HDF5 (*.h5 *.hdf5)", "All files (*)"]
    assert not any("*.hdf)" in entry or "*.hdf " in entry for entry in offered)


def test_a_problem_marks_the_field_it_names_and_leads_to_it(qtbot, panel):
    lr = panel.editor("train.lr")
    type_into(qtbot, lr, "0")
    assert problem_items(panel) == [("Learning rate: train.lr = 0: must be greater than 0.0", "train.lr")]
    assert is_marked(lr) and not panel.run_button.isEnabled()
    panel.problem_list.itemClicked.emit(panel.problem_list.item(0))
    assert lr.hasFocus() or QApplication.focusWidget() is lr
    type_into(qtbot, lr, "0.1")
    assert problem_items(panel) == [] and not is_marked(lr) and panel.run_button.isEnabled()


def test_a_misspelt_dataset_name_gets_a_suggestion(qtbot, panel):
    type_dataset(qtbot, panel, "MNIST1D")
    [(text, key)] = problem_items(panel)
    assert key == "data.dataset" and text.startswith("Dataset: ") and text.endswith("did you mean 'mnist1d'?")
    assert is_marked(panel.editor("data.dataset"))


def test_every_bad_batch_size_is_reported(qtbot, panel):
    custom = panel.editor("sweep.batch_sizes")
    type_into(qtbot, custom, "abc, -4, 0, 2.5")
    items = problem_items(panel)
    assert [key for _, key in items] == ["sweep.batch_sizes"] * 4
    for item in ("'abc'", "-4", "= 0", "2.5"):
        assert sum(item in text for text, _ in items) == 1, (item, items)
    assert is_marked(custom)
    assert panel.status_label.text() == "4 problems to fix before running."


def test_a_csv_with_text_in_a_number_column_is_caught_when_chosen(qtbot, panel, tmp_path):
    csv = tmp_path / "readings.csv"
    csv.write_text("a,b,label\n1,2,x\n3,oops,y\n", encoding="utf-8")
    type_dataset(qtbot, panel, str(csv))
    [(text, key)] = problem_items(panel)
    assert key == "data.dataset" and "line 3, column 'b': 'oops' is not a number" in text
    assert is_marked(panel.editor("data.dataset")) and not panel.run_button.isEnabled()
    assert "Ready" not in panel.status_label.text()

    csv.write_text("a,b,label\n1,2,x\n3,4,y\n", encoding="utf-8")
    type_dataset(qtbot, panel, str(csv))        # chosen again once fixed
    assert problem_items(panel) == [] and panel.status_label.text().startswith("✓ Ready to run")

    type_into(qtbot, panel.editor("data.label_column"), "species")
    [(text, key)] = problem_items(panel)
    assert key == "data.dataset" and "no column named 'species'" in text


def test_only_the_head_is_read_when_a_csv_is_chosen(qtbot, panel, tmp_path):
    csv = tmp_path / "long.csv"
    csv.write_text("a,b,label\n" + "1,2,x\n" * HEAD_ROWS + "3,oops,y\n", encoding="utf-8")
    type_dataset(qtbot, panel, str(csv))
    assert problem_items(panel) == []


def test_a_long_dataset_path_shows_its_start_and_its_file_name(qtbot, panel, tmp_path):
    folder = tmp_path / "a-rather-long-folder-name" / "experiments-2026" / "my-own-measurements"
    folder.mkdir(parents=True)
    csv = folder / "readings.csv"
    csv.write_text("a,label\n1,x\n2,y\n", encoding="utf-8")
    panel.set_config({"data": {"dataset": str(csv)}})
    edit = panel.editor("data.dataset").lineEdit()
    assert isinstance(edit, PathEdit) and edit.text() == str(csv)
    text = edit.shown_text()
    assert text.startswith(str(tmp_path)[:4]) and "…" in text and text.endswith("/readings.csv")
    assert edit.fontMetrics().horizontalAdvance(text) <= edit.width()
    assert str(csv) in panel.editor("data.dataset").toolTip()
    panel.activateWindow()
    edit.setFocus()
    qtbot.waitUntil(edit.hasFocus)
    assert edit.shown_text() == str(csv)          # while editing, the whole path


def test_a_long_problem_is_shown_whole(qtbot, tmp_path):
    csv = tmp_path / "readings.csv"
    csv.write_text("a,b,label\n1,2,x\n3,oops,y\n", encoding="utf-8")
    panel = SetupPanel()
    qtbot.addWidget(panel)
    panel.set_config({"data": {"dataset": str(csv)}})          # before the panel was ever laid out
    panel.resize(DOCK_WIDTH, 700)
    panel.show()
    qtbot.waitExposed(panel)
    [(text, _)] = problem_items(panel)
    assert text.startswith("Dataset: readings.csv: line 3") and str(tmp_path) not in text
    problems = panel.problem_list
    qtbot.waitUntil(lambda: problems.visualItemRect(problems.item(0)).height() > problems.fontMetrics().height())
    assert problems.visualItemRect(problems.item(0)).bottom() <= problems.viewport().height()


def test_every_choice_is_shown_whole_in_a_narrow_panel(qtbot, panel):
    """In the 1280×720 window's setup dock a long choice goes below its label rather than being cut off."""
    panel.show_all.setChecked(True)
    for key, _ in iter_fields():
        combo = panel.editor(key)
        if isinstance(combo, QComboBox) and not combo.isEditable():
            room = combo.width() - combo.iconSize().width()
            for i in range(combo.count()):
                assert combo.fontMetrics().horizontalAdvance(combo.itemText(i)) < room, (key, combo.itemText(i))
    assert panel.scroll.widget().width() <= panel.scroll.viewport().width()
