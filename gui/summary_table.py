"""The Summary's table: one row per batch size (and run, and base learning rate) with every measure as mean ±
standard deviation over seeds, sortable by number; and the same numbers as rows for CSV (units in headers)."""
from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from engine import schema
from engine.analysis import BatchSizeStats
from engine.science.recommendation import PICK, ROLE_WORDS
from gui.colors import batch_size_color
from gui.plotkit import PlotColors
from gui.summary_cards import MEASURES, Measure, SummarySeries
from gui.theme import dot_icon


class NumberItem(QTableWidgetItem):
    """A table cell that sorts by a number, not by its text."""

    def __init__(self, text: str, sort_key: float):
        super().__init__(text)
        self.sort_key = sort_key if math.isfinite(sort_key) else math.inf

    def __lt__(self, other: QTableWidgetItem) -> bool:
        if isinstance(other, NumberItem):
            return self.sort_key < other.sort_key
        return super().__lt__(other)


def seeds_text(entry: BatchSizeStats) -> str:
    """'2', or '2 · 1 running', '3 · 1 out of memory': how many seeds, and those not completed."""
    others = [f"{count} {schema.STATUS_LABELS.get(status, status)}" for status, count in sorted(entry.statuses.items())
              if status != schema.COMPLETED]
    return " · ".join([str(entry.trials)] + others)


class SummaryTable(QTableWidget):
    def __init__(self):
        super().__init__()
        self.setObjectName("summaryTable")
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        self.setSortingEnabled(True)
        self.setMinimumHeight(110)
        self._series: list[SummarySeries] = []
        self._target: float | None = None
        self._titles: dict[str, str] = {}

    def _several_runs(self) -> bool:
        return len({one.run_index for one in self._series}) > 1

    def _lr_swept(self) -> bool:
        return len({one.base_lr for one in self._series}) > 1

    def _precision_swept(self) -> bool:
        return len({one.precision for one in self._series}) > 1

    def _title(self, measure: Measure) -> str:
        label = self._titles.get(measure.key, measure.label)
        return f"{label} ({measure.display.unit})" if measure.display.unit else label

    def fill(self, series: list[SummarySeries], sizes: list[int], target: float | None, theme: PlotColors,
             titles: dict[str, str]) -> None:
        """Show these series; `titles` renames measures where the runs measured something else (memory)."""
        self._series, self._target, self._titles = series, target, titles
        self.setSortingEnabled(False)
        columns = ["Batch size"]
        if self._several_runs():
            columns.append("Run")
        if self._lr_swept():
            columns.append("Base lr")
        if self._precision_swept():
            columns.append("Precision")
        columns += ["Seeds", "Reached target", "Verdict"]
        columns += [self._title(measure) for measure in MEASURES.values()]
        self.clear()
        self.setColumnCount(len(columns))
        self.setHorizontalHeaderLabels(columns)
        rows = [(one, entry) for one in series for entry in one.stats]
        self.setRowCount(len(rows))
        muted = theme.muted_text
        for row, (one, entry) in enumerate(rows):
            column = 0
            size_item = NumberItem(str(entry.batch_size), entry.batch_size)
            size_item.setIcon(dot_icon(batch_size_color(entry.batch_size, sizes, dark=theme.dark), 12))
            self.setItem(row, column, size_item)
            column += 1
            if self._several_runs():
                self.setItem(row, column, QTableWidgetItem(one.run.path.stem))
                column += 1
            if self._lr_swept():
                self.setItem(row, column, NumberItem(f"{one.base_lr:g}", one.base_lr))
                column += 1
            if self._precision_swept():
                self.setItem(row, column, QTableWidgetItem(one.precision))
                column += 1
            self.setItem(row, column, NumberItem(seeds_text(entry), entry.trials))
            column += 1
            self.setItem(row, column, NumberItem(f"{entry.reached_target}/{entry.trials}",
                                                 entry.reached_target / max(entry.trials, 1)))
            column += 1
            role = one.roles.get(entry.batch_size)
            verdict = QTableWidgetItem(ROLE_WORDS.get(role, ""))
            verdict.setToolTip("How the recommendation judged this batch size (see the reasons above)")
            if role == PICK:
                font = verdict.font()
                font.setBold(True)
                verdict.setFont(font)
            self.setItem(row, column, verdict)
            column += 1
            for measure in MEASURES.values():
                mean, std = entry.mean[measure.key], entry.std[measure.key]
                if not math.isfinite(mean):
                    text = "not reached" if measure.needs_target and entry.reached_target == 0 else "–"
                    item = NumberItem(text, math.nan)
                    item.setForeground(muted)
                else:
                    spread = std * measure.display.scale if entry.trials > 1 and math.isfinite(std) else None
                    item = NumberItem(measure.display.format_mean_std(mean * measure.display.scale, spread), mean)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(row, column, item)
                column += 1
        self.setSortingEnabled(True)

    def headers(self) -> list[str]:
        """Column titles of `rows` (units in brackets, as shown on screen)."""
        headers = ["Batch size"]
        if self._several_runs():
            headers.append("Run")
        if self._lr_swept():
            headers.append("Base learning rate")
        if self._precision_swept():
            headers.append("Precision")
        headers += ["Trials", "Completed", "Reached target", "Target validation accuracy (%)", "Verdict"]
        for measure in MEASURES.values():
            headers += [f"{self._title(measure)} mean", f"{self._title(measure)} std"]
        return headers

    def rows(self) -> list[list]:
        """One row per batch size (and run, base lr, precision): numbers in the units shown, NaN where missing."""
        rows = []
        target = self._target * 100 if self._target is not None else math.nan
        for one in self._series:
            for entry in one.stats:
                row: list = [entry.batch_size]
                if self._several_runs():
                    row.append(one.run.path.stem)
                if self._lr_swept():
                    row.append(one.base_lr)
                if self._precision_swept():
                    row.append(one.precision)
                row += [entry.trials, entry.completed, entry.reached_target, target,
                        ROLE_WORDS.get(one.roles.get(entry.batch_size), "")]
                for measure in MEASURES.values():
                    scale = measure.display.scale
                    row += [entry.mean[measure.key] * scale, entry.std[measure.key] * scale]
                rows.append(row)
        return rows
