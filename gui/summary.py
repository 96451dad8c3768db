"""The answer of a sweep: the recommendation in words, over one point per batch size (mean over seeds, error bar
= standard deviation) for accuracy, generalization gap, time / steps / samples to a target accuracy, throughput
and peak memory, on a log2 batch-size axis, each with a caption saying how to read it, and a table of the
same numbers.

The parts, each in its own module: the one target (gui.target_bar), the verdict (gui.recommendation_view), the
plot cards and their key (gui.summary_cards) and the table (gui.summary_table). All numbers come from
engine.analysis and engine.science.recommendation; this module only lays them out and keeps them in step.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QScrollArea, QSplitter, QStackedWidget, QTableWidget, \
    QVBoxLayout, QWidget

from engine.analysis import BatchSizeStats, by_batch_size, summarize_run
from engine.runfile import RunData
from engine.science.recommendation import NOTHING_LEARNED, Verdict, default_target, judge
from gui.export import CurrentPlotExport, export_table_csv, export_widget_image
from gui.plotkit import PlotColors
from gui.recommendation_view import RecommendationView
from gui.hardware_views import RankScalingCard
from gui.summary_cards import (GPU_MEASURES, SERIES_SYMBOLS, SUMMARY_PLOTS, KeyCard, Level, MissingPoint, SummaryCard,
                               SummaryPoint, SummarySeries, draw_memory_fit, gpu_sampled, levels_caption, memory_card,
                               memory_per_trial, MIN_CARD_WIDTH)
from gui.summary_table import SummaryTable, table_measures
from gui.target_bar import TargetBar

REFRESH_DELAY_MS = 250
MAX_CARD_COLUMNS = 4


class SummaryView(CurrentPlotExport, QWidget):
    """One point per batch size for each quantity that answers "which batch size", and a table of them."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._runs: list[RunData] = []
        self._series: list[SummarySeries] = []
        self._verdicts: list[Verdict] = []
        self._target: float | None = None
        self._auto = True
        self._current_plot: str | None = None
        self._columns = 0
        self._placed: tuple[str, ...] = ()
        self._theme = PlotColors.from_palette(self.palette())
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_DELAY_MS)
        self._refresh_timer.timeout.connect(self.refresh)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.target_bar = TargetBar()
        self.target_bar.targetChanged.connect(self.set_target_accuracy)
        layout.addWidget(self.target_bar)
        # The answer to "which batch size should I use?", in words, above the evidence for it.
        self.recommendation = RecommendationView()
        layout.addWidget(self.recommendation)
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
        self._cards: dict[str, SummaryCard] = {spec.name: SummaryCard(spec, self.set_current_plot)
                                               for spec in SUMMARY_PLOTS}
        rank_card = RankScalingCard(self.set_current_plot)
        self._cards[rank_card.spec.name] = rank_card
        self._key_card = KeyCard()
        self._cards_area.setWidget(self._cards_widget)
        self._splitter.addWidget(self._cards_area)
        self._table = SummaryTable()
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
        """Recompute every number from the runs at the one target, and redraw."""
        self._refresh_timer.stop()
        if self._auto:
            self._target = default_target(self._runs)
        self._verdicts = [judge(run, self._target) for run in self._runs]
        self._series = self._build_series()
        has_data = any(one.stats for one in self._series)
        self._stack.setCurrentWidget(self._splitter if has_data else self._placeholder)
        self.target_bar.show_target(self._target, self._auto, [run.path.stem for run in self._runs])
        self.recommendation.set_verdicts(list(zip(self._runs, self._verdicts)))
        self._draw()
        self._fit_cards_height()
        if not self._splitter_user_sized:
            self._size_splitter()

    def recommendation_text(self) -> str:
        """The recommendation as shown, every reason included (plain text); empty before any finished epoch."""
        return self.recommendation.text()

    def verdicts(self) -> list[Verdict]:
        """The verdict of each run shown, at the Summary's target (engine.science.recommendation.judge)."""
        return list(self._verdicts)

    def target_accuracy(self) -> float | None:
        """The one target validation accuracy (a fraction) of the recommendation and every card."""
        return self._target

    def set_target_accuracy(self, fraction: float | None) -> None:
        """Set the target (a fraction, e.g. 0.85); None goes back to the automatic default."""
        self._auto = fraction is None
        if fraction is not None:
            self._target = float(fraction)
        self.refresh()

    def is_auto_target(self) -> bool:
        return self._auto

    def stats(self) -> list[tuple[RunData, float, list[BatchSizeStats]]]:
        """What is drawn: (run, base lr, per-batch-size statistics from engine.analysis.by_batch_size)."""
        return [(one.run, one.base_lr, list(one.stats)) for one in self._series]

    def plot_names(self) -> tuple[str, ...]:
        """The cards shown, in order (the GPU card only where a run trained on a GPU)."""
        return tuple(name for name, card in self._cards.items() if self._shows(name))

    def _shows(self, name: str) -> bool:
        return gpu_sampled(self._series) or not set(self._cards[name].spec.measures) & set(GPU_MEASURES)

    def card(self, name: str) -> SummaryCard:
        """One plot card: its title, caption and note are what the user reads under the plot."""
        return self._cards[name]

    def points(self, plot_name: str) -> list[SummaryPoint]:
        """The points drawn in one plot (batch sizes without a value are in `missing`)."""
        return list(self._cards[plot_name].points)

    def missing(self, plot_name: str) -> list[MissingPoint]:
        """Batch sizes shown as × in one plot, with the series and the reason ('not reached', ...)."""
        return list(self._cards[plot_name].missing)

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
        return self._table.headers()

    def table_rows(self) -> list[list]:
        """One row per batch size (and run, and base lr): numbers in the units shown, NaN where missing."""
        return self._table.rows()

    def export_table(self, path: Path) -> None:
        """The per-batch-size table as CSV."""
        export_table_csv(self.table_headers(), self.table_rows(), Path(path))

    def table_widget(self) -> QTableWidget:
        return self._table

    def key_text(self) -> str:
        """The "How to read these" card's text (rich text): colours, symbols of the series, rings, ×."""
        return self._key_card.text.text()

    def card_columns(self) -> int:
        """How many cards side by side at the current width."""
        return self._columns

    def shows_placeholder(self) -> bool:
        return self._stack.currentWidget() is self._placeholder

    # ---------------------------------------------------------------- computing and drawing

    def _build_series(self) -> list[SummarySeries]:
        several_runs = len(self._runs) > 1
        per_run = []
        for run_index, (run, verdict) in enumerate(zip(self._runs, self._verdicts)):
            stats = by_batch_size(summarize_run(run, self._target))
            # A series per base learning rate and per precision (sweep.learning_rates, sweep.precisions).
            for base_lr, precision in sorted({(entry.base_lr, entry.precision) for entry in stats}):
                per_run.append((run_index, run, verdict, base_lr, precision,
                                [e for e in stats if (e.base_lr, e.precision) == (base_lr, precision)]))
        lr_swept = len({base_lr for _, _, _, base_lr, _, _ in per_run}) > 1
        precision_swept = len({precision for _, _, _, _, precision, _ in per_run}) > 1
        series = []
        for index, (run_index, run, verdict, base_lr, precision, stats) in enumerate(per_run):
            parts = (([run.path.stem] if several_runs else []) + ([f"lr {base_lr:g}"] if lr_swept else [])
                     + ([precision] if precision_swept else []))
            ours = [c for c in verdict.candidates if (c.base_lr, c.stats.precision) == (base_lr, precision)]
            pick = verdict.batch_size if verdict.pick is not None and verdict.pick in ours else None
            roles = {c.batch_size: c.role for c in ours}
            series.append(SummarySeries(run_index, run, base_lr, stats, " · ".join(parts),
                                        SERIES_SYMBOLS[index % len(SERIES_SYMBOLS)], pick, roles,
                                        precision=precision))
        return series

    def _all_batch_sizes(self) -> list[int]:
        sizes = set()
        for run in self._runs:
            sizes.update(run.header.batch_sizes)
            sizes.update(trial.batch_size for trial in run.trials)
        return sorted(sizes)

    def _target_words(self) -> str:
        if self._target is None:
            return "the target"
        if len(self._runs) > 1:
            return (f"the target, {self._target:.1%} (the same for "
                    f"{', '.join(run.path.stem for run in self._runs)})")
        return f"the target, {self._target:.1%}"

    def _draw(self) -> None:
        sizes = self._all_batch_sizes()
        memory_measure_key, memory_title, memory_caption = memory_card(self._runs)
        levels = self._levels()
        for card in self._cards.values():
            spec = card.spec
            if spec.name == "memory":
                card.spec = replace(spec, measures=(memory_measure_key,))
                card.set_texts(memory_title, memory_caption)
                card.join_points = memory_measure_key == "step_memory_bytes" or memory_per_trial(self._runs)
            else:
                card.set_texts(spec.title, spec.caption.format(target=self._target_words(),
                                                               levels=levels_caption(levels)))
            card.draw(self._series, sizes, self._theme, levels if spec.name == "accuracy" else ())
            if spec.name == "memory" and memory_measure_key == "step_memory_bytes":
                draw_memory_fit(card, self._runs, sizes, self._theme)
        self._key_card.update_key(sizes, self._series, self._theme)
        self._table.fill(self._series, sizes, self._target, self._theme, table_measures(self._runs, self._series))
        self._place_cards()

    def _levels(self) -> tuple[Level, ...]:
        """The accuracy card's reference lines, in percent: the target and the no-skill baseline. The view
        widens to a baseline only when nothing learned (then it is the point); otherwise a baseline far below
        would squash the differences between batch sizes, and it shows only when it falls in view."""
        levels = [Level(self._target * 100, f"the target, {self._target:.1%}", False, False)] \
            if self._target is not None else []
        baselines: dict[float, bool] = {}
        for verdict in self._verdicts:
            value = round(verdict.baseline.accuracy, 6)
            baselines[value] = baselines.get(value, False) or verdict.outcome == NOTHING_LEARNED
        if baselines:
            # Close lines would be indistinguishable: the highest stands for all.
            value = max(baselines)
            which = " (the highest of the runs)" if len(baselines) > 1 else ""
            widen = any(baselines.values())
            levels.append(Level(value * 100, f"the no-skill baseline{which}, {value:.1%}"
                                + ("" if widen else ", when in view"), True, widen))
        return tuple(levels)

    # ---------------------------------------------------------------- layout

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
        widgets = [self._cards[name] for name in self.plot_names()]
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
        self._place_cards(force=True)

    def _place_cards(self, force: bool = False) -> None:
        """The shown cards and the key in the grid, row by row; hidden cards leave no gap."""
        names = self.plot_names()
        if names == self._placed and not force:
            return
        self._placed = names
        columns = max(self._columns, 1)
        for name, card in self._cards.items():
            card.setVisible(name in names)
        widgets = [self._cards[name] for name in names] + [self._key_card]
        for widget in [*self._cards.values(), self._key_card]:
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
        self._theme = theme = PlotColors.from_palette(self.palette())
        muted = theme.muted_text
        self.target_bar.note.setStyleSheet(
            f"color: rgba({muted.red()},{muted.green()},{muted.blue()},{muted.alphaF():.2f});")
        for card in self._cards.values():
            card.apply_theme(theme)
        if self._runs:
            self._draw()
