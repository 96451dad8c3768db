"""Compare configs: the keys that differ between overlaid runs, one row per key, one column per run.

The comparison is engine.config_diff's; this dialog only shows it. Keys with the same value in every run are
hidden until the user asks for them, so what explains two different curves is what one sees first.
"""
from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QDialog, QDialogButtonBox, QHBoxLayout, QHeaderView,
                               QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from engine.config_diff import NOT_SET, NOT_SET_TEXT, config_diff, value_text
from engine.runfile import RunData
from gui.plain_text import plain_tooltip


@dataclass(frozen=True)
class ComparedRun:
    name: str            # as the run is shown (its given name or its config's)
    file_name: str
    config_text: str


class ConfigDiffDialog(QDialog):
    def __init__(self, runs: Sequence[ComparedRun], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Compare configs · {len(runs)} runs")
        self.resize(900, 520)
        self._runs = list(runs)
        self._diffs = config_diff([tomllib.loads(run.config_text) for run in self._runs])
        layout = QVBoxLayout(self)
        different = sum(diff.differs for diff in self._diffs)
        self.summary_label = QLabel(
            f"{different} of {len(self._diffs)} settings differ between these runs." if different else
            f"All {len(self._diffs)} settings are the same in these runs.")
        self.summary_label.setStyleSheet("font-weight: 600;")
        layout.addWidget(self.summary_label)
        self.same_check = QCheckBox("Show settings that are the same")
        self.same_check.setToolTip("List every setting, the ones with one value in all these runs greyed")
        self.same_check.toggled.connect(self._fill)
        top = QHBoxLayout()
        top.addWidget(self.same_check)
        top.addStretch(1)
        legend = QLabel(f"“{NOT_SET_TEXT}”: that run's config lacks the setting (made by an older version).")
        legend.setObjectName("hint")
        top.addWidget(legend)
        layout.addLayout(top)
        self.table = QTableWidget(0, len(self._runs) + 1)
        self.table.setObjectName("configDiffTable")
        self.table.setHorizontalHeaderLabels(["Setting", *(run.name for run in self._runs)])
        for column, run in enumerate(self._runs, start=1):
            self.table.horizontalHeaderItem(column).setToolTip(plain_tooltip(f"{run.name}\n{run.file_name}"))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._fill()

    def rows(self) -> list[list[str]]:
        """The table as shown: setting, then each run's value."""
        return [[item.text() if (item := self.table.item(row, column)) else ""
                 for column in range(self.table.columnCount())] for row in range(self.table.rowCount())]

    def _fill(self) -> None:
        shown = [diff for diff in self._diffs if diff.differs or self.same_check.isChecked()]
        self.table.setRowCount(len(shown))
        dimmed = self.palette().color(self.palette().ColorGroup.Disabled, self.palette().ColorRole.Text)
        for row, diff in enumerate(shown):
            setting = QTableWidgetItem(diff.label)
            setting.setToolTip(diff.key)
            items = [setting]
            for value in diff.values:
                item = QTableWidgetItem(value_text(value))
                item.setToolTip(plain_tooltip(f"{diff.key} = {value_text(value)}"))
                if value is NOT_SET:
                    font = item.font()
                    font.setItalic(True)
                    item.setFont(font)
                items.append(item)
            for column, item in enumerate(items):
                if diff.differs:
                    font = item.font()
                    font.setBold(column > 0)
                    item.setFont(font)
                else:
                    item.setForeground(dimmed)
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()
        for column in range(self.table.columnCount()):
            self.table.setColumnWidth(column, min(max(self.table.columnWidth(column), 120), 320))
        if not shown:
            self.table.setRowCount(1)
            empty = QTableWidgetItem("No setting differs: tick “Show settings that are the same” to see them all.")
            empty.setFlags(Qt.ItemFlag.NoItemFlags)
            self.table.setItem(0, 0, empty)
            self.table.setSpan(0, 0, 1, self.table.columnCount())
        else:
            self.table.clearSpans()


def show_config_diff(parent: QWidget, runs: Sequence[RunData]) -> ConfigDiffDialog | None:
    """Open the comparison of these runs' configs beside the window (None when fewer than two)."""
    if len(runs) < 2:
        return None
    dialog = ConfigDiffDialog([ComparedRun(run.header.name, run.path.name, run.config_text) for run in runs], parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog
