"""Live plots of a sweep (or of runs opened from disk): one curve per trial, coloured by batch size.

Every curve is created once and afterwards only receives `setData`; growth is signalled with `mark_dirty`
and drawn by a timer, so however fast events arrive the plots redraw at most 20 times a second and only the
curves whose data grew. The timer adapts to what a redraw costs: its interval is at least three times the last
measured `setData` plus paint time, so the GUI thread spends at most about a third of its time drawing and
stays responsive to the user. Long step curves are clipped to the view and peak-downsampled by pyqtgraph.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QGraphicsView, QGridLayout, QHBoxLayout, QLabel, QMenu,
                               QSizePolicy, QSlider, QStackedWidget, QToolButton, QVBoxLayout, QWidget)

from engine import schema
from engine.runfile import RunData, TrialData
from gui.colors import batch_size_color
from gui.export import CurrentPlotExport, export_widget_image
from gui.plotkit import (FLAT_RANGE_PADDING, CompactAxis, Display, FlowLegend, LegendEntry, PaddedViewBox, Theme,
                         display, make_pen, run_line_style, seed_symbol, style_plot_item, with_alpha)
from gui.x_axis import X_AXES, data_range, map_range, x_values
REDRAW_INTERVAL_MS = 50           # the shortest interval: at most 20 redraws a second
MAX_REDRAW_INTERVAL_MS = 250      # the longest: live curves still move at least 4 times a second
# The redraw interval is at least this many times the last redraw's cost (setData plus paint), so drawing
# takes at most a third of the GUI thread however slow painting gets (big window, many curves).
REDRAW_COST_FACTOR = 3.0
EMA_BLOCK = 64                    # points per block of the smoothing's matrix product
# Epoch curves are antialiased (smooth thick lines) while a plot holds at most this many epoch points; beyond
# it, thick antialiased lines are the most expensive thing to paint and are drawn plain instead.
ANTIALIAS_MAX_EPOCH_POINTS = 1500
# Epoch points get a marker (its shape tells seeds apart) while the plot's main curves hold at most this many
# points: beyond it the markers overlap into a band, and re-placing them is a third of an x-axis switch.
MARKERS_MAX_EPOCH_POINTS = 1500
# Peak downsampling keeps the minimum and maximum of each bin; one bin per pixel column already draws the
# exact envelope of a long curve, so more samples per pixel (pyqtgraph's default is 5) only cost time.
STEP_SAMPLES_PER_PIXEL = 1.0
X_PADDING = 0.02                  # of the data's x extent, left and right of it (pyqtgraph's default padding)

# How a series is drawn. MAIN: the epoch measurement a plot is about (thick, with a symbol per seed);
# TRAIN: its training-set twin (thin, faded); STEP: a per-step metric; FAINT: per-step loss behind the rest.
MAIN, TRAIN, STEP, FAINT = "main", "train", "step", "faint"


@dataclass(frozen=True)
class Series:
    metric: str            # a name from engine.schema
    group: str             # schema.EPOCH_GROUP or schema.STEP_GROUP
    role: str
    smooth: bool = False   # the smoothing slider applies to it


@dataclass(frozen=True)
class PlotSpec:
    name: str
    title: str
    unit_metric: str       # the metric whose presentation (unit, scale) the y axis uses
    series: tuple[Series, ...]
    help: str


EPOCH, STEP_GROUP = schema.EPOCH_GROUP, schema.STEP_GROUP
PLOTS: tuple[PlotSpec, ...] = (
    PlotSpec("loss", "Loss", "val_loss",
             (Series("val_loss", EPOCH, MAIN), Series("train_loss", EPOCH, TRAIN),
              Series("loss", STEP_GROUP, FAINT, smooth=True)),
             "Validation loss (thick), train loss (thin) and the loss of each batch (faint). Lower is better."),
    PlotSpec("accuracy", "Accuracy", "val_accuracy",
             (Series("val_accuracy", EPOCH, MAIN), Series("train_accuracy", EPOCH, TRAIN)),
             "Validation accuracy (thick) and train accuracy (thin). Higher is better."),
    PlotSpec("grad_norm", schema.METRICS["grad_norm"].label, "grad_norm",
             (Series("grad_norm", STEP_GROUP, STEP, smooth=True),),
             "Size of the gradient at each step. Smaller batches give noisier gradients."),
    PlotSpec("lr", schema.METRICS["lr"].label, "lr", (Series("lr", STEP_GROUP, STEP),),
             "The learning rate used at each step (after scaling and warm-up)."),
    PlotSpec("throughput", schema.METRICS["samples_per_s"].label, "samples_per_s",
             (Series("samples_per_s", EPOCH, MAIN),),
             "Training examples processed per second in each epoch. Higher is faster."),
    PlotSpec("memory", schema.METRICS["peak_memory_bytes"].label, "peak_memory_bytes",
             (Series("peak_memory_bytes", EPOCH, MAIN),),
             "Most memory used during each epoch. Must fit on the device."),
)
PLOT_NAMES = tuple(spec.name for spec in PLOTS)
GRID_COLUMNS = 3


def x_axis_label(key: str) -> str:
    return display(key).title()


def ema(values: np.ndarray, weight: float, previous: float | None = None) -> np.ndarray:
    """Exponential moving average that starts at the first value (weight 0 = no smoothing), or continues from
    `previous`, the smoothed value just before `values` (so a growing curve is smoothed only where it grew).

    Computed in blocks with numpy (within a block a matrix product, across blocks the carried value), which is
    what scipy.signal.lfilter would do without scipy (not a dependency: 70 MB of the installer). Only non-negative
    powers of the weight occur, so it is stable.
    """
    values = np.asarray(values, dtype=np.float64)
    if weight <= 0 or len(values) == 0 or (previous is None and len(values) < 2):
        return values
    block = min(EMA_BLOCK, len(values))
    offsets = np.arange(block)
    lags = offsets[:, None] - offsets[None, :]
    within = np.where(lags >= 0, (1.0 - weight) * weight ** np.maximum(lags, 0), 0.0)   # [i, k]: x[k] in y[i]
    carried = weight ** (offsets + 1.0)                                                 # y before the block in y[i]
    blocks = -(-len(values) // block)
    padded = np.zeros(blocks * block)
    padded[:len(values)] = values
    smoothed = padded.reshape(blocks, block) @ within.T
    previous = values[0] if previous is None else previous
    for row in smoothed:
        row += carried * previous
        previous = row[-1]
    return smoothed.reshape(-1)[:len(values)]


@dataclass
class _Curve:
    item: pg.PlotDataItem
    plot: str
    series: Series
    run_index: int
    trial: TrialData
    drawn_points: int = -1     # how many points its last setData drew (-1: never drawn)
    smoothed: np.ndarray | None = None     # the smoothed y last drawn, extended as the curve grows
    smoothed_weight: float = -1.0


@dataclass
class _Crosshair:
    vline: pg.InfiniteLine
    hline: pg.InfiniteLine
    marker: pg.ScatterPlotItem
    label: pg.TextItem
    items: list = field(default_factory=list)


class _TimedGraphicsLayout(pg.GraphicsLayoutWidget):
    """A GraphicsLayoutWidget that remembers how long its last paint took (what the redraw timer adapts to),
    read from `clock` (seconds)."""

    def __init__(self, clock: Callable[[], float]):
        super().__init__()
        self._clock = clock
        self.last_paint_s = 0.0

    def paintEvent(self, event) -> None:
        started = self._clock()
        super().paintEvent(event)
        self.last_paint_s = self._clock() - started


class LivePlots(CurrentPlotExport, QWidget):
    """Loss, accuracy, gradient norm, learning rate, throughput and peak memory of every trial shown.

    `set_runs` says what to show (a live run's arrays grow in place); `mark_dirty` says data grew. The x axis
    (epoch, step, samples seen, training time) applies to all plots and is one click away above them.
    """

    x_axis_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None, clock: Callable[[], float] = time.perf_counter):
        """`clock` (seconds) times setData and painting, which the redraw interval adapts to; tests pass a
        fake one so the interval does not depend on the machine's speed."""
        super().__init__(parent)
        self._clock = clock
        self._runs: list[RunData] = []
        self._x_axis = "epoch"
        self._smoothing = 0.6
        self._show_step_loss = True
        self._log_x = False
        self._log_y = {name: False for name in PLOT_NAMES}
        self._curves: dict[tuple[int, str], list[_Curve]] = {}     # (run index, trial name) -> its curves
        self._step_epochs: dict[tuple[int, str], np.ndarray] = {}  # see _x_of
        self._markers: dict[str, bool] = {}                        # plot name -> epoch points get markers
        self._hidden_batch_sizes: set[int] = set()                 # switched off in the legend
        self._hidden_seeds: set[int] = set()
        self._color_batch_sizes: tuple[int, ...] = ()
        self._legend_signature: tuple = ()
        self._dirty: set[str] = set()
        self._all_dirty = False
        self._current_plot: str | None = None
        self._readout = ""
        self._theme = Theme.from_palette(self.palette())
        self._following = True                       # the x range follows the data (False once the user zooms)
        self._fitted_x: list[float] | None = None    # the x range last set to fit the data, in view coordinates

        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self._redraw)

        self._build_toolbar()
        self._build_plots()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self._toolbar)
        self._stack = QStackedWidget()
        self._placeholder = QLabel("Nothing to plot yet.\nPress Run to start a sweep, or open a run file from the "
                                   "Runs list.")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setObjectName("plotsPlaceholder")
        self._placeholder.setEnabled(False)
        self._stack.addWidget(self._placeholder)
        self._stack.addWidget(self._graphics)
        layout.addWidget(self._stack, 1)
        self._apply_theme()

    # ---------------------------------------------------------------- public interface

    def set_runs(self, runs: list[RunData]) -> None:
        """Show these runs (overlaid, told apart by line style). Curves are rebuilt; data is drawn at once."""
        for curves in self._curves.values():
            for curve in curves:
                self._plots[curve.plot].removeItem(curve.item)
        self._curves.clear()
        self._step_epochs.clear()
        self._runs = list(runs)
        self._legend_signature = ()
        self._color_batch_sizes = ()
        self._all_dirty = True
        self.fit_view()

    def runs(self) -> list[RunData]:
        return list(self._runs)

    def mark_dirty(self, trial_names: Iterable[str] | None = None) -> None:
        """Data grew (for these trials, or all): redrawn by the next timer tick, at most 20 times a second."""
        if trial_names is None:
            self._all_dirty = True
        else:
            names = set(trial_names)
            if not names:
                return
            self._dirty.update(names)
        if not self._timer.isActive():
            self._timer.start()

    def set_x_axis(self, key: str) -> None:
        """"epoch" | "step" | "samples" | "wall_time_s": the x axis of every plot."""
        if key not in X_AXES:
            raise ValueError(f"unknown x axis {key!r}; one of {', '.join(X_AXES)}")
        if key == self._x_axis:
            return
        old_key, zoomed = self._x_axis, self.is_zoomed()
        shown = self._x_view_range()
        self._x_axis = key
        self._x_buttons[key].setChecked(True)
        for name, plot in self._plots.items():
            plot.setLabel("bottom", x_axis_label(key) if self._shows_x_label(name) else None)
        self._all_dirty = True
        kept = map_range(self._visible_trials(), old_key, key, *shown) if zoomed else None
        if kept is None:
            self.fit_view()
        else:
            self._redraw()
            self._keep_x_view_range(kept)
        self.x_axis_changed.emit(key)

    def x_axis(self) -> str:
        return self._x_axis

    def fit_view(self) -> None:
        """Show all the data of every plot again (undo zooming and panning), and follow it as it grows."""
        self._redraw()
        self._following = True
        self._fitted_x = None
        self._follow_data()
        for plot in self._plots.values():
            plot.getViewBox().enableAutoRange(axis=pg.ViewBox.YAxis)

    def is_zoomed(self) -> bool:
        """Whether the user zoomed or panned the x axis (the plots then stay there instead of following the
        data)."""
        return not self._following or (self._fitted_x is not None
                                       and self._master_view().viewRange()[0] != self._fitted_x)

    def x_range(self) -> tuple[float, float]:
        """The x range in view, in the x axis' units (also on a log axis)."""
        return self._x_view_range()

    def _follow_data(self) -> None:
        """Fit the x range to the data unless the user has zoomed. The plots' x range is set here rather than
        by pyqtgraph's auto-range, which recomputes it (and re-clips every long curve) several times per switch
        and, after a switch, from curves that pyqtgraph had downsampled for the old range, sometimes to nothing."""
        if self.is_zoomed():
            self._following = False
            return
        fitted = data_range(self._visible_trials() or self._all_trials(), self._x_axis, positive=self._log_x)
        if fitted is None:
            return
        low, high = fitted
        if self._log_x:
            low, high = np.log10(low), np.log10(high)
        pad = (high - low) * X_PADDING if high > low else (abs(low) * FLAT_RANGE_PADDING or 1.0)
        target = [low - pad, high + pad]
        if target != self._fitted_x:
            self._master_view().setXRange(*target, padding=0.0)
            self._fitted_x = self._master_view().viewRange()[0]

    def _master_view(self) -> pg.ViewBox:
        return self._plots[PLOT_NAMES[0]].getViewBox()

    def _x_view_range(self) -> tuple[float, float]:
        low, high = self._master_view().viewRange()[0]
        return (10 ** low, 10 ** high) if self._log_x else (low, high)

    def _keep_x_view_range(self, x_range: tuple[float, float]) -> None:
        """Show this x range (in the x axis' units) and stay there: a zoom the user made, carried over."""
        low, high = x_range
        if self._log_x:
            low, high = np.log10(max(low, 1e-300)), np.log10(max(high, 1e-300))
        self._following = False
        self._master_view().setXRange(low, high, padding=0.0)

    def _all_trials(self) -> list[TrialData]:
        return [trial for run in self._runs for trial in run.trials]

    def _visible_trials(self) -> list[TrialData]:
        return [trial for run in self._runs for trial in run.trials
                if trial.batch_size not in self._hidden_batch_sizes and trial.seed not in self._hidden_seeds]

    def set_smoothing(self, weight: float) -> None:
        """EMA weight for per-step loss and gradient norm, 0 (raw) to 0.99."""
        weight = float(min(max(weight, 0.0), 0.99))
        self._smoothing = weight
        slider_value = round(weight * 100)
        if self._smoothing_slider.value() != slider_value:
            self._smoothing_slider.setValue(slider_value)
        self._smoothing_value.setText(f"{weight:.2f}")
        self._mark_series_dirty()

    def smoothing(self) -> float:
        return self._smoothing

    def set_log_x(self, on: bool) -> None:
        if bool(on) == self._log_x:
            return
        zoomed, shown = self.is_zoomed(), self._x_view_range()
        self._log_x = bool(on)
        self._log_x_action.setChecked(self._log_x)
        for name, plot in self._plots.items():
            plot.setLogMode(x=self._log_x, y=self._log_y[name])
        if zoomed and shown[1] > 0:
            self._keep_x_view_range(shown)
        else:
            self.fit_view()
        self._hide_crosshair()

    def set_log_y(self, plot_name: str, on: bool) -> None:
        self._log_y[plot_name] = bool(on)
        self._log_y_actions[plot_name].setChecked(bool(on))
        self._plots[plot_name].setLogMode(x=self._log_x, y=bool(on))
        self._hide_crosshair()

    def log_y(self, plot_name: str) -> bool:
        return self._log_y[plot_name]

    def set_step_loss_visible(self, visible: bool) -> None:
        self._show_step_loss = bool(visible)
        if self._step_loss_check.isChecked() != visible:
            self._step_loss_check.setChecked(visible)
        self._refresh_visibility()

    def plot_names(self) -> tuple[str, ...]:
        return PLOT_NAMES

    def plot_item(self, name: str) -> pg.PlotItem:
        return self._plots[name]

    def graphics(self) -> pg.GraphicsLayoutWidget:
        """The view holding every plot and the legend (what `export_all` writes)."""
        return self._graphics

    def curves(self, plot_name: str) -> list[pg.PlotDataItem]:
        """The curve items of one plot (one per trial and series), in trial order."""
        return [curve.item for curves in self._curves.values() for curve in curves if curve.plot == plot_name]

    def curve(self, plot_name: str, trial_name: str, metric: str, run_index: int = 0) -> pg.PlotDataItem | None:
        """The curve of one trial's metric in one plot (None until a redraw has seen that trial)."""
        for curve in self._curves.get((run_index, trial_name), []):
            if curve.plot == plot_name and curve.series.metric == metric:
                return curve.item
        return None

    def export_plot(self, name: str, path: Path) -> None:
        """One plot as PNG or SVG (by the file suffix)."""
        self.redraw_now()
        export_widget_image(self._plots[name], Path(path))

    def export_all(self, path: Path) -> None:
        """Every plot and the legend in one PNG or SVG."""
        self.redraw_now()
        export_widget_image(self._graphics, Path(path))

    def readout(self) -> str:
        """The crosshair read-out as plain text ('' when the mouse is not over a curve)."""
        return self._readout

    def show_crosshair(self, plot_name: str, x: float, y: float) -> str:
        """Put the crosshair at view coordinates (x, y) of a plot; returns the read-out of the nearest value."""
        return self._crosshair_at(plot_name, x, y)

    # ---------------------------------------------------------------- building

    def _build_toolbar(self) -> None:
        # Two groups (x axis; log scale, smoothing, step loss) side by side, or one above the other when the
        # window is too narrow for both (see _wrap_toolbar), so the toolbar never sets the plots' minimum width.
        self._toolbar = QWidget()
        self._toolbar.setObjectName("plotsToolbar")
        self._toolbar_layout = QGridLayout(self._toolbar)
        self._toolbar_layout.setContentsMargins(6, 4, 6, 0)
        self._toolbar_layout.setHorizontalSpacing(18)
        self._toolbar_layout.setVerticalSpacing(4)
        self._x_axis_group = QWidget()
        row = QHBoxLayout(self._x_axis_group)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        row.addWidget(QLabel("X axis:"))
        segments = QWidget()
        segments.setObjectName("segmentedControl")
        segment_row = QHBoxLayout(segments)
        segment_row.setContentsMargins(0, 0, 0, 0)
        segment_row.setSpacing(0)
        self._x_group = QButtonGroup(self)
        self._x_group.setExclusive(True)
        self._x_buttons: dict[str, QToolButton] = {}
        tips = {"epoch": "Progress in passes over the training set",
                "step": "Progress in optimizer steps (weight updates): large batches take fewer",
                "samples": "Progress in training examples seen: the fair comparison of data efficiency",
                "wall_time_s": "Progress in seconds of training: the answer to 'which batch size is faster'"}
        for key in X_AXES:
            button = QToolButton()
            button.setText(schema.METRICS[key].label)
            button.setCheckable(True)
            button.setToolTip(tips[key])
            button.setObjectName("segment")
            button.setProperty("segment", key)
            button.setChecked(key == self._x_axis)
            button.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            self._x_group.addButton(button)
            self._x_buttons[key] = button
            segment_row.addWidget(button)
            button.clicked.connect(lambda checked=False, key=key: self.set_x_axis(key))
        row.addWidget(segments)

        self._options_group = QWidget()
        row = QHBoxLayout(self._options_group)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        self._fit_button = QToolButton()
        self._fit_button.setText("Fit")
        self._fit_button.setToolTip("Show all the data again after zooming or panning")
        self._fit_button.clicked.connect(self.fit_view)
        row.addWidget(self._fit_button)
        self._log_button = QToolButton()
        self._log_button.setText("Log scale")
        self._log_button.setToolTip("Logarithmic axes: useful when values span several orders of magnitude")
        self._log_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self._log_button)
        self._log_y_actions: dict[str, QAction] = {}
        for spec in PLOTS:
            action = menu.addAction(f"{spec.title} (y)")
            action.setCheckable(True)
            action.toggled.connect(lambda on, name=spec.name: self.set_log_y(name, on))
            self._log_y_actions[spec.name] = action
        menu.addSeparator()
        self._log_x_action = menu.addAction("X axis (all plots)")
        self._log_x_action.setCheckable(True)
        self._log_x_action.toggled.connect(self.set_log_x)
        self._log_button.setMenu(menu)
        row.addWidget(self._log_button)
        row.addSpacing(12)

        smoothing_label = QLabel("Smoothing:")
        smoothing_label.setToolTip("Exponential moving average of the per-step curves (batch loss, gradient "
                                   "norm). 0 shows every step as measured.")
        row.addWidget(smoothing_label)
        self._smoothing_slider = QSlider(Qt.Orientation.Horizontal)
        self._smoothing_slider.setRange(0, 99)
        self._smoothing_slider.setValue(round(self._smoothing * 100))
        self._smoothing_slider.setMinimumWidth(60)
        self._smoothing_slider.setMaximumWidth(110)
        self._smoothing_slider.setToolTip(smoothing_label.toolTip())
        self._smoothing_slider.valueChanged.connect(lambda value: self.set_smoothing(value / 100))
        row.addWidget(self._smoothing_slider)
        self._smoothing_value = QLabel(f"{self._smoothing:.2f}")
        self._smoothing_value.setMinimumWidth(self._smoothing_value.fontMetrics().horizontalAdvance("0.00") + 4)
        row.addWidget(self._smoothing_value)
        row.addSpacing(12)

        self._step_loss_check = QCheckBox("Per-step loss")
        self._step_loss_check.setToolTip("Show the loss of every batch, faintly, behind the epoch losses")
        self._step_loss_check.setChecked(self._show_step_loss)
        self._step_loss_check.toggled.connect(self.set_step_loss_visible)
        row.addWidget(self._step_loss_check)
        self._toolbar_wrapped: bool | None = None
        margins = self._toolbar_layout.contentsMargins()
        self._toolbar.setMinimumWidth(max(self._x_axis_group.minimumSizeHint().width(),
                                          self._options_group.minimumSizeHint().width())
                                      + margins.left() + margins.right())
        self._wrap_toolbar()

    def _wrap_toolbar(self) -> None:
        """Options beside the x axis buttons when both fit the width, else on a second line."""
        layout = self._toolbar_layout
        margins = layout.contentsMargins()
        needed = (self._x_axis_group.sizeHint().width() + layout.horizontalSpacing()
                  + self._options_group.sizeHint().width() + margins.left() + margins.right())
        wrapped = self.width() < needed
        if wrapped == self._toolbar_wrapped:
            return
        self._toolbar_wrapped = wrapped
        layout.removeWidget(self._x_axis_group)
        layout.removeWidget(self._options_group)
        layout.addWidget(self._x_axis_group, 0, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self._options_group, 1 if wrapped else 0, 0 if wrapped else 1, Qt.AlignmentFlag.AlignLeft)
        layout.setColumnStretch(0, 1 if wrapped else 0)
        layout.setColumnStretch(1, 0 if wrapped else 1)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._wrap_toolbar()

    def _build_plots(self) -> None:
        self._graphics = _TimedGraphicsLayout(self._clock)
        # Repaint only the regions of items that changed: a plot whose curves and axes did not move is not
        # painted again (pyqtgraph's default, set here because the adaptive redraw relies on it).
        self._graphics.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self._graphics.setObjectName("livePlots")
        self._graphics.ci.setContentsMargins(6, 2, 6, 6)
        self._graphics.ci.setSpacing(4)
        self._legend = FlowLegend()
        self._legend.sigEntryClicked.connect(self._legend_clicked)
        self._graphics.addItem(self._legend, row=0, col=0, colspan=GRID_COLUMNS)
        self._plots: dict[str, pg.PlotItem] = {}
        self._crosshairs: dict[str, _Crosshair] = {}
        first: pg.PlotItem | None = None
        for index, spec in enumerate(PLOTS):
            row, col = 1 + index // GRID_COLUMNS, index % GRID_COLUMNS
            plot = self._graphics.addPlot(row=row, col=col, viewBox=PaddedViewBox(),
                                          axisItems={"left": CompactAxis("left"), "bottom": CompactAxis("bottom")})
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            plot.setMenuEnabled(True)
            plot.hideButtons()
            plot.getViewBox().setDefaultPadding(0.02)
            plot.getViewBox().enableAutoRange(axis=pg.ViewBox.XAxis, enable=False)     # see _follow_data
            plot.getViewBox().menu.viewAll.triggered.connect(self.fit_view)
            plot.getAxis("left").setWidth(48)
            plot.setLabel("bottom", x_axis_label(self._x_axis) if self._shows_x_label(spec.name) else None)
            plot.titleLabel.setToolTip(spec.help)
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            self._plots[spec.name] = plot
            self._crosshairs[spec.name] = self._make_crosshair(plot)
        self._specs = {spec.name: spec for spec in PLOTS}
        self._mouse_proxy = pg.SignalProxy(self._graphics.scene().sigMouseMoved, rateLimit=60,
                                           slot=self._mouse_moved)
        self._graphics.scene().sigMouseClicked.connect(self._mouse_clicked)
        self._graphics.viewport().installEventFilter(self)

    def _shows_x_label(self, plot_name: str) -> bool:
        index = PLOT_NAMES.index(plot_name)
        return index >= len(PLOTS) - GRID_COLUMNS

    def _make_crosshair(self, plot: pg.PlotItem) -> _Crosshair:
        vline = pg.InfiniteLine(angle=90, movable=False)
        hline = pg.InfiniteLine(angle=0, movable=False)
        marker = pg.ScatterPlotItem(size=10)
        label = pg.TextItem(anchor=(0, 1))
        crosshair = _Crosshair(vline, hline, marker, label, [vline, hline, marker, label])
        for item in crosshair.items:
            item.setZValue(1000)
            plot.addItem(item, ignoreBounds=True)
            item.hide()
        return crosshair

    # ---------------------------------------------------------------- theming

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self._apply_theme()
        super().changeEvent(event)

    def _apply_theme(self) -> None:
        self._theme = theme = Theme.from_palette(self.palette())
        self._graphics.setBackground(theme.background)
        for name, plot in self._plots.items():
            style_plot_item(plot, theme)
            spec = self._specs[name]
            plot.setTitle(self._title_html(spec), size="10pt")
            crosshair = self._crosshairs[name]
            dashed = make_pen(theme.crosshair, 1, Qt.PenStyle.DashLine)
            crosshair.vline.setPen(dashed)
            crosshair.hline.setPen(dashed)
            crosshair.marker.setPen(pg.mkPen(theme.text, width=2))
            crosshair.marker.setBrush(pg.mkBrush(None))
            crosshair.label.fill = pg.mkBrush(theme.label_fill)
            crosshair.label.border = pg.mkPen(theme.axis)
            crosshair.label.setColor(theme.text)
        self._color_batch_sizes = ()
        self._legend_signature = ()
        if self._runs:
            self._all_dirty = True
            self._redraw()

    def _title_html(self, spec: PlotSpec) -> str:
        unit = display(spec.unit_metric).unit
        color = self._theme.text.name()
        muted = self._theme.muted_text
        muted_css = f"rgba({muted.red()},{muted.green()},{muted.blue()},{muted.alphaF():.2f})"
        unit_html = f" <span style='color:{muted_css}; font-weight:normal'>({unit})</span>" if unit else ""
        return f"<span style='color:{color}; font-weight:600'>{spec.title}</span>{unit_html}"

    # ---------------------------------------------------------------- curves

    def _all_batch_sizes(self) -> tuple[int, ...]:
        sizes: set[int] = set()
        for run in self._runs:
            sizes.update(run.header.batch_sizes)
            sizes.update(trial.batch_size for trial in run.trials)
        return tuple(sorted(sizes))

    def _seeds(self) -> list[int]:
        return sorted({trial.seed for run in self._runs for trial in run.trials})

    def _base_lrs(self) -> list[float]:
        return sorted({trial.base_lr for run in self._runs for trial in run.trials})

    def _sync_curves(self) -> None:
        """Create curves for trials that appeared since the last redraw; recolour when the set of batch sizes
        changed; rebuild the legend when its entries changed."""
        recolor = False
        sizes = self._all_batch_sizes()
        if sizes != self._color_batch_sizes:
            self._color_batch_sizes = sizes
            recolor = True
        for run_index, run in enumerate(self._runs):
            for trial in run.trials:
                key = (run_index, trial.name)
                if key not in self._curves:
                    self._curves[key] = self._create_curves(run_index, trial)
                    self._dirty.add(trial.name)
        if recolor:
            for curves in self._curves.values():
                for curve in curves:
                    self._style_curve(curve)
        signature = self._legend_key()
        if signature != self._legend_signature:
            self._legend_signature = signature
            if not recolor:
                for curves in self._curves.values():
                    for curve in curves:
                        self._style_curve(curve)
            self._rebuild_legend()

    def _create_curves(self, run_index: int, trial: TrialData) -> list[_Curve]:
        curves = []
        for spec in PLOTS:
            for series in spec.series:
                item = pg.PlotDataItem(antialias=series.group == EPOCH)
                if series.group == STEP_GROUP:
                    item.opts["autoDownsampleFactor"] = STEP_SAMPLES_PER_PIXEL
                item.setZValue({MAIN: 10, TRAIN: 5, STEP: 3, FAINT: -10}[series.role])
                self._plots[spec.name].addItem(item)
                if series.group == EPOCH:
                    # A few hundred points at most: never downsampled, since pyqtgraph's automatic downsampling
                    # drops every point of a short curve when the view is much wider than the curve.
                    item.setDownsampling(auto=False)
                    item.setClipToView(False)
                curve = _Curve(item, spec.name, series, run_index, trial)
                self._style_curve(curve)
                curves.append(curve)
        return curves

    def _style_curve(self, curve: _Curve) -> None:
        trial, role = curve.trial, curve.series.role
        color = batch_size_color(trial.batch_size, self._color_batch_sizes, dark=self._theme.dark)
        style = run_line_style(curve.run_index)
        item = curve.item
        if role == MAIN:
            item.setPen(make_pen(color, 2.0, style))
            seeds = self._seeds()
            if not self._markers.get(curve.plot, True):
                item.setSymbol(None)
            else:
                item.setSymbol(seed_symbol(seeds.index(trial.seed)) if trial.seed in seeds else "o")
            item.setSymbolSize(6)
            item.setSymbolBrush(pg.mkBrush(color))
            item.setSymbolPen(pg.mkPen(self._theme.background, width=0.8))
        elif role == TRAIN:
            item.setPen(make_pen(with_alpha(color, 0.55), 1.3, style))
            item.setSymbol(None)
        elif role == STEP:
            item.setPen(make_pen(with_alpha(color, 0.85), 1.0, style))
            item.setSymbol(None)
        else:
            item.setPen(make_pen(with_alpha(color, 0.28), 1.0, style))
            item.setSymbol(None)
        self._apply_visibility(curve)

    def _apply_visibility(self, curve: _Curve) -> None:
        trial = curve.trial
        visible = trial.batch_size not in self._hidden_batch_sizes and trial.seed not in self._hidden_seeds
        if curve.series.role == FAINT and not self._show_step_loss:
            visible = False
        curve.item.setVisible(visible)

    def _refresh_visibility(self) -> None:
        for curves in self._curves.values():
            for curve in curves:
                self._apply_visibility(curve)
        self._rebuild_legend()

    def _update_curve(self, curve: _Curve) -> None:
        series = curve.series
        columns = curve.trial.epoch if series.group == EPOCH else curve.trial.step
        y = columns[series.metric]
        presentation = display(self._specs[curve.plot].unit_metric)
        if presentation.scale != 1.0:
            y = y * presentation.scale
        if series.smooth and self._smoothing > 0:
            y = self._smoothed(curve, y)
        curve.item.setData(self._x_of(curve), y)
        curve.drawn_points = len(y)

    def _x_of(self, curve: _Curve) -> np.ndarray:
        """The curve's x on the current axis. Per-step epochs are computed (a division of every step), so they are
        kept for the trial's other per-step curves and the next switch back, until the trial grows."""
        trial, group = curve.trial, curve.series.group
        if not (self._x_axis == "epoch" and group == STEP_GROUP):
            return x_values(trial, group, self._x_axis)
        key = (curve.run_index, trial.name)
        cached = self._step_epochs.get(key)
        if cached is None or len(cached) != len(trial.step["step"]):
            cached = self._step_epochs[key] = x_values(trial, group, self._x_axis)
        return cached

    def _smoothed(self, curve: _Curve, y: np.ndarray) -> np.ndarray:
        """ema(y), computing only the points added since the last redraw (live arrays only grow)."""
        done = curve.smoothed
        if done is not None and curve.smoothed_weight == self._smoothing and len(done) == len(y):
            return done
        if done is None or curve.smoothed_weight != self._smoothing or not 0 < len(done) <= len(y):
            smoothed = ema(y, self._smoothing)
        else:
            smoothed = np.concatenate([done, ema(y[len(done):], self._smoothing, previous=done[-1])])
        curve.smoothed, curve.smoothed_weight = smoothed, self._smoothing
        return smoothed

    def _update_detail(self) -> None:
        """Antialiasing and markers of epoch curves while a plot has few enough points for them to show."""
        points: dict[str, int] = {}
        marked: dict[str, int] = {}
        for curves in self._curves.values():
            for curve in curves:
                if curve.series.group == EPOCH:
                    count = len(curve.trial.epoch["epoch"])
                    points[curve.plot] = points.get(curve.plot, 0) + count
                    if curve.series.role == MAIN:
                        marked[curve.plot] = marked.get(curve.plot, 0) + count
        markers = {name: count <= MARKERS_MAX_EPOCH_POINTS for name, count in marked.items()}
        restyle = markers != self._markers
        self._markers = markers
        for curves in self._curves.values():
            for curve in curves:
                if curve.series.group != EPOCH:
                    continue
                if restyle and curve.series.role == MAIN:
                    self._style_curve(curve)
                smooth = points.get(curve.plot, 0) <= ANTIALIAS_MAX_EPOCH_POINTS
                if curve.item.opts["antialias"] != smooth:
                    curve.item.opts["antialias"] = smooth
                    curve.item.curve.opts["antialias"] = smooth
                    curve.item.curve.update()

    def _mark_series_dirty(self) -> None:
        self.mark_dirty()

    def _redraw(self) -> None:
        if not self._runs:
            self._timer.stop()
            self._stack.setCurrentWidget(self._placeholder)
            return
        self._sync_curves()
        self._stack.setCurrentWidget(self._graphics if self._curves else self._placeholder)
        started = self._clock()
        dirty, all_dirty = self._dirty, self._all_dirty
        self._dirty, self._all_dirty = set(), False
        self._update_detail()
        for (_, trial_name), curves in self._curves.items():
            if all_dirty or trial_name in dirty:
                for curve in curves:
                    # A live trial's epoch curves grow once an epoch, its step curves every few ms: setData
                    # only what grew, so plots whose data did not change are neither re-autoranged nor repainted.
                    if all_dirty or self._points(curve) != curve.drawn_points:
                        self._update_curve(curve)
        self._follow_data()
        self._adapt_interval(self._clock() - started)
        if not self._dirty and not self._all_dirty:
            self._timer.stop()

    def _adapt_interval(self, set_data_s: float) -> None:
        """Wait at least REDRAW_COST_FACTOR times the last redraw's cost (this setData plus the last paint)."""
        cost_ms = (set_data_s + self._graphics.last_paint_s) * 1000.0
        interval = round(min(max(REDRAW_COST_FACTOR * cost_ms, REDRAW_INTERVAL_MS), MAX_REDRAW_INTERVAL_MS))
        if self._timer.interval() != interval:
            self._timer.setInterval(interval)

    def redraw_interval_ms(self) -> int:
        """The current redraw interval: REDRAW_INTERVAL_MS, longer while redraws are costly."""
        return self._timer.interval()

    @staticmethod
    def _points(curve: _Curve) -> int:
        columns = curve.trial.epoch if curve.series.group == EPOCH else curve.trial.step
        return len(columns[curve.series.metric])

    def redraw_now(self) -> None:
        """Draw pending changes at once instead of on the next timer tick (before an export or a grab)."""
        if self._dirty or self._all_dirty:
            self._redraw()

    # ---------------------------------------------------------------- legend

    def _legend_key(self) -> tuple:
        statuses = tuple((trial.batch_size, trial.base_lr, trial.seed, trial.status)
                         for run in self._runs for trial in run.trials)
        runs = tuple(str(run.path) for run in self._runs)
        return statuses, runs, self._color_batch_sizes, self._theme.dark

    def _rebuild_legend(self) -> None:
        """Batch sizes (colour), seeds (symbol), line roles and runs (line style); click an entry to hide it."""
        theme = self._theme
        statuses: dict[int, set[str]] = {}
        for run in self._runs:
            for trial in run.trials:
                statuses.setdefault(trial.batch_size, set()).add(trial.status)
        if not statuses:
            self._legend.set_groups([], theme.text)
            return
        seeds = self._seeds()
        muted = theme.muted_text.name()
        sizes = [LegendEntry("<b>Batch size</b>")]
        for batch_size in sorted(statuses):
            color = batch_size_color(batch_size, self._color_batch_sizes, dark=theme.dark)
            problems = sorted(statuses[batch_size] - {schema.COMPLETED, schema.RUNNING})
            text = str(batch_size)
            if problems:
                words = ", ".join(problem.replace("_", " ") for problem in problems).replace(" ", "&nbsp;")
                text += f"&nbsp;<span style='color:{muted}'>({words})</span>"
            sizes.append(LegendEntry(text, pen=make_pen(color, 2.5), key=("batch_size", batch_size),
                                     active=batch_size not in self._hidden_batch_sizes))
        groups = [sizes]
        neutral = theme.neutral_line
        if len(seeds) > 1:
            group = [LegendEntry("<b>Seed</b>")]
            for index, seed in enumerate(seeds):
                group.append(LegendEntry(str(seed), symbol=seed_symbol(index), symbol_brush=neutral,
                                         symbol_pen=theme.background, key=("seed", seed),
                                         active=seed not in self._hidden_seeds))
            groups.append(group)
        groups.append([LegendEntry("<b>Lines</b>"),
                       LegendEntry("validation", pen=make_pen(neutral, 2.0), symbol="o", symbol_brush=neutral,
                                   symbol_pen=theme.background),
                       LegendEntry("train", pen=make_pen(with_alpha(neutral, 0.5), 1.3)),
                       LegendEntry("per step", pen=make_pen(with_alpha(neutral, 0.35), 1.0))])
        if len(self._runs) > 1:
            group = [LegendEntry("<b>Runs</b>")]
            for index, run in enumerate(self._runs):
                group.append(LegendEntry(run.path.stem, pen=make_pen(neutral, 2.0, run_line_style(index))))
            groups.append(group)
        self._legend.set_groups(groups, theme.text)

    def legend_entries(self) -> list[LegendEntry]:
        return self._legend.entries()

    def _legend_clicked(self, key: tuple[str, int]) -> None:
        kind, value = key
        hidden = self._hidden_batch_sizes if kind == "batch_size" else self._hidden_seeds
        if kind == "batch_size":
            self.set_batch_size_visible(value, value in hidden)
        else:
            self.set_seed_visible(value, value in hidden)

    def set_batch_size_visible(self, batch_size: int, visible: bool) -> None:
        """Show or hide every curve of a batch size (what clicking its legend entry does)."""
        (self._hidden_batch_sizes.discard if visible else self._hidden_batch_sizes.add)(batch_size)
        self._refresh_visibility()

    def set_seed_visible(self, seed: int, visible: bool) -> None:
        (self._hidden_seeds.discard if visible else self._hidden_seeds.add)(seed)
        self._refresh_visibility()

    # ---------------------------------------------------------------- crosshair

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._graphics.viewport() and event.type() == QEvent.Type.Leave:
            self._hide_crosshair()
        return super().eventFilter(watched, event)

    def _plot_at(self, scene_pos: QPointF) -> str | None:
        for name, plot in self._plots.items():
            if plot.getViewBox().sceneBoundingRect().contains(scene_pos):
                return name
        return None

    def _mouse_moved(self, args) -> None:
        scene_pos = args[0]
        name = self._plot_at(scene_pos)
        if name is None:
            self._hide_crosshair()
            return
        point = self._plots[name].getViewBox().mapSceneToView(scene_pos)
        self._crosshair_at(name, point.x(), point.y())

    def _mouse_clicked(self, event) -> None:
        name = self._plot_at(event.scenePos())
        if name is not None:
            self._current_plot = name

    def _hide_crosshair(self) -> None:
        for crosshair in self._crosshairs.values():
            for item in crosshair.items:
                item.hide()
        self._readout = ""

    def _crosshair_at(self, plot_name: str, x: float, y: float) -> str:
        self.redraw_now()
        plot = self._plots[plot_name]
        view = plot.getViewBox()
        log_x, log_y = self._log_x, self._log_y[plot_name]
        for name, crosshair in self._crosshairs.items():
            crosshair.vline.setPos(x)
            crosshair.vline.show()
            if name != plot_name:
                for item in (crosshair.hline, crosshair.marker, crosshair.label):
                    item.hide()
        crosshair = self._crosshairs[plot_name]
        crosshair.hline.setPos(y)
        crosshair.hline.show()
        mouse = view.mapViewToScene(QPointF(x, y))
        data_x = 10 ** x if log_x else x
        best = None
        for curves in self._curves.values():
            for curve in curves:
                if curve.plot != plot_name or not curve.item.isVisible():
                    continue
                xs, ys = curve.item.getOriginalDataset()
                if xs is None or not len(xs):
                    continue
                index = int(np.searchsorted(xs, data_x))
                for candidate in (index - 1, index):
                    if not 0 <= candidate < len(xs):
                        continue
                    px, py = float(xs[candidate]), float(ys[candidate])
                    if not (np.isfinite(px) and np.isfinite(py)) or (log_x and px <= 0) or (log_y and py <= 0):
                        continue
                    vx, vy = (np.log10(px) if log_x else px), (np.log10(py) if log_y else py)
                    scene_point = view.mapViewToScene(QPointF(vx, vy))
                    distance = (scene_point - mouse).manhattanLength()
                    if best is None or distance < best[0]:
                        best = (distance, curve, px, py, vx, vy)
        if best is None:
            crosshair.marker.hide()
            crosshair.label.hide()
            self._readout = ""
            return ""
        _, curve, px, py, vx, vy = best
        self._readout = self._describe(curve, px, py)
        crosshair.marker.setData([vx], [vy])
        crosshair.marker.show()
        crosshair.label.setHtml(self._describe_html(curve, px, py))
        # Beside the point, kept inside the plot (labels are wider than half a small plot).
        label_size = crosshair.label.textItem.boundingRect()
        point = view.mapViewToScene(QPointF(vx, vy))
        area = view.sceneBoundingRect()
        gap = 10.0
        left = point.x() + gap
        if left + label_size.width() > area.right() - 2:
            left = point.x() - gap - label_size.width()
        left = min(max(left, area.left() + 2), area.right() - 2 - label_size.width())
        top = point.y() - gap - label_size.height()
        if top < area.top() + 2:
            top = point.y() + gap
        crosshair.label.setAnchor((0.0, 0.0))
        corner = view.mapSceneToView(QPointF(left, top))
        crosshair.label.setPos(corner.x(), corner.y())
        crosshair.label.setVisible(True)       # TextItem.setVisible (not show()) updates its transform
        crosshair.label.updateTransform(force=True)
        return self._readout

    def _trial_text(self, curve: _Curve) -> str:
        trial = curve.trial
        text = f"batch size {trial.batch_size}"
        if len(self._base_lrs()) > 1:
            text += f" · lr {trial.base_lr:g}"
        if len(self._seeds()) > 1:
            text += f" · seed {trial.seed}"
        if len(self._runs) > 1:
            text += f" · {self._runs[curve.run_index].path.stem}"
        return text

    def _value_texts(self, curve: _Curve, px: float, py: float) -> tuple[str, str, str]:
        metric = display(curve.series.metric)
        shown: Display = display(self._specs[curve.plot].unit_metric)
        value = shown.format_shown(py)
        if curve.series.smooth and self._smoothing > 0:
            value += " (smoothed)"
        x_display = display(self._x_axis)
        x_text = f"{x_display.label.lower()} {x_display.format_shown(px)}"
        return metric.label, value, x_text

    def _describe(self, curve: _Curve, px: float, py: float) -> str:
        label, value, x_text = self._value_texts(curve, px, py)
        return f"{self._trial_text(curve)}: {label} {value} at {x_text}"

    def _describe_html(self, curve: _Curve, px: float, py: float) -> str:
        label, value, x_text = self._value_texts(curve, px, py)
        color = batch_size_color(curve.trial.batch_size, self._color_batch_sizes, dark=self._theme.dark).name()
        return (f"<div style='color:{self._theme.text.name()}'><span style='color:{color}'>●</span> "
                f"<b>{self._trial_text(curve)}</b><br>{label}: <b>{value}</b><br>at {x_text}</div>")
