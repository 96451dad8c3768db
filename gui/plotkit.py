"""Small pyqtgraph helpers shared by the live plots and the summary view: how a metric is shown (scale and
unit on screen), axes that print big numbers compactly, a view box that pads flat data, pens and line styles, and
plot colours from the Qt palette (gui/theme.py holds the palettes themselves; the legend is gui/plot_legend.py).

Metric names, labels and stored units come from engine.schema; this module only decides presentation
(accuracy as %, memory in MiB), so both views present a metric the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFontMetrics, QPalette, QPen
from PySide6.QtWidgets import QGraphicsItem, QGridLayout, QLabel

from engine import schema


@dataclass(frozen=True)
class Display:
    """How a stored metric is shown: multiply by `scale`, write `unit` after it, format with `fmt`."""
    label: str
    unit: str
    scale: float = 1.0
    fmt: str = "auto"

    def title(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def format(self, stored_value: float) -> str:
        """A stored value as a person reads it (scaled, with its unit); a dash for a missing value."""
        if stored_value is None or not math.isfinite(stored_value):
            return "–"
        return self.format_shown(stored_value * self.scale)

    def format_shown(self, shown_value: float, with_unit: bool = True) -> str:
        """An already scaled value, formatted; "auto" keeps 4 significant digits below 1000."""
        if shown_value is None or not math.isfinite(shown_value):
            return "–"
        if self.fmt == "auto":
            text = f"{shown_value:,.0f}" if abs(shown_value) >= 1000 else f"{shown_value:.4g}"
        else:
            text = self.fmt.format(shown_value)
        return f"{text} {self.unit}" if (self.unit and with_unit) else text

    def format_mean_std(self, mean: float, std: float | None) -> str:
        """"mean ± std" of already scaled values, both to the same decimals (no unit); std None or 0: mean only."""
        if std is None or not math.isfinite(std) or std == 0:
            return self.format_shown(mean, with_unit=False)
        if self.fmt != "auto":
            return f"{self.fmt.format(mean)} ± {self.fmt.format(std)}"
        if abs(mean) >= 1000:
            return f"{mean:,.0f} ± {std:,.0f}"
        decimals = max(0, 3 - math.floor(math.log10(abs(mean)))) if mean else 3
        return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


_PRESENTATION: dict[str, tuple[str, float, str]] = {
    "train_accuracy": ("%", 100.0, "{:.2f}"),
    "val_accuracy": ("%", 100.0, "{:.2f}"),
    "peak_memory_bytes": ("MiB", 1.0 / 2**20, "{:,.1f}"),
    "samples_per_s": ("samples/s", 1.0, "{:,.0f}"),
    "wall_time_s": ("s", 1.0, "auto"),
    "epoch": ("", 1.0, "{:.2f}"),
    "step": ("", 1.0, "{:,.0f}"),
    "samples": ("", 1.0, "{:,.0f}"),
}


# The metrics a plot can show: every epoch and step metric, and the noise scale's own (the live B_simple plot).
_SHOWN_METRICS = {**{m.name: m for m in schema.NOISE_METRICS}, **schema.METRICS}


def display(metric_name: str) -> Display:
    """Presentation of a metric from engine.schema (label from the schema, unit and scale for people)."""
    metric = _SHOWN_METRICS[metric_name]
    if metric_name in _PRESENTATION:
        unit, scale, fmt = _PRESENTATION[metric_name]
        return Display(metric.label, unit, scale, fmt)
    return Display(metric.label, "" if metric.units == "1" else metric.units)


# On a log axis, 2× and 5× ticks get labels when a decade is at least this many pixels long.
LOG_MINOR_LABEL_MIN_PIXELS_PER_DECADE = 90


def compact_ticks(values: list[float]) -> list[str]:
    """Tick texts for big numbers in one unit chosen by the largest: 0, 500k, 1M, 1.5M (not 500000)."""
    largest = max((abs(value) for value in values), default=0.0)
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if largest >= threshold:
            divisor = 1e3 if suffix == "k" else threshold
            return [f"{value / divisor:.4g}{suffix}" if value else "0" for value in values]
    return [f"{value:.6g}" for value in values]


MIN_TICK_LABEL_GAP_PX = 8     # between two tick labels of a horizontal axis


class CompactAxis(pg.AxisItem):
    """An axis without SI-prefix rescaling whose ticks print big numbers as 20k / 1.5M."""

    def __init__(self, orientation: str, **kwargs):
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)
        # Painted from a pixmap until its range, ticks or style change: replaying an axis' tick labels and grid
        # was 60% of a live redraw's CPU time, and a growing curve's region overlaps every axis and grid.
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    def tickSpacing(self, minVal, maxVal, size):
        """pyqtgraph labels a finer level of ticks whenever the coarser level left room on the axis, however
        close the finer labels then sit ("10111213" along a narrow epoch axis): on a horizontal axis, a level
        is labelled only where its ticks are further apart than its widest label plus a gap."""
        levels = super().tickSpacing(minVal, maxVal, size)
        if self.orientation in ("top", "bottom") and levels and maxVal > minVal and size > 0:
            metrics = QFontMetrics(self.style.get("tickFont") or self.font())
            labelled = 0
            for level, (spacing, _) in enumerate(levels):
                texts = self.tickStrings([minVal, maxVal, spacing], 1.0, spacing)
                widest = max((metrics.horizontalAdvance(text) for text in texts), default=0)
                if spacing * size / (maxVal - minVal) >= widest + MIN_TICK_LABEL_GAP_PX:
                    labelled = level
            self.style["maxTextLevel"] = labelled
        return levels

    def tickStrings(self, values, scale, spacing):
        if self.logMode:
            # Each decade in its own unit (0.01, 1000, 10k): one unit for the whole axis wrote 0.01 as "0.01k".
            return [compact_ticks([10 ** value])[0] if abs(value) < 300 and self._labels_log_tick(value) else ""
                    for value in values]
        if values and max(abs(value * scale) for value in values) >= 1e4:
            return compact_ticks([value * scale for value in values])
        return super().tickStrings(values, scale, spacing)


    def boundingRect(self):
        # pyqtgraph ignores a pixel tolerance in hideOverlappingLabels once the grid is on (the axis then bounds
        # itself by the view); honour it, so a label at the edge can reach into the margin kept for it.
        rect = super().boundingRect()
        tolerance = self.style["hideOverlappingLabels"]
        if isinstance(tolerance, bool) or not isinstance(tolerance, int):
            return rect
        if self.orientation in ("top", "bottom"):
            return rect.adjusted(-tolerance, 0, tolerance, 0)
        return rect.adjusted(0, -tolerance, 0, tolerance)

    def _labels_log_tick(self, exponent: float) -> bool:
        """On a log axis every 1..9 × 10^n gets a tick and grid line, but only decades are labelled (labels at 2,
        3, 4 ... 9 × 10^n overlap); 2× and 5× are labelled too where a decade is tall enough for them to fit, or
        where fewer than two decades are in view."""
        mantissa = round(10 ** (exponent - math.floor(exponent + 1e-9)), 6)
        if mantissa == 1.0:
            return True
        if mantissa not in (2.0, 5.0):
            return False
        low, high = sorted(self.range)
        length = self.geometry().height() if self.orientation in ("left", "right") else self.geometry().width()
        decades = max(high - low, 1e-9)
        return length / decades >= LOG_MINOR_LABEL_MIN_PIXELS_PER_DECADE or math.floor(high) - math.ceil(low) < 1


# A flat series (a constant learning rate, a single epoch) is shown in a range this fraction of its value on
# either side, instead of pyqtgraph's fixed ±0.5 around it (which made 0.05 look like it spanned -0.4 to 0.4).
FLAT_RANGE_PADDING = 0.1


class PaddedViewBox(pg.ViewBox):
    """A ViewBox whose automatic range around data of zero extent is a small band around its value."""

    def childrenBounds(self, frac=None, orthoRange=(None, None), items=None):
        bounds = super().childrenBounds(frac=frac, orthoRange=orthoRange, items=items)
        for axis, extent in enumerate(bounds):
            if extent is not None and extent[0] == extent[1]:
                value = extent[0]
                pad = abs(value) * FLAT_RANGE_PADDING if value else 1.0
                bounds[axis] = [value - pad, value + pad]
        return bounds


# Several runs overlaid are told apart by line style; seeds by the symbol on epoch curves.
RUN_LINE_STYLES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine,
                   Qt.PenStyle.DashDotLine, Qt.PenStyle.DashDotDotLine)
SEED_SYMBOLS = ("o", "s", "t", "d", "star", "t1", "p", "h")


def run_line_style(run_index: int) -> Qt.PenStyle:
    return RUN_LINE_STYLES[run_index % len(RUN_LINE_STYLES)]


def seed_symbol(seed_index: int) -> str:
    return SEED_SYMBOLS[seed_index % len(SEED_SYMBOLS)]


def with_alpha(color: QColor, alpha: float) -> QColor:
    result = QColor(color)
    result.setAlphaF(alpha)
    return result


def make_pen(color: QColor, width: float = 1.0, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    pen = pg.mkPen(color=color, width=width)
    pen.setStyle(style)
    pen.setCosmetic(True)
    if style != Qt.PenStyle.SolidLine:
        pen.setCapStyle(Qt.PenCapStyle.FlatCap)
    return pen


@dataclass(frozen=True)
class PlotColors:
    """Colours for plots, taken from a widget palette so the shell's light or dark theme applies."""
    background: QColor
    text: QColor
    muted_text: QColor
    axis: QColor
    grid_alpha: float
    crosshair: QColor
    label_fill: QColor
    neutral_line: QColor
    dark: bool

    @classmethod
    def from_palette(cls, palette: QPalette) -> PlotColors:
        background = palette.color(QPalette.ColorRole.Base)
        text = palette.color(QPalette.ColorRole.Text)
        dark = background.lightnessF() < 0.5
        muted = QColor(text)
        muted.setAlphaF(0.72)
        axis = QColor(text)
        axis.setAlphaF(0.55)
        crosshair = QColor(text)
        crosshair.setAlphaF(0.45)
        fill = QColor(background)
        fill.setAlphaF(0.9)
        neutral = QColor(text)
        neutral.setAlphaF(0.7)
        return cls(background=background, text=text, muted_text=muted, axis=axis,
                   grid_alpha=0.22 if dark else 0.15, crosshair=crosshair, label_fill=fill, neutral_line=neutral,
                   dark=dark)


class ManualXViewBox(PaddedViewBox):
    """A PaddedViewBox whose x range only its owner sets (with setXRange): x auto-range is off, and stays off
    when pyqtgraph would turn it on (switching a log scale, the plot menu's "Auto"), which would move the x range
    of every linked plot away from what the owner chose. The y axis auto-ranges as usual."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        pg.ViewBox.enableAutoRange(self, pg.ViewBox.XAxis, False)

    def enableAutoRange(self, axis=None, enable=True, x=None, y=None):
        if x is not None or y is not None:
            if y is not None:
                super().enableAutoRange(pg.ViewBox.YAxis, y)
            return
        if axis in (None, pg.ViewBox.XYAxes, "xy", pg.ViewBox.YAxis, "y"):
            super().enableAutoRange(pg.ViewBox.YAxis, enable)


def style_plot_item(plot: pg.PlotItem, theme: PlotColors, font_size_pt: float = 9.0) -> None:
    """Axis pens, tick and label colours, and grid from a theme."""
    for name in ("left", "bottom", "right", "top"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(theme.axis))
        axis.setTextPen(pg.mkPen(theme.text))
        font = axis.font() if hasattr(axis, "font") else None
        if font is not None:
            font.setPointSizeF(font_size_pt)
            axis.setStyle(tickFont=font)
        # Major and minor grid lines only: the third level adds clutter and painting time.
        axis.setStyle(maxTickLevel=1)
        axis.label.setDefaultTextColor(theme.text)
    plot.showGrid(x=True, y=True, alpha=theme.grid_alpha)


def selectable_headline() -> QLabel:
    """The wrapped, selectable line of text that opens an analysis tab (Search, Science)."""
    label = QLabel()
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def captioned_plots(grid: QGridLayout, titles: dict[str, str], captions: dict[str, str], *,
                    log: bool = False) -> tuple[dict[str, pg.PlotWidget], dict[str, QLabel]]:
    """One plot per title, side by side in `grid`, each over its how-to-read-it caption; keyed as `titles`."""
    plots, labels = {}, {}
    for column, (key, title) in enumerate(titles.items()):
        plot = pg.PlotWidget(axisItems={"left": CompactAxis("left"), "bottom": CompactAxis("bottom")})
        plot.setTitle(title)
        if log:
            plot.setLogMode(x=True, y=True)
        plot.setMinimumHeight(220)
        caption = QLabel(captions[key])
        caption.setWordWrap(True)
        caption.setObjectName("plotCaption")
        grid.addWidget(plot, 0, column)
        grid.addWidget(caption, 1, column, Qt.AlignmentFlag.AlignTop)
        plots[key], labels[key] = plot, caption
    return plots, labels
