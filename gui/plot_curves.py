"""The curves of the live plots: one per trial, plot and series, created once and afterwards only given new data.

A curve's colour is its batch size's, its line style its run's, its marker its seed's; a per-step series may be
smoothed; its points are placed on the x axis the plots show. Which curves are visible is the owner's decision.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg

from engine.runfile import TrialData
from gui.colors import batch_size_color
from gui.plot_specs import EPOCH, FAINT, LIVE_PLOTS, MAIN, NOISE_GROUP, SPECS, STEP, STEP_GROUP, TRAIN, Series
from gui.plotkit import PlotColors, display, make_pen, run_line_style, seed_symbol, with_alpha
from gui.smoothing import ema
from gui.x_axis import x_values

# Epoch curves are antialiased (smooth thick lines) while a plot holds at most this many epoch points; beyond
# it, thick antialiased lines are the most expensive thing to paint and are drawn plain instead.
ANTIALIAS_MAX_EPOCH_POINTS = 1500
# Epoch points get a marker (its shape tells seeds apart) while the plot's main curves hold at most this many
# points: beyond it the markers overlap into a band, and re-placing them is a third of an x-axis switch.
MARKERS_MAX_EPOCH_POINTS = 1500
# Peak downsampling keeps the minimum and maximum of each bin; one bin per pixel column already draws the
# exact envelope of a long curve, so more samples per pixel (pyqtgraph's default is 5) only cost time.
STEP_SAMPLES_PER_PIXEL = 1.0
Z_ORDER = {MAIN: 10, TRAIN: 5, STEP: 3, FAINT: -10}


@dataclass
class Curve:
    item: pg.PlotDataItem
    plot: str
    series: Series
    run_index: int
    trial: TrialData
    drawn_points: int = -1     # how many points its last setData drew (-1: never drawn)
    smoothed: np.ndarray | None = None     # the smoothed y last drawn, extended as the curve grows
    smoothed_weight: float = -1.0

    def points(self) -> int:
        """How many points its data holds now (a live trial's arrays grow)."""
        return len(columns_of(self.trial, self.series.group)[self.series.metric])


@dataclass(frozen=True)
class CurveLook:
    """What a curve's look depends on besides its own trial."""
    colors: PlotColors
    color_batch_sizes: tuple[int, ...]          # the sizes the colour map spreads over
    seeds: tuple[int, ...]                      # every seed shown, in order (a seed's marker is its index's)


def columns_of(trial: TrialData, group: str) -> dict[str, np.ndarray]:
    """A trial's columns of one group: per epoch, per step or the noise scale's."""
    return {EPOCH: trial.epoch, STEP_GROUP: trial.step, NOISE_GROUP: trial.noise}[group]


class CurveSet:
    """Every curve of every trial shown, by (run index, trial name)."""

    def __init__(self, plots: dict[str, pg.PlotItem]):
        self._plots = plots
        self._curves: dict[tuple[int, str], list[Curve]] = {}
        self._step_epochs: dict[tuple[int, str], np.ndarray] = {}    # see x_of
        self._markers: dict[str, bool] = {}                          # plot name -> its epoch points get markers

    def clear(self) -> None:
        for curve in self:
            self._plots[curve.plot].removeItem(curve.item)
        self._curves.clear()
        self._step_epochs.clear()

    def __iter__(self) -> Iterator[Curve]:
        return (curve for curves in self._curves.values() for curve in curves)

    def __bool__(self) -> bool:
        return bool(self._curves)

    def by_trial(self) -> Iterator[tuple[tuple[int, str], list[Curve]]]:
        return iter(self._curves.items())

    def has(self, run_index: int, trial_name: str) -> bool:
        return (run_index, trial_name) in self._curves

    def of_plot(self, plot_name: str) -> list[Curve]:
        return [curve for curve in self if curve.plot == plot_name]

    def find(self, plot_name: str, trial_name: str, metric: str, run_index: int) -> Curve | None:
        for curve in self._curves.get((run_index, trial_name), []):
            if curve.plot == plot_name and curve.series.metric == metric:
                return curve
        return None

    def markers(self) -> dict[str, bool]:
        return dict(self._markers)

    def add_trial(self, run_index: int, trial: TrialData, look: CurveLook) -> list[Curve]:
        """A curve for each series of each plot, styled, with no data yet."""
        curves = []
        for spec in LIVE_PLOTS:
            for series in spec.series:
                item = pg.PlotDataItem(antialias=series.group != STEP_GROUP)
                if series.group == STEP_GROUP:
                    item.opts["autoDownsampleFactor"] = STEP_SAMPLES_PER_PIXEL
                item.setZValue(Z_ORDER[series.role])
                self._plots[spec.name].addItem(item)
                if series.group != STEP_GROUP:
                    # Epoch and noise-scale rows, a few hundred points at most: never downsampled, since pyqtgraph's
                    # automatic downsampling drops every point of a short curve when the view is much wider than it.
                    item.setDownsampling(auto=False)
                    item.setClipToView(False)
                curve = Curve(item, spec.name, series, run_index, trial)
                self.style(curve, look)
                curves.append(curve)
        self._curves[(run_index, trial.name)] = curves
        return curves

    def style(self, curve: Curve, look: CurveLook) -> None:
        trial, role, item = curve.trial, curve.series.role, curve.item
        color = batch_size_color(trial.batch_size, look.color_batch_sizes, dark=look.colors.dark)
        style = run_line_style(curve.run_index)
        if role == MAIN:
            item.setPen(make_pen(color, 2.0, style))
            if not self._markers.get(curve.plot, True):
                item.setSymbol(None)
            else:
                item.setSymbol(seed_symbol(look.seeds.index(trial.seed)) if trial.seed in look.seeds else "o")
            item.setSymbolSize(6)
            item.setSymbolBrush(pg.mkBrush(color))
            item.setSymbolPen(pg.mkPen(look.colors.background, width=0.8))
            return
        width, alpha = {TRAIN: (1.3, 0.55), STEP: (1.0, 0.85), FAINT: (1.0, 0.28)}[role]
        if curve.series.group == NOISE_GROUP:
            width = 1.8           # one short curve per trial, its level is what matters: drawn as boldly as epochs
        item.setPen(make_pen(with_alpha(color, alpha), width, style))
        item.setSymbol(None)

    def drop_step_data(self) -> None:
        """Empty the per-step curves (until their next set_data), so that moving the view does not clip and
        downsample points about to be replaced."""
        for curve in self:
            if curve.series.group == STEP_GROUP:
                curve.item.setData([], [])
                curve.drawn_points = -1

    def update_detail(self, look: CurveLook) -> None:
        """Antialiasing and markers of epoch curves while a plot has few enough points for them to show."""
        points: dict[str, int] = {}
        marked: dict[str, int] = {}
        for curve in self:
            if curve.series.group == EPOCH:
                count = len(curve.trial.epoch["epoch"])
                points[curve.plot] = points.get(curve.plot, 0) + count
                if curve.series.role == MAIN:
                    marked[curve.plot] = marked.get(curve.plot, 0) + count
        markers = {name: count <= MARKERS_MAX_EPOCH_POINTS for name, count in marked.items()}
        restyle = markers != self._markers
        self._markers = markers
        for curve in self:
            if curve.series.group != EPOCH:
                continue
            if restyle and curve.series.role == MAIN:
                self.style(curve, look)
            smooth = points.get(curve.plot, 0) <= ANTIALIAS_MAX_EPOCH_POINTS
            if curve.item.opts["antialias"] != smooth:
                curve.item.opts["antialias"] = smooth
                curve.item.curve.opts["antialias"] = smooth
                curve.item.curve.update()

    def set_data(self, curve: Curve, x_axis: str, smoothing: float) -> None:
        """Give the curve its trial's data as it is now, on this x axis, smoothed with this weight."""
        series = curve.series
        y = columns_of(curve.trial, series.group)[series.metric]
        presentation = display(SPECS[curve.plot].unit_metric)
        if presentation.scale != 1.0:
            y = y * presentation.scale
        if series.smooth and smoothing > 0:
            y = self._smoothed(curve, y, smoothing)
        if series.group == NOISE_GROUP:
            # Early estimates can be negative or infinite (a noisy |G|² near zero): gaps on the log axis, not lines
            # drawn to the bottom of it.
            y = np.where(np.isfinite(y) & (y > 0), y, np.nan)
            curve.item.setData(self._x_of(curve, x_axis), y, connect="finite")
        else:
            curve.item.setData(self._x_of(curve, x_axis), y)
        curve.drawn_points = len(y)

    def _x_of(self, curve: Curve, x_axis: str) -> np.ndarray:
        """The curve's x on an axis. Per-step epochs are computed (a division of every step), so they are kept
        for the trial's other per-step curves and the next switch back, until the trial grows."""
        trial, group = curve.trial, curve.series.group
        if not (x_axis == "epoch" and group == STEP_GROUP):
            return x_values(trial, group, x_axis)
        key = (curve.run_index, trial.name)
        cached = self._step_epochs.get(key)
        if cached is None or len(cached) != len(trial.step["step"]):
            cached = self._step_epochs[key] = x_values(trial, group, x_axis)
        return cached

    @staticmethod
    def _smoothed(curve: Curve, y: np.ndarray, weight: float) -> np.ndarray:
        """ema(y), computing only the points added since the last redraw (live arrays only grow)."""
        done = curve.smoothed
        if done is not None and curve.smoothed_weight == weight and len(done) == len(y):
            return done
        if done is None or curve.smoothed_weight != weight or not 0 < len(done) <= len(y):
            smoothed = ema(y, weight)
        else:
            smoothed = np.concatenate([done, ema(y[len(done):], weight, previous=done[-1])])
        curve.smoothed, curve.smoothed_weight = smoothed, weight
        return smoothed
