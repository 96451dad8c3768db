"""The legend of the live plots: what it lists (`legend_groups`: batch sizes by colour, seeds by marker, the
kinds of line, runs by line style) and how it is drawn (`FlowLegend`: entries with a line sample that wrap to the
width they are given; clicking an entry with a key shows or hides its curves).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QTextDocument
from PySide6.QtWidgets import QGraphicsObject, QSizePolicy
from pyqtgraph.graphicsItems.ScatterPlotItem import drawSymbol

from engine import schema
from engine.runfile import RunData
from gui.colors import batch_size_color
from gui.plot_specs import FAINT, MAIN, SPECS, STEP, TRAIN
from gui.plotkit import PlotColors, display, make_pen, run_line_style, seed_symbol, with_alpha


@dataclass(frozen=True)
class LegendEntry:
    """One legend entry: a line sample (pen, optional symbol) and its text; `key` is what a click toggles
    (None for a heading)."""
    text: str
    pen: QPen | None = None
    symbol: str | None = None
    symbol_brush: QColor | None = None
    symbol_pen: QColor | None = None
    key: object = None
    active: bool = True
    tooltip: str = ""


class _EntryItem(QGraphicsObject):
    SAMPLE_WIDTH = 30
    HEIGHT = 20

    def __init__(self, entry: LegendEntry, text_color: QColor, owner: FlowLegend):
        super().__init__()
        self.entry = entry
        self._owner = owner
        self._font = QFont()
        self._font.setPointSizeF(9.0)
        self._text = QTextDocument()
        self._text.setDocumentMargin(0)
        self._text.setDefaultFont(self._font)
        self._text.setHtml(f"<span style='white-space:nowrap; color:{text_color.name()}'>{entry.text}</span>")
        self._sample_width = self.SAMPLE_WIDTH if (entry.pen is not None or entry.symbol) else 0
        text_size = self._text.size()
        self._rect = QRectF(0, 0, self._sample_width + text_size.width() + 2, max(self.HEIGHT, text_size.height()))
        if entry.key is not None:
            self.setCursor(Qt.CursorShape.PointingHandCursor)
            self.setToolTip(entry.tooltip or "Click to show or hide these curves")

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, painter: QPainter, option, widget=None) -> None:
        entry = self.entry
        if not entry.active:
            painter.setOpacity(0.3)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        middle = self._rect.height() / 2
        painter.save()
        painter.translate(self._sample_width, middle - self._text.size().height() / 2)
        self._text.drawContents(painter)
        painter.restore()
        if entry.pen is not None:
            painter.setPen(entry.pen)
            painter.drawLine(QPointF(3, middle), QPointF(self._sample_width - 3, middle))
        if entry.symbol:
            painter.translate(self._sample_width / 2, middle)
            drawSymbol(painter, entry.symbol, 7, pg.mkPen(entry.symbol_pen or entry.symbol_brush),
                       pg.mkBrush(entry.symbol_brush))

    def mouseClickEvent(self, event) -> None:
        if self.entry.key is not None and event.button() == Qt.MouseButton.LeftButton:
            event.accept()
            self._owner.sigEntryClicked.emit(self.entry.key)


class FlowLegend(pg.GraphicsWidget):
    """A legend that fills the width it is given, wrapping entries into lines; each group of entries
    starts on a new line unless it fits after the previous group. Lives in a cell of a GraphicsLayout."""

    sigEntryClicked = Signal(object)
    SPACING = 10
    GROUP_GAP = 26

    def __init__(self):
        super().__init__()
        self._groups: list[list[LegendEntry]] = []
        self._items: list[_EntryItem] = []
        self._text_color = QColor("black")
        self._laid_out_width = -1.0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_groups(self, groups: list[list[LegendEntry]], text_color: QColor) -> None:
        for item in self._items:
            item.setParentItem(None)
            if item.scene() is not None:
                item.scene().removeItem(item)
        self._groups = [list(group) for group in groups if group]
        self._text_color = QColor(text_color)
        self._items = []
        self._item_groups: list[list[_EntryItem]] = []
        for group in self._groups:
            created = [_EntryItem(entry, self._text_color, self) for entry in group]
            for item in created:
                item.setParentItem(self)
            self._items.extend(created)
            self._item_groups.append(created)
        self._laid_out_width = -1.0
        self._relayout()

    def entries(self) -> list[LegendEntry]:
        return [item.entry for item in self._items]

    def setGeometry(self, *args) -> None:
        super().setGeometry(*args)
        if abs(self.size().width() - self._laid_out_width) > 0.5:
            self._relayout()

    def _relayout(self) -> None:
        width = self.size().width()
        if width <= 1:
            width = 1200.0
        self._laid_out_width = width
        x = y = 0.0
        line_height = 0.0
        for group in getattr(self, "_item_groups", []):
            group_width = sum(item.boundingRect().width() + self.SPACING for item in group)
            if x > 0 and x + self.GROUP_GAP + group_width > width:
                x, y = 0.0, y + line_height
                line_height = 0.0
            elif x > 0:
                x += self.GROUP_GAP
            for item in group:
                rect = item.boundingRect()
                if x > 0 and x + rect.width() > width:
                    x, y = 0.0, y + line_height
                    line_height = 0.0
                item.setPos(x, y)
                x += rect.width() + self.SPACING
                line_height = max(line_height, rect.height())
        height = y + line_height if self._items else 0.0
        self.setMinimumHeight(height)
        self.setMaximumHeight(height)
        self.setPreferredHeight(height)
        self.update()


@dataclass(frozen=True)
class LegendState:
    """What the legend depends on: the runs shown and what the user has switched off or set."""
    runs: Sequence[RunData]
    colors: PlotColors
    color_batch_sizes: tuple[int, ...]          # the sizes the colour map spreads over
    hidden_batch_sizes: frozenset[int] = frozenset()
    hidden_seeds: frozenset[int] = frozenset()
    hidden_runs: frozenset[int] = frozenset()   # run indexes
    markers: dict[str, bool] = field(default_factory=dict)    # plot name -> its epoch points have markers
    smoothing: float = 0.0
    show_step_loss: bool = True

    def shows(self, run_index: int, batch_size: int, seed: int) -> bool:
        return (run_index not in self.hidden_runs and batch_size not in self.hidden_batch_sizes
                and seed not in self.hidden_seeds)


def legend_groups(state: LegendState, for_plot: str | None = None) -> list[list[LegendEntry]]:
    """The legend's groups: batch sizes (with the statuses that are not a success), seeds when there are several,
    the kinds of line, and runs when several are overlaid; the entries of batch sizes, seeds and runs carry the
    key their click toggles. For one plot (an export that must stand alone): only what is visible in it."""
    colors = state.colors
    statuses: dict[int, set[str]] = {}
    seeds: set[int] = set()
    for index, run in enumerate(state.runs):
        for trial in run.trials:
            seeds.add(trial.seed)
            if for_plot is None or state.shows(index, trial.batch_size, trial.seed):
                statuses.setdefault(trial.batch_size, set()).add(trial.status)
    if not statuses:
        return []
    muted = colors.muted_text.name()
    sizes = [LegendEntry("<b>Batch size</b>")]
    for batch_size in sorted(statuses):
        color = batch_size_color(batch_size, state.color_batch_sizes, dark=colors.dark)
        problems = sorted(statuses[batch_size] - {schema.COMPLETED, schema.RUNNING})
        text = str(batch_size)
        if problems:
            words = ", ".join(schema.STATUS_LABELS.get(problem, problem) for problem in problems)
            text += f"&nbsp;<span style='color:{muted}'>({words.replace(' ', '&nbsp;')})</span>"
        sizes.append(LegendEntry(text, pen=make_pen(color, 2.5), key=("batch_size", batch_size),
                                 active=batch_size not in state.hidden_batch_sizes))
    groups = [sizes]
    neutral = colors.neutral_line
    if len(seeds) > 1 and (for_plot is None or state.markers.get(for_plot, False)):
        group = [LegendEntry("<b>Seed</b>")]
        for index, seed in enumerate(sorted(seeds)):
            if for_plot is not None and seed in state.hidden_seeds:
                continue
            group.append(LegendEntry(str(seed), symbol=seed_symbol(index), symbol_brush=neutral,
                                     symbol_pen=colors.background, key=("seed", seed),
                                     active=seed not in state.hidden_seeds))
        groups.append(group)
    groups.append([LegendEntry("<b>Lines</b>")] + _line_entries(state, for_plot))
    if len(state.runs) > 1:
        group = [LegendEntry("<b>Runs</b>")]
        for index, run in enumerate(state.runs):
            if for_plot is not None and index in state.hidden_runs:
                continue
            group.append(LegendEntry(run.path.stem, pen=make_pen(neutral, 2.0, run_line_style(index)),
                                     key=("run", index), active=index not in state.hidden_runs,
                                     tooltip="Click to show or hide this run's curves"))
        groups.append(group)
    return groups


def _line_entries(state: LegendState, for_plot: str | None) -> list[LegendEntry]:
    neutral, background = state.colors.neutral_line, state.colors.background
    samples = {MAIN: dict(pen=make_pen(neutral, 2.0), symbol="o", symbol_brush=neutral, symbol_pen=background),
               TRAIN: dict(pen=make_pen(with_alpha(neutral, 0.5), 1.3)),
               STEP: dict(pen=make_pen(with_alpha(neutral, 0.85), 1.0)),
               FAINT: dict(pen=make_pen(with_alpha(neutral, 0.35), 1.0))}
    if for_plot is None:
        return [LegendEntry("validation", **samples[MAIN]), LegendEntry("train", **samples[TRAIN]),
                LegendEntry("per step", **samples[FAINT])]
    entries = []
    for series in SPECS[for_plot].series:
        if series.role == FAINT and not state.show_step_loss:
            continue
        sample = dict(samples[series.role])
        if series.role == MAIN and not state.markers.get(for_plot, True):
            sample.pop("symbol")
        label = display(series.metric).label
        if series.smooth and state.smoothing > 0:
            label += f" (smoothed, {state.smoothing:.2f})"
        entries.append(LegendEntry(label, **sample))
    return entries
