"""The Summary's table: one row per batch size (and run, and base learning rate) with every measure as mean ±
standard deviation over seeds, sortable by number; and the same numbers as rows for CSV (units in headers)."""
from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from dataclasses import dataclass

from engine import schema
from engine.analysis import MEMORY_LABELS, BatchSizeStats
from engine.runfile import RunData
from engine.science.recommendation import PICK, ROLE_WORDS
from gui.colors import batch_size_color
from gui.plotkit import PlotColors
from gui.summary_cards import (GPU_MEASURES, MEASURES, Measure, SummarySeries, gpu_sampled, memory_per_trial,
                               peak_memory_texts)
from gui.theme import dot_icon


def how_trained(series: SummarySeries, batch_size: int) -> str:
    """How the series' trials at this batch size trained (schema.EXECUTION_ATTR), e.g. 'ensemble of 4'; '' where
    the file does not say."""
    words = sorted({t.execution for t in series.run.trials if t.execution and t.batch_size == batch_size
                    and t.base_lr == series.base_lr and (not series.precision or t.precision == series.precision)})
    return "; ".join(words)


@dataclass(frozen=True)
class MeasureColumn:
    """A measure as a column of the table: its title (unit in brackets) and a tooltip saying what it is."""
    measure: Measure
    title: str
    tooltip: str = ""


def table_measures(runs: list[RunData], series: list[SummarySeries]) -> list[MeasureColumn]:
    """The measures the table shows for these runs. Memory: each trial's own step memory; the process's peak only
    for runs that lack it (files written before it was recorded), titled as what it is. GPU utilisation only
    where a GPU was sampled."""
    with_step = [run for run in runs if any(math.isfinite(t.step_memory_bytes) for t in run.trials)]
    gpu = gpu_sampled(series)
    columns = []
    for measure in MEASURES.values():
        if measure.key in GPU_MEASURES and not gpu:
            continue
        if measure.key == "step_memory_bytes":
            if not with_step:
                continue
            methods = sorted({t.step_memory_method for run in with_step for t in run.trials if t.step_memory_method})
            columns.append(MeasureColumn(measure, f"Memory per step ({measure.display.unit})",
                                  f"Each trial's own memory: its second training step, in {measure.display.unit} "
                                  f"(2^20 bytes). Measured as: {'; '.join(methods) or 'unknown'}."))
        elif measure.key == "peak_memory_bytes":
            if len(with_step) == len(runs):
                continue
            older = [run for run in runs if all(run is not other for other in with_step)]
            title = peak_memory_texts(older)[0]
            source = MEMORY_LABELS["per_trial" if memory_per_trial(older) else "process"]
            columns.append(MeasureColumn(measure, f"{title} ({measure.display.unit})",
                                  f"Only figure in files written before per-trial memory was recorded: {source}, "
                                  f"in {measure.display.unit} (2^20 bytes)."))
        else:
            columns.append(MeasureColumn(measure, measure.column_title()))
    return columns


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
        self._columns: list[MeasureColumn] = []

    def _several_runs(self) -> bool:
        return len({one.run_index for one in self._series}) > 1

    def _lr_swept(self) -> bool:
        return len({one.base_lr for one in self._series}) > 1

    def _precision_swept(self) -> bool:
        return len({one.precision for one in self._series}) > 1

    def fill(self, series: list[SummarySeries], sizes: list[int], target: float | None, theme: PlotColors,
             measures: list[MeasureColumn]) -> None:
        """Show these series with these measure columns (table_measures)."""
        self._series, self._target, self._columns = series, target, measures
        self.setSortingEnabled(False)
        columns = ["Batch size"]
        if self._several_runs():
            columns.append("Run")
        if self._lr_swept():
            columns.append("Base lr")
        if self._precision_swept():
            columns.append("Precision")
        columns += ["Seeds", "Reached target", "Verdict"]
        first_measure = len(columns)
        columns += [column.title for column in measures]
        self.clear()
        self.setColumnCount(len(columns))
        self.setHorizontalHeaderLabels(columns)
        for index, column in enumerate(measures):
            if column.tooltip:
                self.horizontalHeaderItem(first_measure + index).setToolTip(column.tooltip)
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
            seeds = NumberItem(seeds_text(entry), entry.trials)
            if how := how_trained(one, entry.batch_size):
                seeds.setToolTip(f"How these trials trained: {how}")
            self.setItem(row, column, seeds)
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
            for measure in (column.measure for column in measures):
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
        """MeasureColumn titles of `rows` (units in brackets, as shown on screen)."""
        headers = ["Batch size"]
        if self._several_runs():
            headers.append("Run")
        if self._lr_swept():
            headers.append("Base learning rate")
        if self._precision_swept():
            headers.append("Precision")
        headers += ["Trials", "Completed", "Reached target", "Target validation accuracy (%)", "Verdict"]
        for column in self._columns:
            headers += [f"{column.title} mean", f"{column.title} std"]
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
                for measure in (column.measure for column in self._columns):
                    scale = measure.display.scale
                    row += [entry.mean[measure.key] * scale, entry.std[measure.key] * scale]
                rows.append(row)
        return rows
