"""Live plots of a sweep (or of runs opened from disk): one curve per trial, coloured by batch size.

Every curve is created once and afterwards only receives `setData`; growth is signalled with `mark_dirty`
and drawn by a timer, so however fast events arrive the plots redraw at most 20 times a second and only the
curves whose data grew. The timer adapts to what a redraw costs: its interval is at least three times the last
measured `setData` plus paint time, so the GUI thread spends at most about a third of its time drawing and
stays responsive to the user. Long step curves are clipped to the view and peak-downsampled by pyqtgraph.

The parts live beside it: what each plot shows (plot_specs), the toolbar (plot_toolbar), the legend
(plot_legend), the crosshair (crosshair), the smoothing (smoothing), the x axis arithmetic (x_axis) and the
stand-alone exports (plot_export).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QFileDialog, QFrame, QGraphicsView, QLabel, QMessageBox, QScrollArea, QStackedWidget,
                               QVBoxLayout, QWidget)

from engine import schema
from engine.errors import UserError
from engine.runfile import RunData, TrialData
from gui.colors import batch_size_color
from gui.crosshair import Crosshair, nearest_point
from gui.export import CurrentPlotExport, export_widget_image
from gui.live_noise import WrappedCaption, caption_html, measures_noise
from gui.plot_curves import Curve, CurveLook, CurveSet
from gui.plot_export import export_curve_data, export_figure
from gui.plot_legend import FlowLegend, LegendEntry, LegendState, legend_groups
from gui.plot_specs import FAINT, LIVE_PLOTS, NOISE_PLOT, PLOT_NAMES, PLOTS, SPECS, PlotSpec
from gui.plot_toolbar import PlotToolbar
from gui.plotkit import FLAT_RANGE_PADDING, CompactAxis, Display, ManualXViewBox, PlotColors, display, style_plot_item
from gui.telemetry_strip import TelemetryStrip
from gui.x_axis import X_AXES, data_range, map_range

# X_AXES is imported from here by the main window's View menu.
__all__ = ["LivePlots", "PLOTS", "X_AXES", "REDRAW_INTERVAL_MS", "MAX_REDRAW_INTERVAL_MS"]

REDRAW_INTERVAL_MS = 50           # the shortest interval: at most 20 redraws a second
MAX_REDRAW_INTERVAL_MS = 250      # the longest: live curves still move at least 4 times a second
# The redraw interval is at least this many times the last redraw's cost (setData plus paint), so drawing
# takes at most a third of the GUI thread however slow painting gets (big window, many curves).
REDRAW_COST_FACTOR = 3.0
X_PADDING = 0.02                  # of the data's x extent, left and right of it (pyqtgraph's default padding)
# While a trial on screen is running and grows past the right edge, the view extends this much beyond the data
# (a share of its span), so the x range, and with it every axis, grid and clipped curve, changes once per 15% of
# growth instead of at every redraw (a changed x range cost ~14 ms of a 20 ms redraw of one growing trial).
# Once nothing runs, the view fits the data again.
GROWTH_HEADROOM = 0.15
# The grid has as many columns (3, 2 or 1) as fit plots this wide, and scrolls rather than squeeze a plot
# below this height: at 1024×640 six plots in one screen were 45 px tall, their titles cut.
MIN_PLOT_WIDTH = 320
MIN_PLOT_HEIGHT = 160


def x_axis_label(key: str) -> str:
    return display(key).title()


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
    """Loss, accuracy, gradient norm, learning rate, throughput and peak memory of every trial shown, and beside
    the loss the gradient noise scale B_simple where a run measures it (on the x axis chosen, like the others).

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
        self._log_y = {spec.name: spec is NOISE_PLOT for spec in LIVE_PLOTS}
        self._noise_shown = False                                  # a run shown measures the noise scale
        self._hidden_batch_sizes: set[int] = set()                 # switched off in the legend
        self._hidden_seeds: set[int] = set()
        self._hidden_runs: set[int] = set()                        # run indexes
        self._color_batch_sizes: tuple[int, ...] = ()
        self._legend_signature: tuple = ()
        self._dirty: set[str] = set()
        self._all_dirty = False
        self._current_plot: str | None = None
        self._readout = ""
        self._colors = PlotColors.from_palette(self.palette())
        self._following = True                       # the x range follows the data (False once the user zooms)
        self._fitted_x: list[float] | None = None    # the x range last set to fit the data, in view coordinates
        self._fitted_low: float | None = None        # the data's lowest x then
        self._columns = 0

        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self._redraw)

        self._toolbar = PlotToolbar()
        self._toolbar.show_smoothing(self._smoothing)
        self._toolbar.show_step_loss(self._show_step_loss)
        self._toolbar.show_log_y(NOISE_PLOT.name, True)
        self._toolbar.x_axis_chosen.connect(self.set_x_axis)
        self._toolbar.fit_requested.connect(self.fit_view)
        self._toolbar.log_x_toggled.connect(self.set_log_x)
        self._toolbar.log_y_toggled.connect(self.set_log_y)
        self._toolbar.smoothing_changed.connect(self.set_smoothing)
        self._toolbar.step_loss_toggled.connect(self.set_step_loss_visible)
        self._toolbar.export_data_requested.connect(self.export_data_dialog)
        self._build_plots()
        self._scroll = QScrollArea()
        self._scroll.setObjectName("livePlotsScroll")
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._scroll.setWidget(self._graphics)
        self._scroll.viewport().installEventFilter(self)
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
        self._stack.addWidget(self._scroll)
        layout.addWidget(self._stack, 1)
        self._telemetry = TelemetryStrip()
        layout.addWidget(self._telemetry)
        self._arrange(self._columns_for(self.width()))
        self._apply_theme()

    # ---------------------------------------------------------------- what is shown

    def set_runs(self, runs: list[RunData]) -> None:
        """Show these runs (overlaid, told apart by line style). Curves are rebuilt; data is drawn at once."""
        self._curves.clear()
        if [run.path for run in runs] != [run.path for run in self._runs]:
            self._hidden_runs.clear()
        self._runs = list(runs)
        noise_shown = any(measures_noise(run) for run in self._runs)
        if noise_shown != self._noise_shown:
            self._noise_shown = noise_shown
            self._arrange(self._columns, again=True)
        self._legend_signature = ()
        self._color_batch_sizes = ()
        self._all_dirty = True
        self._telemetry.set_runs(self._runs)
        self.fit_view()

    def runs(self) -> list[RunData]:
        return list(self._runs)

    def mark_dirty(self, trial_names: Iterable[str] | None = None) -> None:
        """Data grew (for these trials, or all): redrawn by the next timer tick, at most 20 times a second."""
        self._telemetry.mark_dirty()
        if trial_names is None:
            self._all_dirty = True
        else:
            names = set(trial_names)
            if not names:
                return
            self._dirty.update(names)
        if not self._timer.isActive():
            self._timer.start()

    def redraw_now(self) -> None:
        """Draw pending changes at once instead of on the next timer tick (before an export or a grab)."""
        if self._dirty or self._all_dirty:
            self._redraw()

    def redraw_interval_ms(self) -> int:
        """The current redraw interval: REDRAW_INTERVAL_MS, longer while redraws are costly."""
        return self._timer.interval()

    def plot_names(self) -> tuple[str, ...]:
        """The plots shown, in their order (the noise scale's only for runs that measure it)."""
        return tuple(spec.name for spec in LIVE_PLOTS if spec is not NOISE_PLOT or self._noise_shown)

    def noise_caption(self) -> str:
        """The text under the noise-scale plot: how to read it, and why batch sizes are missing from it."""
        return self._noise_caption.plain_text()

    def plot_item(self, name: str) -> pg.PlotItem:
        return self._plots[name]

    def graphics(self) -> pg.GraphicsLayoutWidget:
        """The view holding every plot and the legend (what `export_all` writes)."""
        return self._graphics

    def toolbar(self) -> PlotToolbar:
        return self._toolbar

    def telemetry_strip(self) -> TelemetryStrip:
        """The row under the plots with the machine's figures for the trial on screen."""
        return self._telemetry

    def is_empty(self) -> bool:
        """Whether the placeholder ('Nothing to plot yet') is shown instead of the plots."""
        return self._stack.currentWidget() is self._placeholder

    def columns(self) -> int:
        """How many plots side by side (3, 2 or 1, as the width allows)."""
        return self._columns

    def curves(self, plot_name: str) -> list[pg.PlotDataItem]:
        """The curve items of one plot (one per trial and series), in trial order."""
        return [curve.item for curve in self._curves.of_plot(plot_name)]

    def curve(self, plot_name: str, trial_name: str, metric: str, run_index: int = 0) -> pg.PlotDataItem | None:
        """The curve of one trial's metric in one plot (None until a redraw has seen that trial)."""
        curve = self._curves.find(plot_name, trial_name, metric, run_index)
        return None if curve is None else curve.item

    # ---------------------------------------------------------------- the x axis

    def set_x_axis(self, key: str) -> None:
        """"epoch" | "step" | "samples" | "wall_time_s": the x axis of every plot. The view is fitted to the data
        again, or, where the user had zoomed, shows the same stretch of training in the new units."""
        if key not in X_AXES:
            raise ValueError(f"unknown x axis {key!r}; one of {', '.join(X_AXES)}")
        if key == self._x_axis:
            return
        old_key, zoomed = self._x_axis, self.is_zoomed()
        shown = self._x_view_range()
        self._x_axis = key
        self._toolbar.show_x_axis(key)
        for plot in self._plots.values():
            plot.setLabel("bottom", x_axis_label(key))
        self._all_dirty = True
        kept = map_range(self._visible_trials(), old_key, key, *shown) if zoomed else None
        # The view takes its new range before the curves get their new x, and the per-step curves let go of their
        # old points first: pyqtgraph clips and downsamples a long curve for the range in view whenever either
        # changes, so any other order does that work twice (a third of a switch with 20 × 100,000 steps).
        self._curves.drop_step_data()
        if kept is None:
            self.fit_view()
        else:
            self._keep_x_view_range(kept)
            self._redraw()
        self.x_axis_changed.emit(key)

    def x_axis(self) -> str:
        return self._x_axis

    def x_axis_action(self, key: str) -> QAction:
        """The checkable action choosing an x axis, with its shortcut (Ctrl+1 to Ctrl+4), for a menu."""
        return self._toolbar.x_axis_action(key)

    def fit_view(self) -> None:
        """Show all the data of every plot again (undo zooming and panning), and follow it as it grows."""
        self._following = True
        self._fitted_x = None
        self._follow_data()
        self._redraw()
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
            low, high = math.log10(low), math.log10(high)
        pad = (high - low) * X_PADDING if high > low else (abs(low) * FLAT_RANGE_PADDING or 1.0)
        target = [low - pad, high + pad]
        shown = self._fitted_x
        growing = any(trial.status == schema.RUNNING for trial in self._all_trials())
        if growing and shown is not None and low == self._fitted_low and high > low:   # the same data, grown
            target[0] = shown[0]
            span = target[1] - target[0]
            if target[1] <= shown[1] and span * (1 + GROWTH_HEADROOM) >= shown[1] - shown[0]:
                return                                                        # it still fills most of the view
            if target[1] > shown[1]:
                target[1] = target[0] + span * (1 + GROWTH_HEADROOM)
        self._fitted_low = low
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
            low, high = math.log10(max(low, 1e-300)), math.log10(max(high, 1e-300))
        self._following = False
        self._master_view().setXRange(low, high, padding=0.0)

    # ---------------------------------------------------------------- options

    def set_smoothing(self, weight: float) -> None:
        """EMA weight for per-step loss and gradient norm, 0 (raw) to 0.99."""
        self._smoothing = float(min(max(weight, 0.0), 0.99))
        self._toolbar.show_smoothing(self._smoothing)
        self.mark_dirty()

    def smoothing(self) -> float:
        return self._smoothing

    def set_log_x(self, on: bool) -> None:
        if bool(on) == self._log_x:
            return
        zoomed, shown = self.is_zoomed(), self._x_view_range()
        self._log_x = bool(on)
        self._toolbar.show_log_x(self._log_x)
        for name, plot in self._plots.items():
            plot.setLogMode(x=self._log_x, y=self._log_y[name])
        if zoomed and shown[1] > 0:
            self._keep_x_view_range(shown)
        else:
            self.fit_view()
        self._crosshair.hide()

    def set_log_y(self, plot_name: str, on: bool) -> None:
        self._log_y[plot_name] = bool(on)
        self._toolbar.show_log_y(plot_name, bool(on))
        self._plots[plot_name].setLogMode(x=self._log_x, y=bool(on))
        self._crosshair.hide()

    def log_y(self, plot_name: str) -> bool:
        return self._log_y[plot_name]

    def set_step_loss_visible(self, visible: bool) -> None:
        self._show_step_loss = bool(visible)
        self._toolbar.show_step_loss(self._show_step_loss)
        self._refresh_visibility()

    # ---------------------------------------------------------------- exports

    def export_plot(self, name: str, path: Path) -> None:
        """One plot as a PNG or SVG (by the file suffix) that stands alone: title, both axes named with their
        units, and a legend of the batch sizes, lines and runs in it."""
        self.redraw_now()
        spec = SPECS[name]
        shown = [run.path.stem for index, run in enumerate(self._runs) if index not in self._hidden_runs]
        title = spec.title + (f" · {shown[0]}" if len(shown) == 1 else "")
        export_figure(self._plots[name], Path(path), title=title, x_label=x_axis_label(self._x_axis),
                      y_label=self._y_label(spec), legend=self._legend_groups(for_plot=name), colors=self._colors)

    def export_all(self, path: Path) -> None:
        """Every plot and the legend in one PNG or SVG."""
        self.redraw_now()
        export_widget_image(self._graphics, Path(path))

    def export_data(self, group: str, path: Path) -> None:
        """The values behind the visible curves, per epoch (schema.EPOCH_GROUP) or per step, as CSV."""
        shown = [(run, [trial for trial in run.trials if self._trial_visible(index, trial)])
                 for index, run in enumerate(self._runs) if index not in self._hidden_runs]
        export_curve_data(shown, group, Path(path))

    def export_data_dialog(self, group: str) -> None:
        kind = "per-epoch" if group == schema.EPOCH_GROUP else "per-step"
        start = self._runs[0].path.with_name(f"{self._runs[0].path.stem}-{kind}.csv") if self._runs else Path()
        path, _ = QFileDialog.getSaveFileName(self, f"Export {kind} values as CSV", str(start), "CSV (*.csv)")
        if not path:
            return
        if not path.lower().endswith(".csv"):
            path += ".csv"
        try:
            self.export_data(group, Path(path))
        except UserError as error:
            QMessageBox.warning(self, "Cannot export", str(error))

    def _y_label(self, spec: PlotSpec) -> str:
        unit = display(spec.unit_metric).unit
        return f"{spec.title} ({unit})" if unit else spec.title

    # ---------------------------------------------------------------- building

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
        self._plots: dict[str, pg.PlotItem] = {}
        first: pg.PlotItem | None = None
        for spec in LIVE_PLOTS:
            plot = pg.PlotItem(viewBox=ManualXViewBox(),      # the x range is set by _follow_data
                               axisItems={"left": CompactAxis("left"), "bottom": CompactAxis("bottom")})
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            plot.setMenuEnabled(True)
            plot.hideButtons()
            view = plot.getViewBox()
            view.setDefaultPadding(0.02)
            view.menu.viewAll.triggered.connect(self.fit_view)
            plot.getAxis("left").setWidth(48)
            plot.setLabel("bottom", x_axis_label(self._x_axis))
            plot.titleLabel.setToolTip(spec.help)
            if first is None:
                first = plot
            else:
                plot.setXLink(first)
            self._plots[spec.name] = plot
        noise = self._plots[NOISE_PLOT.name]
        noise.setLogMode(x=False, y=True)
        self._noise_caption = WrappedCaption()
        noise.layout.addItem(self._noise_caption, 4, 0, 1, 3)     # under the x axis, the plot's whole width
        self._crosshair = Crosshair(self._plots)
        self._curves = CurveSet(self._plots)
        self._mouse_proxy = pg.SignalProxy(self._graphics.scene().sigMouseMoved, rateLimit=60,
                                           slot=self._mouse_moved)
        self._graphics.scene().sigMouseClicked.connect(self._mouse_clicked)
        self._graphics.viewport().installEventFilter(self)

    @staticmethod
    def _columns_for(width: int) -> int:
        return max(1, min(3, width // MIN_PLOT_WIDTH))

    def _arrange(self, columns: int, again: bool = False) -> None:
        """The legend across the top, then the plots shown in rows of `columns`, as tall as the room allows but
        at least MIN_PLOT_HEIGHT (the area scrolls when they do not all fit). `again`: the plots shown changed."""
        layout = self._graphics.ci
        names = self.plot_names()
        if columns != self._columns or again:
            self._columns = columns
            for item in [self._legend, *self._plots.values()]:
                if item in layout.items:
                    layout.removeItem(item)
            layout.addItem(self._legend, row=0, col=0, colspan=columns)
            for index, name in enumerate(names):
                layout.addItem(self._plots[name], row=1 + index // columns, col=index % columns)
            for column in range(3):
                layout.layout.setColumnStretchFactor(column, 1 if column < columns else 0)
            self._plots[NOISE_PLOT.name].setVisible(self._noise_shown)
        rows = -(-len(names) // columns)
        _, top, _, bottom = layout.layout.getContentsMargins()
        self._graphics.setMinimumHeight(int(rows * MIN_PLOT_HEIGHT + self._legend.preferredHeight() + top + bottom
                                            + rows * layout.layout.verticalSpacing()))

    # ---------------------------------------------------------------- theming

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self._apply_theme()
        super().changeEvent(event)

    def _apply_theme(self) -> None:
        self._colors = colors = PlotColors.from_palette(self.palette())
        self._graphics.setBackground(colors.background)
        for name, plot in self._plots.items():
            style_plot_item(plot, colors)
            plot.setTitle(self._title_html(SPECS[name]), size="10pt")
        self._show_noise_caption()
        self._crosshair.set_colors(colors)
        self._color_batch_sizes = ()
        self._legend_signature = ()
        if self._runs:
            self._all_dirty = True
            self._redraw()

    def _title_html(self, spec: PlotSpec) -> str:
        unit = display(spec.unit_metric).unit
        color = self._colors.text.name()
        muted = self._colors.muted_text
        muted_css = f"rgba({muted.red()},{muted.green()},{muted.blue()},{muted.alphaF():.2f})"
        unit_html = f" <span style='color:{muted_css}; font-weight:normal'>({unit})</span>" if unit else ""
        return f"<span style='color:{color}; font-weight:600'>{spec.title}</span>{unit_html}"

    def _show_noise_caption(self) -> None:
        if self._noise_shown:
            self._noise_caption.set_html(caption_html(self._runs), self._colors.muted_text)

    # ---------------------------------------------------------------- curves

    def _all_trials(self) -> list[TrialData]:
        return [trial for run in self._runs for trial in run.trials]

    def _trial_visible(self, run_index: int, trial: TrialData) -> bool:
        return (run_index not in self._hidden_runs and trial.batch_size not in self._hidden_batch_sizes
                and trial.seed not in self._hidden_seeds)

    def _visible_trials(self) -> list[TrialData]:
        return [trial for index, run in enumerate(self._runs) for trial in run.trials
                if self._trial_visible(index, trial)]

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

    def _look(self) -> CurveLook:
        return CurveLook(self._colors, self._color_batch_sizes, tuple(self._seeds()))

    def _sync_curves(self) -> None:
        """Create curves for trials that appeared since the last redraw; restyle when the set of batch sizes
        changed; rebuild the legend when its entries changed."""
        recolor = False
        sizes = self._all_batch_sizes()
        if sizes != self._color_batch_sizes:
            self._color_batch_sizes = sizes
            recolor = True
        look = self._look()
        for run_index, run in enumerate(self._runs):
            for trial in run.trials:
                if not self._curves.has(run_index, trial.name):
                    for curve in self._curves.add_trial(run_index, trial, look):
                        self._apply_visibility(curve)
                    self._dirty.add(trial.name)
        signature = self._legend_key()
        if recolor or signature != self._legend_signature:
            for curve in self._curves:
                self._curves.style(curve, look)
        if signature != self._legend_signature:
            self._legend_signature = signature
            self._rebuild_legend()
            self._show_noise_caption()

    def _apply_visibility(self, curve: Curve) -> None:
        visible = self._trial_visible(curve.run_index, curve.trial)
        if curve.series.role == FAINT and not self._show_step_loss:
            visible = False
        curve.item.setVisible(visible)

    def _refresh_visibility(self) -> None:
        for curve in self._curves:
            self._apply_visibility(curve)
        self._rebuild_legend()
        self._follow_data()

    def _redraw(self) -> None:
        if not self._runs:
            self._timer.stop()
            self._stack.setCurrentWidget(self._placeholder)
            return
        self._sync_curves()
        self._stack.setCurrentWidget(self._scroll if self._curves else self._placeholder)
        started = self._clock()
        dirty, all_dirty = self._dirty, self._all_dirty
        self._dirty, self._all_dirty = set(), False
        self._curves.update_detail(self._look())
        for (_, trial_name), curves in self._curves.by_trial():
            if all_dirty or trial_name in dirty:
                for curve in curves:
                    # A live trial's epoch curves grow once an epoch, its step curves every few ms: setData
                    # only what grew, so plots whose data did not change are neither re-autoranged nor repainted.
                    if all_dirty or curve.points() != curve.drawn_points:
                        self._curves.set_data(curve, self._x_axis, self._smoothing)
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

    # ---------------------------------------------------------------- legend

    def _legend_key(self) -> tuple:
        statuses = tuple((trial.batch_size, trial.base_lr, trial.seed, trial.status)
                         for run in self._runs for trial in run.trials)
        runs = tuple(str(run.path) for run in self._runs)
        return statuses, runs, self._color_batch_sizes, self._colors.dark

    def _rebuild_legend(self) -> None:
        self._legend.set_groups(self._legend_groups(), self._colors.text)
        self._arrange(self._columns)

    def _legend_groups(self, for_plot: str | None = None) -> list[list[LegendEntry]]:
        return legend_groups(LegendState(
            runs=tuple(self._runs), colors=self._colors, color_batch_sizes=self._color_batch_sizes,
            hidden_batch_sizes=frozenset(self._hidden_batch_sizes), hidden_seeds=frozenset(self._hidden_seeds),
            hidden_runs=frozenset(self._hidden_runs), markers=self._curves.markers(), smoothing=self._smoothing,
            show_step_loss=self._show_step_loss), for_plot)

    def legend_entries(self) -> list[LegendEntry]:
        return self._legend.entries()

    def click_legend_entry(self, key: tuple[str, int]) -> None:
        """What clicking the legend entry with this key does: show or hide its curves."""
        self._legend_clicked(key)

    def _legend_clicked(self, key: tuple[str, int]) -> None:
        kind, value = key
        if kind == "batch_size":
            self.set_batch_size_visible(value, value in self._hidden_batch_sizes)
        elif kind == "seed":
            self.set_seed_visible(value, value in self._hidden_seeds)
        else:
            self.set_run_visible(value, value in self._hidden_runs)

    def set_batch_size_visible(self, batch_size: int, visible: bool) -> None:
        """Show or hide every curve of a batch size (what clicking its legend entry does)."""
        (self._hidden_batch_sizes.discard if visible else self._hidden_batch_sizes.add)(batch_size)
        self._refresh_visibility()

    def set_seed_visible(self, seed: int, visible: bool) -> None:
        (self._hidden_seeds.discard if visible else self._hidden_seeds.add)(seed)
        self._refresh_visibility()

    def set_run_visible(self, run_index: int, visible: bool) -> None:
        """Show or hide every curve of one of the overlaid runs (its entry in the legend's Runs group)."""
        (self._hidden_runs.discard if visible else self._hidden_runs.add)(run_index)
        self._refresh_visibility()

    # ---------------------------------------------------------------- crosshair

    def readout(self) -> str:
        """The crosshair read-out as plain text ('' when the mouse is not over a curve)."""
        return self._readout

    def show_crosshair(self, plot_name: str, x: float, y: float) -> str:
        """Put the crosshair at view coordinates (x, y) of a plot; returns the read-out of the nearest value."""
        self.redraw_now()
        self._crosshair.move_to(plot_name, x, y)
        candidates = [(curve.item, curve) for curve in self._curves.of_plot(plot_name) if curve.item.isVisible()]
        point = nearest_point(self._plots[plot_name].getViewBox(), candidates, x, y, self._log_x,
                              self._log_y[plot_name])
        if point is None:
            self._crosshair.unmark(plot_name)
            self._readout = ""
            return ""
        curve = point.payload
        self._readout = self._describe(curve, point.x, point.y)
        self._crosshair.mark(plot_name, point.view_x, point.view_y, self._describe_html(curve, point.x, point.y))
        return self._readout

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._graphics.viewport() and event.type() == QEvent.Type.Leave:
            self._hide_crosshair()
        elif watched is self._scroll.viewport() and event.type() == QEvent.Type.Resize:
            self._arrange(self._columns_for(self._scroll.viewport().width()))
        return super().eventFilter(watched, event)

    def _plot_at(self, scene_pos: QPointF) -> str | None:
        for name in self.plot_names():
            if self._plots[name].getViewBox().sceneBoundingRect().contains(scene_pos):
                return name
        return None

    def _mouse_moved(self, args) -> None:
        scene_pos = args[0]
        name = self._plot_at(scene_pos)
        if name is None:
            self._hide_crosshair()
            return
        point = self._plots[name].getViewBox().mapSceneToView(scene_pos)
        self.show_crosshair(name, point.x(), point.y())

    def _mouse_clicked(self, event) -> None:
        name = self._plot_at(event.scenePos())
        if name is not None:
            self._current_plot = name

    def _hide_crosshair(self) -> None:
        self._crosshair.hide()
        self._readout = ""

    def _trial_text(self, curve: Curve) -> str:
        trial = curve.trial
        text = f"batch size {trial.batch_size}"
        if len(self._base_lrs()) > 1:
            text += f" · lr {trial.base_lr:g}"
        if len(self._seeds()) > 1:
            text += f" · seed {trial.seed}"
        if len(self._runs) > 1:
            text += f" · {self._runs[curve.run_index].path.stem}"
        return text

    def _value_texts(self, curve: Curve, px: float, py: float) -> tuple[str, str, str]:
        metric = display(curve.series.metric)
        shown: Display = display(SPECS[curve.plot].unit_metric)
        value = shown.format_shown(py)
        if curve.series.smooth and self._smoothing > 0:
            value += " (smoothed)"
        x_display = display(self._x_axis)
        x_text = f"{x_display.label.lower()} {x_display.format_shown(px)}"
        return metric.label, value, x_text

    def _describe(self, curve: Curve, px: float, py: float) -> str:
        label, value, x_text = self._value_texts(curve, px, py)
        return f"{self._trial_text(curve)}: {label} {value} at {x_text}"

    def _describe_html(self, curve: Curve, px: float, py: float) -> str:
        label, value, x_text = self._value_texts(curve, px, py)
        color = batch_size_color(curve.trial.batch_size, self._color_batch_sizes, dark=self._colors.dark).name()
        return (f"<div style='color:{self._colors.text.name()}'><span style='color:{color}'>●</span> "
                f"<b>{self._trial_text(curve)}</b><br>{label}: <b>{value}</b><br>at {x_text}</div>")
