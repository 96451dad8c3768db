"""The trial table: one row per trial with its settings, status and headline numbers.

Rows are computed from RunData (a live run or one read from a file), so a run opened from disk reads exactly
as it did live; the only live-only facts are the planned trials not yet started ("queued", or "not run" once
the sweep ended without them) and the fractional epoch of the running trial. Numbers are shown and exported
with the same presentation as the Summary (gui.plotkit.display), and throughput has the Summary's definition
(engine.analysis.training_throughput).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from engine import schema
from engine.analysis import training_throughput
from engine.events import TrialSpec
from engine.runfile import RunData, TrialData
from gui import theme
from gui.plotkit import Display, display

SORT_ROLE = Qt.ItemDataRole.UserRole + 1


@dataclass
class TrialRow:
    run_name: str
    name: str
    batch_size: int
    seed: int
    lr: float
    status: str = schema.QUEUED
    error: str = ""
    epochs_done: int = 0
    epoch_progress: float | None = None     # fractional epoch while running
    total_epochs: float | None = None
    best_val_accuracy: float = math.nan
    samples_per_s: float = math.nan
    peak_memory_bytes: float = math.nan
    elapsed_s: float = math.nan
    all_batch_sizes: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    tooltip: str
    shown: Display | None = None     # a measured number: its unit and scale on screen and in the CSV

    def export_title(self) -> str:
        """The CSV header: the title with the unit of the numbers below it."""
        return f"{self.title} ({self.shown.unit})" if self.shown and self.shown.unit else self.title

    def screen_title(self) -> str:
        """The header on screen: with the unit where the cells are bare numbers (durations carry their own)."""
        return self.title if self.key == "elapsed" else self.export_title()


COLUMNS: tuple[Column, ...] = (
    Column("run", "Run", "The run file this trial belongs to (its file name, as in the Summary)."),
    Column("batch_size", "Batch size", "How many examples the model sees before each weight update."),
    Column("seed", "Seed", "The repeat: same seed, same numbers."),
    Column("lr", "Learning rate", "The learning rate this trial used, after the scaling rule."),
    Column("status", "Status", ", ".join(schema.STATUS_LABELS.values()) + "."),
    Column("epoch", "Epoch", "Epochs finished (while running: how far through the budget)."),
    Column("best_val_accuracy", "Best val. accuracy", "The highest validation accuracy of any epoch so far.",
           display("val_accuracy")),
    Column("samples_per_s", "Throughput", "Training examples per second over the whole trial so far, "
                                          "evaluation excluded: the same figure as the Summary's.",
           display("samples_per_s")),
    Column("peak_memory", "Peak memory", "The most memory the trial used on its device (on the CPU: the "
                                         "whole process's peak, which includes earlier trials).",
           display("peak_memory_bytes")),
    Column("elapsed", "Training time", "Time spent training so far, evaluation excluded.",
           display("wall_time_s")),
)
COLUMN_INDEX = {column.key: i for i, column in enumerate(COLUMNS)}


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _last(values: np.ndarray) -> float:
    return float(values[-1]) if len(values) else math.nan


def _fill_from_trial(row: TrialRow, trial: TrialData) -> None:
    epoch = trial.epoch
    row.status, row.error = trial.status, trial.error
    row.lr = trial.lr
    row.epochs_done = trial.epochs_done
    val = epoch["val_accuracy"]
    finite = val[np.isfinite(val)] if len(val) else val
    row.best_val_accuracy = float(finite.max()) if len(finite) else math.nan
    row.samples_per_s = training_throughput(trial)
    row.peak_memory_bytes = float(np.max(epoch["peak_memory_bytes"])) if len(epoch["peak_memory_bytes"]) else math.nan
    row.elapsed_s = max(_last(trial.step["wall_time_s"]) if len(trial.step["wall_time_s"]) else -math.inf,
                        _last(epoch["wall_time_s"]) if len(epoch["wall_time_s"]) else -math.inf)
    if not math.isfinite(row.elapsed_s):
        row.elapsed_s = math.nan
    if trial.status != schema.RUNNING:
        row.epoch_progress = None


class TrialTableModel(QAbstractTableModel):
    """Rows of trials from one or more runs. Feed it with `show_runs` and the live update methods."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[TrialRow] = []
        self._index: dict[tuple[str, str], int] = {}
        self._runs: list[RunData] = []
        self._bold = QFont()
        self._bold.setBold(True)

    # --- feeding ---------------------------------------------------------------------------------------
    def show_runs(self, runs: list[RunData], planned: tuple[TrialSpec, ...] = ()) -> None:
        """Show every trial of these runs; `planned` adds queued rows for trials of the first run not begun."""
        self.beginResetModel()
        self._runs = list(runs)
        self._rows, self._index = [], {}
        for run in runs:
            all_batch_sizes = sorted({t.batch_size for t in run.trials} | {s.batch_size for s in planned})
            for trial in run.trials:
                row = TrialRow(run_name=run_label(run), name=trial.name, batch_size=trial.batch_size,
                               seed=trial.seed, lr=trial.lr, all_batch_sizes=all_batch_sizes)
                _fill_from_trial(row, trial)
                self._add(run, row)
        if runs:
            run = runs[0]
            all_batch_sizes = sorted({s.batch_size for s in planned} | {t.batch_size for t in run.trials})
            for spec in planned:
                if (self._key(run, spec.name)) not in self._index:
                    self._add(run, TrialRow(run_name=run_label(run), name=spec.name, batch_size=spec.batch_size,
                                            seed=spec.seed, lr=spec.lr, all_batch_sizes=all_batch_sizes))
        self.endResetModel()

    def update_trials(self, run: RunData, names: set[str]) -> None:
        """Recompute the rows of these trials of `run` from its data (adds rows for new trials)."""
        by_name = {t.name: t for t in run.trials}
        for name in names:
            trial = by_name.get(name)
            if trial is None:
                continue
            key = self._key(run, name)
            if key not in self._index:
                all_batch_sizes = sorted({t.batch_size for t in run.trials})
                self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows))
                self._add(run, TrialRow(run_name=run_label(run), name=name, batch_size=trial.batch_size,
                                        seed=trial.seed, lr=trial.lr, all_batch_sizes=all_batch_sizes))
                self.endInsertRows()
            row_number = self._index[key]
            _fill_from_trial(self._rows[row_number], trial)
            self._row_changed(row_number)

    def mark_not_run(self) -> None:
        """The sweep ended: trials still queued will not start, and say so."""
        for row_number, row in enumerate(self._rows):
            if row.status == schema.QUEUED:
                row.status = schema.NOT_RUN
                self._row_changed(row_number)

    def set_progress(self, run: RunData, name: str, epoch_progress: float, total_epochs: float | None = None,
                     elapsed_s: float | None = None) -> None:
        row_number = self._index.get(self._key(run, name))
        if row_number is None:
            return
        row = self._rows[row_number]
        row.epoch_progress = epoch_progress
        if total_epochs is not None:
            row.total_epochs = total_epochs
        if elapsed_s is not None and math.isfinite(elapsed_s):
            row.elapsed_s = elapsed_s
        # Only these cells move between epochs; a whole row costs the view every role of every cell.
        for key in ("epoch", "elapsed"):
            cell = self.index(row_number, COLUMN_INDEX[key])
            self.dataChanged.emit(cell, cell)

    # --- reading ---------------------------------------------------------------------------------------
    def rows(self) -> list[TrialRow]:
        return list(self._rows)

    def row_for(self, name: str) -> TrialRow | None:
        for row in self._rows:
            if row.name == name:
                return row
        return None

    def run_count(self) -> int:
        return len(self._runs)

    # --- Qt model --------------------------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section].screen_title()
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMNS[section].tooltip
        if role == Qt.ItemDataRole.TextAlignmentRole:
            # Over its cells: the last column stretches, and a left-aligned title sat far from its numbers.
            return self._alignment(COLUMNS[section].key)
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        key = COLUMNS[index.column()].key
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, key)
        if role == SORT_ROLE:
            return self._sort_value(row, key)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return self._alignment(key)
        if role == Qt.ItemDataRole.ForegroundRole and key == "status":
            return theme.status_color(row.status)
        if role == Qt.ItemDataRole.FontRole and key == "status" and row.status == schema.RUNNING:
            return self._bold
        if role == Qt.ItemDataRole.DecorationRole:
            if key == "status":
                return theme.dot_icon(theme.status_color(row.status))
            if key == "batch_size":
                return theme.dot_icon(_batch_size_color(row.batch_size, row.all_batch_sizes), 12)
        if role == Qt.ItemDataRole.ToolTipRole:
            if key == "status" and row.error:
                return f"{schema.STATUS_LABELS.get(row.status, row.status)}: {row.error}"
            return f"{row.run_name} · {row.name}"
        return None

    @staticmethod
    def _alignment(key: str) -> int:
        if key in ("run", "status"):
            return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    @staticmethod
    def _display(row: TrialRow, key: str) -> str:
        if key == "run":
            return row.run_name
        if key == "lr":
            return f"{row.lr:.4g}"
        if key == "status":
            return schema.STATUS_LABELS.get(row.status, row.status)
        if key == "epoch":
            if row.status == schema.RUNNING and row.epoch_progress is not None:
                total = f" / {row.total_epochs:g}" if row.total_epochs else ""
                return f"{row.epoch_progress:.1f}{total}"
            return "–" if row.status in (schema.QUEUED, schema.NOT_RUN) else str(row.epochs_done)
        if key == "elapsed":
            return format_duration(row.elapsed_s)
        value = _value(row, key)
        shown = COLUMNS[COLUMN_INDEX[key]].shown
        if shown is not None:       # the unit is in the column's title
            return shown.format_shown(value * shown.scale, with_unit=False)
        return str(value)

    @staticmethod
    def _sort_value(row: TrialRow, key: str):
        value = _value(row, key)
        return -math.inf if isinstance(value, float) and math.isnan(value) else value

    @staticmethod
    def export_value(row: TrialRow, key: str):
        """A cell as a number in the unit of the column's export title (text for run and status)."""
        value = _value(row, key)
        shown = COLUMNS[COLUMN_INDEX[key]].shown
        if shown is not None and isinstance(value, float):
            return value * shown.scale if math.isfinite(value) else math.nan
        return value

    # --- internals -------------------------------------------------------------------------------------
    @staticmethod
    def _key(run: RunData, name: str) -> tuple[str, str]:
        return (str(run.path), name)

    def _add(self, run: RunData, row: TrialRow) -> None:
        self._index[self._key(run, row.name)] = len(self._rows)
        self._rows.append(row)

    def _row_changed(self, row_number: int) -> None:
        self.dataChanged.emit(self.index(row_number, 0), self.index(row_number, len(COLUMNS) - 1))


def _value(row: TrialRow, key: str):
    """A cell's stored value: numbers in the file's units, the status as its schema word."""
    return {"run": row.run_name, "batch_size": row.batch_size, "seed": row.seed, "lr": row.lr,
            "status": row.status, "epoch": row.epoch_progress if row.status == schema.RUNNING and
            row.epoch_progress is not None else row.epochs_done,
            "best_val_accuracy": row.best_val_accuracy, "samples_per_s": row.samples_per_s,
            "peak_memory": row.peak_memory_bytes, "elapsed": row.elapsed_s}[key]


def run_label(run: RunData) -> str:
    """How a run is named beside its trials: its file name without the suffix, as the Summary names it."""
    return run.path.stem


def _batch_size_color(batch_size: int, all_batch_sizes: list[int]):
    from gui.colors import batch_size_color   # the plots' colours, so the table's swatches match the curves
    return batch_size_color(batch_size, all_batch_sizes or [batch_size])


class TrialTable(QTableView):
    """The table view over a TrialTableModel, sortable, with the Run column shown only for several runs."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.table_model = TrialTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.table_model)
        self.proxy.setSortRole(SORT_ROLE)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(-1, Qt.SortOrder.AscendingOrder)   # keep the model's order until the user sorts
        self.setAlternatingRowColors(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(26)
        header = self.horizontalHeader()
        header.setHighlightSections(False)
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        widths = {"run": 170, "batch_size": 88, "seed": 52, "lr": 104, "status": 124, "epoch": 72,
                  "best_val_accuracy": 168, "samples_per_s": 184, "peak_memory": 150, "elapsed": 110}
        for key, width in widths.items():
            self.setColumnWidth(COLUMN_INDEX[key], width)
        self.table_model.modelReset.connect(self._update_run_column)
        self._update_run_column()

    def _update_run_column(self) -> None:
        self.setColumnHidden(COLUMN_INDEX["run"], self.table_model.run_count() <= 1)

    def visible_columns(self) -> list[int]:
        return [c for c in range(len(COLUMNS)) if not self.isColumnHidden(c)]

    def export_rows(self) -> tuple[list[str], list[list]]:
        """Headers with units and the numbers of the visible columns (statuses as schema words), in the order
        the user sorted the rows: for a CSV that a spreadsheet or pandas reads as numbers."""
        columns = self.visible_columns()
        headers = [COLUMNS[c].export_title() for c in columns]
        rows = self.table_model.rows()
        ordered = [rows[self.proxy.mapToSource(self.proxy.index(r, 0)).row()] for r in range(self.proxy.rowCount())]
        return headers, [[TrialTableModel.export_value(row, COLUMNS[c].key) for c in columns] for row in ordered]
