"""The answer of a sweep: one point per batch size (mean over seeds, error bar = standard deviation) for
accuracy, generalization gap, time / steps / samples to a target accuracy, throughput and peak memory, on a
log2 batch-size axis, each with a caption saying how to read it, and a table of the same numbers.

All numbers come from engine.analysis (summarize_run, by_batch_size); this module only draws them.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QDoubleSpinBox, QFrame, QGridLayout, QHBoxLayout,
                               QHeaderView, QLabel, QScrollArea, QSizePolicy, QSplitter, QStackedWidget,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from engine import schema
from engine.analysis import BatchSizeStats, by_batch_size, summarize_run
from engine.science.recommendation import RECOMMENDED, judge
from engine.runfile import RunData
from gui.colors import batch_size_color
from gui.export import CurrentPlotExport, export_table_csv, export_widget_image
from gui.theme import dot_icon
from gui.plotkit import CompactAxis, Display, Theme, display, make_pen, run_line_style, style_plot_item, with_alpha

# The default target: this fraction of the best validation accuracy any trial shown reached, rounded down to
# half a percent. Close enough to the best that "time to target" measures real learning, not the first epoch,
# yet reachable by every batch size that trains well; batch sizes that never get there are shown as such.
AUTO_TARGET_FRACTION = 0.9
SERIES_SYMBOLS = ("o", "s", "t", "d", "p", "h")
REFRESH_DELAY_MS = 250
# Cards are laid out in as many columns as fit at this width or more (up to 4); narrower windows get fewer
# columns, and one column below that scrolls sideways.
MIN_CARD_WIDTH = 260
MAX_CARD_COLUMNS = 4


@dataclass(frozen=True)
class Measure:
    """One summary quantity: a key of TrialSummary, how it is shown, and how to read it."""
    key: str
    label: str
    display: Display
    log_y: bool = False
    needs_target: bool = False


def _measure(key: str, label: str, metric: str | None = None, *, unit: str | None = None, scale: float | None = None,
             fmt: str | None = None, log_y: bool = False, needs_target: bool = False) -> Measure:
    base = display(metric) if metric else Display(label, "")
    shown = Display(label, base.unit if unit is None else unit, base.scale if scale is None else scale,
                    base.fmt if fmt is None else fmt)
    return Measure(key, label, shown, log_y, needs_target)


MEASURES: dict[str, Measure] = {m.key: m for m in (
    _measure("best_val_accuracy", "Best validation accuracy", "val_accuracy"),
    _measure("final_val_accuracy", "Final validation accuracy", "val_accuracy"),
    _measure("generalization_gap", "Generalization gap", unit="% points", scale=100.0, fmt="{:.2f}"),
    _measure("time_to_target_s", "Time to target", "wall_time_s", log_y=True, needs_target=True),
    _measure("steps_to_target", "Steps to target", "step", unit="steps", log_y=True, needs_target=True),
    _measure("samples_to_target", "Samples to target", "samples", unit="samples", log_y=True, needs_target=True),
    _measure("samples_per_s", "Throughput", "samples_per_s"),
    _measure("peak_memory_bytes", "Peak memory", "peak_memory_bytes"),
)}


@dataclass(frozen=True)
class SummaryPlot:
    name: str
    title: str
    measures: tuple[str, ...]      # first is drawn filled; a second (final accuracy) hollow beside it
    caption: str


SUMMARY_PLOTS: tuple[SummaryPlot, ...] = (
    SummaryPlot("accuracy", "Validation accuracy", ("best_val_accuracy", "final_val_accuracy"),
                "Higher is better. Filled: the best epoch; hollow: the last epoch. A drop at large batch sizes "
                "means they generalize worse with this budget."),
    SummaryPlot("generalization_gap", "Generalization gap", ("generalization_gap",),
                "Train minus validation accuracy at the end. Closer to zero is better; a large gap means the model "
                "memorizes the training set."),
    SummaryPlot("time_to_target", "Time to target", ("time_to_target_s",),
                "Lower is better: seconds of training until validation accuracy first reached the target. The "
                "lowest point is the fastest batch size on this machine."),
    SummaryPlot("steps_to_target", "Steps to target", ("steps_to_target",),
                "Lower is better. While doubling the batch size halves the steps, larger batches are free "
                "speed-up; where the curve flattens is the critical batch size."),
    SummaryPlot("samples_to_target", "Samples to target", ("samples_to_target",),
                "Lower is better: training examples needed to reach the target. Flat means larger batches waste "
                "no data; rising means they need more examples for the same result."),
    SummaryPlot("throughput", "Throughput", ("samples_per_s",),
                "Higher is better: training examples processed per second. It stops growing once the device is "
                "saturated."),
    SummaryPlot("memory", "Peak memory", ("peak_memory_bytes",),
                "Lower is better; it must fit on the device. Grows with the batch size (activations)."),
)
SUMMARY_PLOT_NAMES = tuple(plot.name for plot in SUMMARY_PLOTS)


def auto_target(runs: list[RunData]) -> float | None:
    """The default target accuracy (a fraction) for these runs, or None when no epoch has finished."""
    best = [float(np.nanmax(trial.epoch["val_accuracy"])) for run in runs for trial in run.trials
            if len(trial.epoch["val_accuracy"]) and np.isfinite(trial.epoch["val_accuracy"]).any()]
    if not best:
        return None
    return math.floor(max(best) * AUTO_TARGET_FRACTION * 200) / 200


@dataclass(frozen=True)
class SummaryPoint:
    """A point as drawn: the mean and standard deviation over seeds in the units shown (% for accuracy)."""
    measure: str
    batch_size: int
    base_lr: float
    run_index: int
    mean: float
    std: float
    color: QColor
    reached_target: int
    trials: int


@dataclass
class _SeriesData:
    """The per-batch-size statistics of one run and one base learning rate."""
    run_index: int
    run: RunData
    base_lr: float
    stats: list[BatchSizeStats]


class _SortableItem(QTableWidgetItem):
    """A table cell that sorts by a number, not by its text."""

    def __init__(self, text: str, sort_key: float):
        super().__init__(text)
        self.sort_key = sort_key if math.isfinite(sort_key) else math.inf

    def __lt__(self, other: QTableWidgetItem) -> bool:
        if isinstance(other, _SortableItem):
            return self.sort_key < other.sort_key
        return super().__lt__(other)


class _Card(QFrame):
    """A plot with its title and caption."""

    def __init__(self, spec: SummaryPlot, owner: SummaryView):
        super().__init__()
        self.spec = spec
        self._owner = owner
        self.setObjectName("summaryCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumWidth(MIN_CARD_WIDTH)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 8)
        layout.setSpacing(2)
        self.title = QLabel()
        self.title.setObjectName("summaryCardTitle")
        layout.addWidget(self.title)
        self.plot_widget = pg.PlotWidget(axisItems={"left": CompactAxis("left"), "bottom": CompactAxis("bottom")})
        self.plot_widget.setMinimumHeight(150)
        # Ignored: the plot takes what the card can spare, the captions keep the height their text needs.
        self.plot_widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)
        plot = self.plot_widget.getPlotItem()
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.getViewBox().setMouseEnabled(x=False, y=False)
        plot.getViewBox().setDefaultPadding(0.08)
        plot.setLabel("bottom", "Batch size")
        plot.getAxis("left").setWidth(52)
        # The last batch size sits half a tick step from the right edge; its label is wider than that, so let
        # it reach into a right margin kept free for it instead of being hidden.
        plot.getAxis("bottom").setStyle(hideOverlappingLabels=18)
        plot.layout.setContentsMargins(0, 0, 16, 0)
        layout.addWidget(self.plot_widget, 1)
        self.caption = QLabel(spec.caption)
        self.caption.setObjectName("summaryCaption")
        self.caption.setWordWrap(True)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.caption)
        self.note = QLabel()
        self.note.setObjectName("summaryNote")
        self.note.setWordWrap(True)
        self.note.hide()
        layout.addWidget(self.note)
        self.plot_widget.scene().sigMouseClicked.connect(lambda *_: owner.set_current_plot(spec.name))

    def plot_item(self) -> pg.PlotItem:
        return self.plot_widget.getPlotItem()

    def minimum_height_for_width(self, width: int) -> int:
        """The height this card needs at a width: the plot at its minimum, every caption line readable."""
        margins = self.layout().contentsMargins()
        text_width = max(1, width - margins.left() - margins.right() - 2 * self.frameWidth())
        labels = [self.title, self.caption] + ([self.note] if not self.note.isHidden() else [])
        height = sum(label.heightForWidth(text_width) if label.wordWrap() else label.sizeHint().height()
                     for label in labels)
        spacing = self.layout().spacing() * (len(labels))
        return (height + self.plot_widget.minimumHeight() + spacing + margins.top() + margins.bottom()
                + 2 * self.frameWidth())


class SummaryView(CurrentPlotExport, QWidget):
    """One point per batch size for each quantity that answers "which batch size", and a table of them."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._runs: list[RunData] = []
        self._series: list[_SeriesData] = []
        self._target: float | None = None
        self._auto = True
        self._current_plot: str | None = None
        self._columns = 0
        self._points: dict[str, list[SummaryPoint]] = {}
        self._missing: dict[str, dict[int, str]] = {}
        self._theme = Theme.from_palette(self.palette())
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_DELAY_MS)
        self._refresh_timer.timeout.connect(self.refresh)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self._build_target_bar())
        # The answer to "which batch size should I use?", in words, above the evidence for it.
        self._recommendation = QLabel()
        self._recommendation.setObjectName("summaryRecommendation")
        self._recommendation.setWordWrap(True)
        self._recommendation.setTextFormat(Qt.TextFormat.RichText)
        self._recommendation.setContentsMargins(8, 2, 8, 4)
        self._recommendation.hide()
        layout.addWidget(self._recommendation)
        self._stack = QStackedWidget()
        self._placeholder = QLabel("No results yet.\nRun a sweep, or open a run file from the Runs list.")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setEnabled(False)
        self._stack.addWidget(self._placeholder)
        self._splitter = QSplitter(Qt.Orientation.Vertical)
        self._splitter.setChildrenCollapsible(False)
        self._cards_area = QScrollArea()
        self._cards_area.setWidgetResizable(True)
        self._cards_area.setFrameShape(QFrame.Shape.NoFrame)
        self._cards_widget = QWidget()
        self._cards_widget.setObjectName("summaryCards")
        self._grid = QGridLayout(self._cards_widget)
        self._grid.setContentsMargins(6, 4, 6, 6)
        self._grid.setSpacing(8)
        self._cards: dict[str, _Card] = {spec.name: _Card(spec, self) for spec in SUMMARY_PLOTS}
        self._key_card = self._build_key_card()
        self._cards_area.setWidget(self._cards_widget)
        self._splitter.addWidget(self._cards_area)
        self._table = self._build_table()
        self._splitter.addWidget(self._table)
        self._splitter.setStretchFactor(0, 3)
        self._splitter.setStretchFactor(1, 1)
        self._stack.addWidget(self._splitter)
        layout.addWidget(self._stack, 1)
        self._cards_area.viewport().installEventFilter(self)
        self._splitter.installEventFilter(self)
        self._splitter_user_sized = False
        self._splitter.splitterMoved.connect(self._splitter_moved)
        self._reflow()
        self._apply_theme()

    # ---------------------------------------------------------------- public interface

    def set_runs(self, runs: list[RunData]) -> None:
        """Summarize these runs (each run, and each base learning rate, is its own series)."""
        self._runs = list(runs)
        self.refresh()

    def runs(self) -> list[RunData]:
        return list(self._runs)

    def mark_dirty(self) -> None:
        """A live run grew: recompute a moment later (at most 4 times a second)."""
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def refresh(self) -> None:
        """Recompute every number from the runs and redraw."""
        self._refresh_timer.stop()
        if self._auto:
            target = auto_target(self._runs)
            if target is not None:
                self._set_spin_value(target)
                self._target = target
        self._series = []
        for run_index, run in enumerate(self._runs):
            stats = by_batch_size(summarize_run(run, self._target))
            for base_lr in sorted({entry.base_lr for entry in stats}):
                self._series.append(_SeriesData(run_index, run, base_lr,
                                                [entry for entry in stats if entry.base_lr == base_lr]))
        has_data = any(series.stats for series in self._series)
        self._stack.setCurrentWidget(self._splitter if has_data else self._placeholder)
        self._draw()
        self._fill_table()
        self._update_recommendation()
        self._fit_cards_height()
        if not self._splitter_user_sized:
            self._size_splitter()

    def recommendation_text(self) -> str:
        """The recommendation as shown (plain text); empty when no run has a finished trial yet."""
        return self._recommendation.text() if self._recommendation.isVisible() else ""

    def target_accuracy(self) -> float | None:
        """The target validation accuracy (a fraction) for time, steps and samples to target."""
        return self._target

    def set_target_accuracy(self, fraction: float | None) -> None:
        """Set the target (a fraction, e.g. 0.85); None goes back to the automatic default."""
        if fraction is None:
            self._auto_check.setChecked(True)
            return
        self._auto = False
        self._auto_check.blockSignals(True)
        self._auto_check.setChecked(False)
        self._auto_check.blockSignals(False)
        self._target = float(fraction)
        self._set_spin_value(self._target)
        self.refresh()

    def is_auto_target(self) -> bool:
        return self._auto

    def stats(self) -> list[tuple[RunData, float, list[BatchSizeStats]]]:
        """What is drawn: (run, base lr, per-batch-size statistics from engine.analysis.by_batch_size)."""
        return [(series.run, series.base_lr, list(series.stats)) for series in self._series]

    def plot_names(self) -> tuple[str, ...]:
        return SUMMARY_PLOT_NAMES

    def points(self, plot_name: str) -> list[SummaryPoint]:
        """The points drawn in one plot (batch sizes without a value are in `missing`)."""
        return list(self._points.get(plot_name, []))

    def missing(self, plot_name: str) -> dict[int, str]:
        """Batch sizes shown as × in one plot, with the reason ('not reached', 'out of memory', ...)."""
        return dict(self._missing.get(plot_name, {}))

    def plot_item(self, name: str) -> pg.PlotItem:
        return self._cards[name].plot_item()

    def plot_widget(self, name: str) -> pg.PlotWidget:
        return self._cards[name].plot_widget

    def export_plot(self, name: str, path: Path) -> None:
        """One plot with its title and caption, as PNG or SVG by suffix."""
        export_widget_image(self._cards[name], Path(path))

    def export_all(self, path: Path) -> None:
        """Every plot with its title and caption, as laid out on screen, in one PNG or SVG."""
        export_widget_image(self._cards_widget, Path(path))

    def table_headers(self) -> list[str]:
        """Column titles of `table_rows` (units in brackets, as shown on screen)."""
        headers = ["Batch size"]
        if len(self._runs) > 1:
            headers.append("Run")
        if self._lr_swept():
            headers.append("Base learning rate")
        headers += ["Trials", "Completed", "Reached target", "Target validation accuracy (%)"]
        for measure in MEASURES.values():
            name = f"{measure.label} ({measure.display.unit})" if measure.display.unit else measure.label
            headers += [f"{name} mean", f"{name} std"]
        return headers

    def table_rows(self) -> list[list]:
        """One row per batch size (and run, and base lr): numbers in the units shown, NaN where missing."""
        rows = []
        target = self._target * 100 if self._target is not None else math.nan
        for series in self._series:
            for entry in series.stats:
                row: list = [entry.batch_size]
                if len(self._runs) > 1:
                    row.append(series.run.path.stem)
                if self._lr_swept():
                    row.append(series.base_lr)
                row += [entry.trials, entry.completed, entry.reached_target, target]
                for measure in MEASURES.values():
                    scale = measure.display.scale
                    row += [entry.mean[measure.key] * scale, entry.std[measure.key] * scale]
                rows.append(row)
        return rows

    def export_table(self, path: Path) -> None:
        """The per-batch-size table as CSV."""
        export_table_csv(self.table_headers(), self.table_rows(), Path(path))

    def table_widget(self) -> QTableWidget:
        return self._table

    # ---------------------------------------------------------------- building

    def _build_target_bar(self) -> QWidget:
        bar = QWidget()
        bar.setObjectName("summaryToolbar")
        row = QHBoxLayout(bar)
        row.setContentsMargins(6, 4, 6, 0)
        row.setSpacing(6)
        label = QLabel("Target validation accuracy:")
        tip = ("Time, steps and samples to target count until the validation accuracy first reaches this value "
               "(checked at the end of each epoch).")
        label.setToolTip(tip)
        row.addWidget(label)
        self._spin = QDoubleSpinBox()
        self._spin.setRange(1.0, 100.0)
        self._spin.setDecimals(1)
        self._spin.setSingleStep(0.5)
        self._spin.setSuffix(" %")
        self._spin.setToolTip(tip)
        self._spin.setKeyboardTracking(False)
        self._spin.valueChanged.connect(self._spin_changed)
        row.addWidget(self._spin)
        self._auto_check = QCheckBox("Automatic")
        self._auto_check.setChecked(True)
        self._auto_check.setToolTip(f"Use {AUTO_TARGET_FRACTION:.0%} of the best validation accuracy any trial "
                                    "reached: close to the best, yet reachable by batch sizes that train well.")
        self._auto_check.toggled.connect(self._auto_toggled)
        row.addWidget(self._auto_check)
        self._target_note = QLabel()
        self._target_note.setObjectName("summaryTargetNote")
        self._target_note.setWordWrap(True)        # wraps rather than set the view's minimum width
        row.addWidget(self._target_note, 1)
        return bar

    def _build_key_card(self) -> QFrame:
        card = QFrame()
        card.setObjectName("summaryCard")
        card.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(card)
        layout.setContentsMargins(10, 8, 10, 8)
        title = QLabel("How to read these")
        title.setObjectName("summaryCardTitle")
        layout.addWidget(title)
        self._key_text = QLabel()
        self._key_text.setWordWrap(True)
        self._key_text.setTextFormat(Qt.TextFormat.RichText)
        self._key_text.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self._key_text, 1)
        return card

    def _build_table(self) -> QTableWidget:
        table = QTableWidget()
        table.setObjectName("summaryTable")
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setAlternatingRowColors(True)
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        table.setSortingEnabled(True)
        table.setMinimumHeight(110)
        return table

    def eventFilter(self, watched, event) -> bool:
        if watched is self._cards_area.viewport() and event.type() == QEvent.Type.Resize:
            self._reflow()
            self._fit_cards_height()
        elif (watched is self._splitter and event.type() in (QEvent.Type.Resize, QEvent.Type.Show)
              and not self._splitter_user_sized):
            self._size_splitter()
        return super().eventFilter(watched, event)

    def _fit_cards_height(self) -> None:
        """Keep the cards at least as tall as their captions need; below that the area scrolls."""
        columns = max(self._columns, 1)
        margins = self._grid.contentsMargins()
        width = self._cards_area.viewport().width() - margins.left() - margins.right()
        column_width = (width - self._grid.horizontalSpacing() * (columns - 1)) // columns
        widgets = [self._cards[spec.name] for spec in SUMMARY_PLOTS]
        rows = [widgets[start:start + columns] for start in range(0, len(widgets), columns)]
        heights = [[card.minimum_height_for_width(column_width) for card in row] for row in rows]
        for row, row_heights in zip(rows, heights):
            # The grid would otherwise squeeze a card below what its caption needs (the word-wrapped caption's
            # minimum height is not known to the grid), cutting it off and pushing it over the axis title.
            for card in row:
                if card.minimumHeight() != max(row_heights):
                    card.setMinimumHeight(max(row_heights))
        needed = sum(max(row_heights) for row_heights in heights)
        needed += self._grid.verticalSpacing() * (len(rows) - 1) + margins.top() + margins.bottom()
        if self._cards_widget.minimumHeight() != needed:
            self._cards_widget.setMinimumHeight(needed)

    def _size_splitter(self) -> None:
        """Give the plots most of the height and the table what its rows need, up to a third."""
        height = self._splitter.height()
        if height < 200:
            return
        rows = max(self._table.rowCount(), 3)
        wanted = self._table.horizontalHeader().height() + rows * self._table.verticalHeader().defaultSectionSize() + 6
        table_height = int(min(wanted, height * 0.34))
        self._splitter.blockSignals(True)
        self._splitter.setSizes([height - table_height, table_height])
        self._splitter.blockSignals(False)

    def _splitter_moved(self, *_args) -> None:
        self._splitter_user_sized = True

    def _reflow(self) -> None:
        """Lay the cards out in as many columns as fit (each at least MIN_CARD_WIDTH wide)."""
        margins = self._grid.contentsMargins()
        width = max(self._cards_area.viewport().width() - margins.left() - margins.right(), 1)
        spacing = self._grid.horizontalSpacing()
        columns = max(1, min(MAX_CARD_COLUMNS, (width + spacing) // (MIN_CARD_WIDTH + spacing)))
        if columns == self._columns:
            return
        self._columns = columns
        widgets = [self._cards[spec.name] for spec in SUMMARY_PLOTS] + [self._key_card]
        for widget in widgets:
            self._grid.removeWidget(widget)
        for index, widget in enumerate(widgets):
            self._grid.addWidget(widget, index // columns, index % columns)
        for column in range(MAX_CARD_COLUMNS):
            self._grid.setColumnStretch(column, 1 if column < columns else 0)
        rows = math.ceil(len(widgets) / columns)
        for row in range(len(widgets)):
            self._grid.setRowStretch(row, 1 if row < rows else 0)

    # ---------------------------------------------------------------- theming

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self._apply_theme()
        super().changeEvent(event)

    def _apply_theme(self) -> None:
        self._theme = theme = Theme.from_palette(self.palette())
        muted = theme.muted_text
        muted_css = f"rgba({muted.red()},{muted.green()},{muted.blue()},{muted.alphaF():.2f})"
        for card in self._cards.values():
            card.plot_widget.setBackground(theme.background)
            style_plot_item(card.plot_item(), theme)
            card.caption.setStyleSheet(f"color: {muted_css};")
            unit = MEASURES[card.spec.measures[0]].display.unit
            unit_html = f" <span style='color:{muted_css}; font-weight:normal'>({unit})</span>" if unit else ""
            card.title.setText(f"<b>{card.spec.title}</b>{unit_html}")
        self._target_note.setStyleSheet(f"color: {muted_css};")
        if self._runs:
            self._draw()
            self._fill_table()

    # ---------------------------------------------------------------- drawing

    def _lr_swept(self) -> bool:
        return len({series.base_lr for series in self._series}) > 1

    def _series_label(self, series: _SeriesData) -> str:
        parts = []
        if len(self._runs) > 1:
            parts.append(series.run.path.stem)
        if self._lr_swept():
            parts.append(f"lr {series.base_lr:g}")
        return " · ".join(parts)

    def _update_recommendation(self) -> None:
        lines = []
        for run in self._runs:
            verdict = judge(run, self._target)
            if verdict.outcome != RECOMMENDED:
                continue
            name = f"{html.escape(run.header.name)}: " if len(self._runs) > 1 else ""
            so_far = " (so far)" if run.header.status == schema.RUNNING else ""
            lines.append(f"<b>{name}{verdict.headline}{so_far}.</b> " + html.escape(" ".join(verdict.reasons)))
        self._recommendation.setText("<br>".join(lines))
        self._recommendation.setVisible(bool(lines))

    def _all_batch_sizes(self) -> list[int]:
        sizes = set()
        for run in self._runs:
            sizes.update(run.header.batch_sizes)
            sizes.update(trial.batch_size for trial in run.trials)
        return sorted(sizes)

    def _draw(self) -> None:
        sizes = self._all_batch_sizes()
        for card in self._cards.values():
            self._draw_card(card, sizes)
        self._update_key(sizes)
        if self._target is None:
            self._target_note.setText("No epoch has finished yet.")
        else:
            self._target_note.setText(f"Time, steps and samples below count until {self._target:.1%} validation "
                                      "accuracy was first reached.")

    def _draw_card(self, card: _Card, sizes: list[int]) -> None:
        plot = card.plot_item()
        plot.clear()
        theme = self._theme
        ticks = [(math.log2(size), str(size)) for size in sizes]
        plot.getAxis("bottom").setTicks([ticks, []])
        log_y = self._use_log_y(card.spec)
        plot.getAxis("left").setLogMode(False, log_y)
        missing: dict[int, str] = {}
        points: list[SummaryPoint] = []
        partial: list[tuple[float, float, str]] = []
        tops: list[float] = []
        variants = len(card.spec.measures)
        for series_index, series in enumerate(self._series):
            symbol = SERIES_SYMBOLS[series_index % len(SERIES_SYMBOLS)]
            for variant, key in enumerate(card.spec.measures):
                measure = MEASURES[key]
                offset = (variant - (variants - 1) / 2) * 0.09
                xs, ys, tops_err, bottoms_err, colors = [], [], [], [], []
                for entry in series.stats:
                    mean = entry.mean[key] * measure.display.scale
                    std = entry.std[key] * measure.display.scale
                    if not math.isfinite(mean) or (log_y and mean <= 0):
                        missing.setdefault(entry.batch_size, self._missing_reason(entry, measure))
                        continue
                    x = math.log2(entry.batch_size) + offset
                    std = std if math.isfinite(std) else 0.0
                    if log_y:
                        y = math.log10(mean)
                        top = math.log10(mean + std) - y
                        bottom = y - math.log10(mean - std) if mean - std > 0 else 0.0
                    else:
                        y, top, bottom = mean, std, std
                    xs.append(x)
                    ys.append(y)
                    tops_err.append(top)
                    bottoms_err.append(bottom)
                    tops.append(y + top)
                    colors.append(batch_size_color(entry.batch_size, sizes, dark=theme.dark))
                    points.append(SummaryPoint(key, entry.batch_size, entry.base_lr, series.run_index, mean, std,
                                               colors[-1], entry.reached_target, entry.trials))
                    if measure.needs_target and 0 < entry.reached_target < entry.trials:
                        partial.append((x, y, f"{entry.reached_target}/{entry.trials}"))
                if not xs:
                    continue
                line_color = with_alpha(theme.neutral_line, 0.45)
                if variant == 0:
                    plot.addItem(pg.PlotDataItem(xs, ys, pen=make_pen(line_color, 1.4,
                                                                        run_line_style(series.run_index))))
                plot.addItem(pg.ErrorBarItem(x=np.array(xs), y=np.array(ys), top=np.array(tops_err),
                                             bottom=np.array(bottoms_err), beam=0.12,
                                             pen=pg.mkPen(with_alpha(theme.text, 0.55), width=1.2)))
                hollow = variant > 0
                brushes = [pg.mkBrush(theme.background if hollow else color) for color in colors]
                pens = [pg.mkPen(color, width=2) if hollow else pg.mkPen(theme.background, width=1.2)
                        for color in colors]
                scatter = pg.ScatterPlotItem(xs, ys, symbol=symbol, size=11, brush=brushes, pen=pens,
                                             antialias=True)
                scatter.setZValue(10)
                plot.addItem(scatter)
        for x, y, text in partial:
            item = pg.TextItem(text, color=theme.muted_text, anchor=(-0.2, 1.0))
            item.setToolTip("seeds that reached the target (the mean is over those)")
            plot.addItem(item, ignoreBounds=True)
            item.setPos(x, y)
        self._points[card.spec.name] = points
        self._missing[card.spec.name] = missing
        self._draw_missing(card, plot, missing, tops, log_y)
        plot.enableAutoRange()
        if sizes:
            low, high = math.log2(min(sizes)), math.log2(max(sizes))
            plot.setXRange(low - 0.5, high + 0.5, padding=0)

    def _use_log_y(self, spec: SummaryPlot) -> bool:
        """Log y for quantities that halve as the batch size doubles, when they span more than a factor 4."""
        measure = MEASURES[spec.measures[0]]
        if not measure.log_y:
            return False
        values = [entry.mean[measure.key] for series in self._series for entry in series.stats
                  if math.isfinite(entry.mean[measure.key]) and entry.mean[measure.key] > 0]
        return bool(values) and max(values) / min(values) > 4

    def _missing_reason(self, entry: BatchSizeStats, measure: Measure) -> str:
        if measure.needs_target and entry.reached_target == 0 and entry.completed + entry.trials > 0:
            statuses = self._statuses(entry)
            if statuses and statuses <= {schema.OUT_OF_MEMORY, schema.FAILED}:
                return ", ".join(sorted(status.replace("_", " ") for status in statuses))
            return "not reached"
        statuses = self._statuses(entry)
        failed = statuses - {schema.COMPLETED, schema.RUNNING, schema.CANCELLED}
        if failed:
            return ", ".join(sorted(status.replace("_", " ") for status in failed))
        return "no data yet"

    def _seeds_text(self, series: _SeriesData, entry: BatchSizeStats) -> str:
        """'2', or '2 · 1 running', '3 · 1 out of memory': how many seeds, and those not completed."""
        counts: dict[str, int] = {}
        for trial in series.run.trials:
            if trial.batch_size == entry.batch_size and trial.base_lr == entry.base_lr:
                counts[trial.status] = counts.get(trial.status, 0) + 1
        others = [f"{count} {status.replace('_', ' ')}" for status, count in sorted(counts.items())
                  if status != schema.COMPLETED]
        return " · ".join([str(entry.trials)] + others)

    def _statuses(self, entry: BatchSizeStats) -> set[str]:
        return {trial.status for run in self._runs for trial in run.trials
                if trial.batch_size == entry.batch_size and trial.base_lr == entry.base_lr}

    def _draw_missing(self, card: _Card, plot: pg.PlotItem, missing: dict[int, str], tops: list[float],
                      log_y: bool) -> None:
        """Batch sizes without a value are marked at the top of the plot with the reason, never drawn as 0."""
        if not missing:
            card.note.hide()
            return
        if tops:
            finite = [value for value in tops if math.isfinite(value)]
            low = min(finite)
            high = max(finite)
            span = high - low if high > low else (abs(high) if high else 1.0)
            level = high + 0.12 * span
        else:
            level = 0.0
        xs = [math.log2(size) for size in missing]
        marks = pg.ScatterPlotItem(xs, [level] * len(xs), symbol="x", size=11,
                                   pen=pg.mkPen(self._theme.muted_text, width=1.5), brush=None)
        marks.setToolTip("No value for this batch size: see the note under the plot")
        plot.addItem(marks)
        groups: dict[str, list[int]] = {}
        for size, reason in sorted(missing.items()):
            groups.setdefault(reason, []).append(size)
        card.note.setText("× " + "; ".join(f"{reason}: batch size {', '.join(map(str, sizes))}"
                                          for reason, sizes in groups.items()))
        card.note.setStyleSheet(f"color: {self._theme.text.name()};")
        card.note.show()

    def _update_key(self, sizes: list[int]) -> None:
        theme = self._theme
        swatches = " ".join(
            f"<span style='color:{batch_size_color(size, sizes, dark=theme.dark).name()}'>●</span>&nbsp;{size}"
            for size in sizes)
        lines = [f"<p style='margin:0 0 6px 0'><b>Colour</b> is the batch size:<br>{swatches}</p>",
                 "<p style='margin:0 0 6px 0'><b>Points</b> are the mean over seeds; <b>error bars</b> one standard "
                 "deviation (none with a single seed).</p>"]
        if len(self._series) > 1:
            symbols = {"o": "●", "s": "■", "t": "▼", "d": "◆", "p": "⬟", "h": "⬢"}
            keys = "<br>".join(f"{symbols[SERIES_SYMBOLS[i % len(SERIES_SYMBOLS)]]}&nbsp;{self._series_label(s)}"
                               for i, s in enumerate(self._series))
            lines.append(f"<p style='margin:0 0 6px 0'><b>Symbols</b> tell the series apart:<br>{keys}</p>")
        lines.append("<p style='margin:0'><b>×</b> marks a batch size with no value, with the reason "
                     "(not reached, out of memory, ...).</p>")
        self._key_text.setText("".join(lines))

    # ---------------------------------------------------------------- table

    def _fill_table(self) -> None:
        table = self._table
        table.setSortingEnabled(False)
        columns = ["Batch size"]
        if len(self._runs) > 1:
            columns.append("Run")
        if self._lr_swept():
            columns.append("Base lr")
        columns += ["Seeds", "Reached target"]
        shown = [m for m in MEASURES.values()]
        columns += [f"{m.label} ({m.display.unit})" if m.display.unit else m.label for m in shown]
        table.clear()
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels(columns)
        rows = [(series, entry) for series in self._series for entry in series.stats]
        table.setRowCount(len(rows))
        sizes = self._all_batch_sizes()
        muted = self._theme.muted_text
        for row, (series, entry) in enumerate(rows):
            column = 0
            size_item = _SortableItem(str(entry.batch_size), entry.batch_size)
            size_item.setIcon(dot_icon(batch_size_color(entry.batch_size, sizes, dark=self._theme.dark), 12))
            table.setItem(row, column, size_item)
            column += 1
            if len(self._runs) > 1:
                table.setItem(row, column, QTableWidgetItem(series.run.path.stem))
                column += 1
            if self._lr_swept():
                table.setItem(row, column, _SortableItem(f"{series.base_lr:g}", series.base_lr))
                column += 1
            table.setItem(row, column, _SortableItem(self._seeds_text(series, entry), entry.trials))
            column += 1
            table.setItem(row, column, _SortableItem(f"{entry.reached_target}/{entry.trials}",
                                                     entry.reached_target / max(entry.trials, 1)))
            column += 1
            for measure in shown:
                mean, std = entry.mean[measure.key], entry.std[measure.key]
                if not math.isfinite(mean):
                    text = "not reached" if measure.needs_target and entry.reached_target == 0 else "–"
                    item = _SortableItem(text, math.nan)
                    item.setForeground(muted)
                else:
                    spread = std * measure.display.scale if entry.trials > 1 and math.isfinite(std) else None
                    text = measure.display.format_mean_std(mean * measure.display.scale, spread)
                    item = _SortableItem(text, mean)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(row, column, item)
                column += 1
        table.setSortingEnabled(True)

    # ---------------------------------------------------------------- target

    def _set_spin_value(self, fraction: float) -> None:
        self._spin.blockSignals(True)
        self._spin.setValue(round(fraction * 100, 1))
        self._spin.blockSignals(False)

    def _spin_changed(self, value: float) -> None:
        self.set_target_accuracy(value / 100)

    def _auto_toggled(self, on: bool) -> None:
        self._auto = on
        if on:
            self.refresh()
