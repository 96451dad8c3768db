"""The dialog that renames a run and edits its notes and tags (Runs tab: Rename…, Notes and tags…).

It only collects the values and checks them as the user types, with the engine's rules; the Runs tab hands
them to engine.annotations.annotate, which writes them into the run file.
"""
from __future__ import annotations

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QPlainTextEdit,
                               QVBoxLayout, QWidget)

from engine import annotations
from engine.runfile import RunHeader


class RunDetailsDialog(QDialog):
    """Name, tags and notes of one run, filled with what its file holds now."""

    def __init__(self, header: RunHeader, parent: QWidget | None = None, focus: str = "name"):
        super().__init__(parent)
        self.setWindowTitle(f"Name, notes and tags · {header.path.name}")
        self.setMinimumWidth(520)
        config_name = _config_name(header)
        layout = QVBoxLayout(self)
        intro = QLabel(f"Kept in the run file {header.path.name} (the file keeps its name on disk).")
        intro.setWordWrap(True)
        intro.setObjectName("hint")
        layout.addWidget(intro)
        form = QFormLayout()
        self.name_edit = QLineEdit(header.given_name)
        self.name_edit.setPlaceholderText(f"{config_name} (the config's name)")
        self.name_edit.setToolTip("The name shown for this run in the list, legends and reports; empty gives back "
                                  f"the config's name, {config_name!r}")
        self.name_edit.setMaxLength(annotations.MAX_NAME_CHARS)
        form.addRow("Name:", self.name_edit)
        self.tags_edit = QLineEdit(annotations.tags_text(header.tags))
        self.tags_edit.setPlaceholderText("e.g. baseline, lr sweep")
        self.tags_edit.setToolTip("Words to find and group runs by, separated by commas; the filter above the "
                                  "list matches them")
        form.addRow("Tags:", self.tags_edit)
        self.notes_edit = QPlainTextEdit(header.notes)
        self.notes_edit.setPlaceholderText("What this run was for, what you changed, what you saw…")
        self.notes_edit.setTabChangesFocus(True)
        self.notes_edit.setMinimumHeight(140)
        form.addRow("Notes:", self.notes_edit)
        layout.addLayout(form, 1)
        self.problem_label = QLabel()
        self.problem_label.setObjectName("problem")
        self.problem_label.setWordWrap(True)
        self.problem_label.setStyleSheet("color: #c0392b;")
        layout.addWidget(self.problem_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        for edit in (self.name_edit, self.tags_edit):
            edit.textChanged.connect(self._check)
        self.notes_edit.textChanged.connect(self._check)
        self._check()
        (self.notes_edit if focus == "notes" else self.tags_edit if focus == "tags" else self.name_edit).setFocus()

    def values(self) -> annotations.Annotations:
        """What the user typed, trimmed: the name, the notes, the tags."""
        return annotations.Annotations(name=self.name_edit.text().strip(), notes=self.notes_edit.toPlainText(),
                                       tags=annotations.parse_tags(self.tags_edit.text()))

    def problem(self) -> str:
        """Why the values cannot be saved ('' when they can)."""
        typed = self.values()
        for problem in (annotations.problem_in_name(typed.name), annotations.problem_in_tags(typed.tags),
                        annotations.problem_in_notes(typed.notes)):
            if problem:
                return problem[0].upper() + problem[1:]
        return ""

    def _check(self) -> None:
        problem = self.problem()
        self.problem_label.setText(problem)
        self.problem_label.setVisible(bool(problem))
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(not problem)


def _config_name(header: RunHeader) -> str:
    import tomllib
    try:
        return str(tomllib.loads(header.config_text).get("name", header.path.stem))
    except tomllib.TOMLDecodeError:
        return header.path.stem
