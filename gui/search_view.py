"""The Search tab: what a search (random, bayesian, start-small) tried and found, read from the run on screen
through engine.search.summary, the same facts `report` prints. Three panels, each with a one-line caption
that says how to read it, for someone who never heard of TPE."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QGridLayout, QVBoxLayout, QWidget

from engine.runfile import RunData
from engine.search.summary import (PANEL_CAPTIONS, PANEL_TITLES, SearchPoint, SearchSummary, search_headline,
                                   summarize_search)
from gui.plotkit import PlotColors, captioned_plots, make_pen, selectable_headline

# Scores are coloured on their own map, not the batch sizes' viridis (gui.colors), so the two never read alike.
SCORE_MAP = "plasma"
PRUNED_SYMBOL = "x"
NO_SCORE_SYMBOL = "o"      # drawn hollow
POINT_SIZE = 11


class SearchView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("searchView")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        self.headline = selectable_headline()
        layout.addWidget(self.headline)
        grid = QGridLayout()
        layout.addLayout(grid, 1)
        self.plots, self.captions = captioned_plots(grid, PANEL_TITLES, PANEL_CAPTIONS)
        self.search: SearchSummary | None = None
        self.set_runs([])

    def set_runs(self, runs: list[RunData]) -> None:
        """Show the first run on screen that is a search; say so when none is."""
        self.search = next((s for s in map(summarize_search, runs) if s is not None), None)
        for plot in self.plots.values():
            plot.clear()
            plot.setVisible(self.search is not None)
        for caption in self.captions.values():
            caption.setVisible(self.search is not None)
        if self.search is None:
            self.headline.setText("The runs on screen are not searches. Set [sweep] strategy to random, bayesian "
                                  "or start-small to let the workbench choose which batch sizes to try.")
            return
        self.headline.setText(search_headline(self.search))
        colors = PlotColors.from_palette(self.palette())
        self._draw_progress(colors)
        self._draw_where()
        self._draw_batch(colors)

    # ----- panels
    def _draw_progress(self, colors: PlotColors) -> None:
        search, plot = self.search, self.plots["progress"]
        plot.setLabel("bottom", "point, in the order tried")
        plot.setLabel("left", search.objective_label)
        numbers = np.arange(1, len(search.points) + 1, dtype=float)
        scores = np.array([p.score(search.objective) for p in search.points])
        scored = np.isfinite(scores)
        plot.plot(numbers[scored], scores[scored], pen=None, symbol="o", symbolSize=POINT_SIZE - 3,
                  symbolBrush=_score_brushes(scores[scored], search.lower_is_better))
        plot.plot(numbers, np.array(search.best_so_far()), pen=make_pen(colors.neutral_line, 2),
                  stepMode=None, connect="finite")
        if scored.any():
            # Points without a score sit on the worst score shown, marked by why they have none.
            floor = np.nanmax(scores) if search.lower_is_better else np.nanmin(scores)
            for mask, symbol in _unscored(search.points, scored):
                plot.plot(numbers[mask], np.full(mask.sum(), floor), pen=None, symbol=symbol, symbolSize=POINT_SIZE,
                          symbolBrush=None if symbol == NO_SCORE_SYMBOL else colors.muted_text,
                          symbolPen=colors.muted_text)

    def _draw_where(self) -> None:
        search, plot = self.search, self.plots["where"]
        plot.setLogMode(x=True, y=True)
        plot.setLabel("bottom", "batch size")
        plot.setLabel("left", "learning rate")
        scores = np.array([p.score(search.objective) for p in search.points])
        sizes = np.array([p.batch_size for p in search.points], dtype=float)
        lrs = np.array([p.lr for p in search.points])
        scored = np.isfinite(scores)
        # Log mode transforms data given to plot(); ScatterPlotItems added by hand would not be.
        plot.plot(sizes[scored], lrs[scored], pen=None, symbol="o", symbolSize=POINT_SIZE,
                  symbolBrush=_score_brushes(scores[scored], search.lower_is_better))
        for mask, symbol in _unscored(search.points, scored):
            plot.plot(sizes[mask], lrs[mask], pen=None, symbol=symbol, symbolSize=POINT_SIZE,
                      symbolBrush=None if symbol == NO_SCORE_SYMBOL else "gray", symbolPen="gray")

    def _draw_batch(self, colors: PlotColors) -> None:
        search, plot = self.search, self.plots["batch"]
        plot.setLogMode(x=True, y=False)
        plot.setLabel("bottom", "batch size")
        plot.setLabel("left", search.objective_label)
        seeds_x, seeds_y, mean_x, mean_y, low, high = [], [], [], [], [], []
        for point in search.points:
            values = [v for v in point.values if math.isfinite(v)]
            seeds_x += [point.batch_size] * len(values)
            seeds_y += values
            score = point.score(search.objective)
            if math.isfinite(score):
                mean_x.append(point.batch_size)
                mean_y.append(score)
                low.append(min(values))
                high.append(max(values))
        plot.plot(seeds_x, seeds_y, pen=None, symbol="o", symbolSize=5, symbolBrush=colors.muted_text,
                  symbolPen=None)
        plot.plot(mean_x, mean_y, pen=None, symbol="o", symbolSize=POINT_SIZE,
                  symbolBrush=_score_brushes(np.array(mean_y), search.lower_is_better))
        if mean_x:
            x = np.log10(np.array(mean_x, dtype=float))
            bars = pg.ErrorBarItem(x=x, y=np.array(mean_y), top=np.array(high) - mean_y,
                                   bottom=np.array(mean_y) - np.array(low), beam=0.02,
                                   pen=make_pen(colors.neutral_line, 1))
            plot.addItem(bars)


def _unscored(points: list[SearchPoint], scored: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """The points without a score, as (mask, symbol): pruned ones, and the rest (a target missed, a failure)."""
    pruned = np.array([p.pruned for p in points], dtype=bool)
    return [(mask, symbol) for mask, symbol in ((pruned, PRUNED_SYMBOL), (~scored & ~pruned, NO_SCORE_SYMBOL))
            if mask.any()]


def _score_brushes(scores: np.ndarray, lower_is_better: bool) -> list:
    """One brush per score on SCORE_MAP, the best the brightest."""
    if not len(scores):
        return []
    span = float(np.ptp(scores)) or 1.0
    goodness = (scores - scores.min()) / span
    if lower_is_better:
        goodness = 1.0 - goodness
    colors = pg.colormap.get(SCORE_MAP).map(0.1 + 0.85 * goodness, mode="qcolor")
    return [pg.mkBrush(color) for color in colors]
