"""The Experiment tab: what the experiment on screen claims to test (its description) and its whole config.

"On screen" is the run being trained or the runs opened (each with its own config), or, when none is shown,
the experiment in the setup form (a preset's description stays readable after it is loaded). A shown run's
config can be loaded back into the form, or run again as it was.
"""
from __future__ import annotations

import html
import tomllib

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout,
                               QWidget)

from engine.runfile import RunData


def _description(config_text: str) -> str:
    try:
        return str(tomllib.loads(config_text).get("description", "") or "")
    except tomllib.TOMLDecodeError:
        return ""


class ExperimentPanel(QWidget):
    """Description and read-only config TOML of what is on screen, with "Load this config" and "Run again"."""

    load_requested = Signal(str)         # config TOML text to put into the setup form
    run_again_requested = Signal(str)    # config TOML text to put into the form and run

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._runs: list[RunData] = []
        self._form_text = ""
        self._form_name = ""
        self._running = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 10)
        layout.setSpacing(6)
        header = QHBoxLayout()
        self.title = QLabel()
        self.title.setObjectName("experimentTitle")
        self.title.setStyleSheet("font-weight: 600; font-size: 13pt;")
        self.choice = QComboBox()
        self.choice.setToolTip("Several runs are shown: choose whose experiment to read.")
        self.choice.currentIndexChanged.connect(self._show_current)
        header.addWidget(self.title, 1)
        header.addWidget(self.choice)
        layout.addLayout(header)
        self.source = QLabel()
        self.source.setObjectName("hint")
        self.source.setWordWrap(True)
        layout.addWidget(self.source)
        self.description = QLabel()
        self.description.setObjectName("experimentDescription")
        self.description.setWordWrap(True)
        self.description.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.description)
        config_label = QLabel("Config (TOML, read-only)")
        config_label.setStyleSheet("font-weight: 600;")
        layout.addWidget(config_label)
        self.config_view = QPlainTextEdit()
        self.config_view.setObjectName("experimentConfig")
        self.config_view.setReadOnly(True)
        self.config_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        layout.addWidget(self.config_view, 1)
        buttons = QHBoxLayout()
        self.load_button = QPushButton("Load this config")
        self.load_button.setToolTip("Put this run's config into the setup form, to change it or run it later.")
        self.load_button.clicked.connect(lambda: self.load_requested.emit(self.config_text()))
        self.run_again_button = QPushButton("Run again")
        self.run_again_button.setToolTip("Load this run's config into the setup form and train it again, into a "
                                         "new run file.")
        self.run_again_button.clicked.connect(lambda: self.run_again_requested.emit(self.config_text()))
        buttons.addStretch(1)
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.run_again_button)
        layout.addLayout(buttons)
        self._show_current()

    # --- feeding ---------------------------------------------------------------------------------------
    def show_runs(self, runs: list[RunData]) -> None:
        """The runs on screen (the live one first); empty: the setup form's experiment."""
        self._runs = list(runs)
        self.choice.blockSignals(True)
        self.choice.clear()
        for run in self._runs:
            self.choice.addItem(run.path.stem)
        self.choice.blockSignals(False)
        self.choice.setVisible(len(self._runs) > 1)
        self._show_current()

    def set_running(self, running: bool) -> None:
        """While a sweep trains, a config can be loaded into the form but not run."""
        self._running = running
        self._show_current()

    def show_form(self, name: str, config_text: str) -> None:
        """The experiment in the setup form, shown while no run is."""
        self._form_name, self._form_text = name, config_text
        if not self._runs:
            self._show_current()

    # --- reading ---------------------------------------------------------------------------------------
    def current_run(self) -> RunData | None:
        if not self._runs:
            return None
        return self._runs[max(0, self.choice.currentIndex())]

    def config_text(self) -> str:
        run = self.current_run()
        return run.config_text if run is not None else self._form_text

    def description_text(self) -> str:
        return _description(self.config_text())

    # --- internals -------------------------------------------------------------------------------------
    def _show_current(self) -> None:
        run = self.current_run()
        if run is not None:
            self.title.setText(run.header.name or run.path.stem)
            self.source.setText(f"Run file {run.path.name} · created {run.header.created} · "
                                f"{run.header.status}")
        else:
            self.title.setText(self._form_name or "Experiment")
            self.source.setText("The experiment in the setup form (no run is shown).")
        description = self.description_text()
        self.description.setText(html.escape(description) if description else
                                 "<i>No description. Add one in the setup form (Show all options) to say what "
                                 "this experiment tests.</i>")
        self.config_view.setPlainText(self.config_text())
        self.load_button.setEnabled(run is not None)
        self.run_again_button.setEnabled(run is not None and not self._running)
