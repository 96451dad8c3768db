"""Message boxes that explain a problem in full: wide enough for a sentence, word-wrapped, problems as a list."""
from __future__ import annotations

import html
from collections.abc import Iterable

from PySide6.QtWidgets import QGridLayout, QMessageBox, QSizePolicy, QSpacerItem, QWidget

# A message box sizes itself to its title line; problems naming a key and a value need room for a sentence.
MIN_TEXT_WIDTH = 560


def _problem_text(problem) -> str:
    if isinstance(problem, tuple) and len(problem) == 2:
        key, text = problem
        return f"{key}: {text}" if key else str(text)
    return str(problem)


def problems_box(parent: QWidget | None, title: str, text: str, problems: Iterable) -> QMessageBox:
    """A warning box: `text` as its headline and each problem (text, or (key, text)) as an item of a list."""
    items = "".join(f"<li>{html.escape(_problem_text(problem))}</li>" for problem in problems)
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setInformativeText(f"<ul style='margin-left: -20px'>{items}</ul>")
    layout = box.layout()
    if isinstance(layout, QGridLayout):
        layout.addItem(QSpacerItem(MIN_TEXT_WIDTH, 0, QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Expanding),
                       layout.rowCount(), 0, 1, layout.columnCount())
    return box


def config_problems_box(parent: QWidget | None, file_name: str, problems: Iterable) -> QMessageBox:
    box = problems_box(parent, "Cannot open this config", f"{file_name} cannot be used:", problems)
    box.setObjectName("configErrorDialog")
    return box
