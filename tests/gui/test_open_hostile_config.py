"""Open config on files that break the TOML reader or are no config at all: the dialog explains, nothing raises."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

HOSTILE_FILES = {
    "arrays nested 1000 deep": (("x = " + "[" * 1000 + "]" * 1000).encode(), "nested too deeply"),
    "an integer of 5000 digits": (("[train]\nepochs = " + "9" * 5000).encode(), "a number too long to read"),
    "binary": (b"\x89HDF\r\n\x1a\n\x00\x00\xff\xfe" * 10, "not a text file"),
    "a name with a NUL": (b'name = "exp\\u0000b"\n', "must not contain control characters"),
}


def _read_and_close_next_message_box(seen: list[str]) -> None:
    def close():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, close)
            return
        seen.append(box.informativeText())
        box.button(QMessageBox.StandardButton.Ok).click()

    QTimer.singleShot(0, close)


@pytest.mark.parametrize("case", HOSTILE_FILES)
def test_open_config_shows_its_dialog_for_any_bad_file(case, qtbot, main_window, tmp_path):
    path = tmp_path / "hostile.toml"
    content, expected = HOSTILE_FILES[case]
    path.write_bytes(content)
    form_before = main_window.setup.table()
    seen: list[str] = []
    _read_and_close_next_message_box(seen)
    assert main_window.load_config_file(path) is False
    assert len(seen) == 1 and expected in seen[0]
    assert main_window.setup.table() == form_before
