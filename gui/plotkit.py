"""Small pyqtgraph helpers shared by the live plots and the summary view: how a metric is shown (scale and
unit on screen), axes that print big numbers compactly, legend samples, and theming from the Qt palette.

Metric names, labels and stored units come from engine.schema; this module only decides presentation
(accuracy as %, memory in MiB), so both views present a metric the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPalette, QPen, QTextDocument
from PySide6.QtWidgets import QGraphicsObject, QSizePolicy
from pyqtgraph.graphicsItems.ScatterPlotItem import drawSymbol

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


def display(metric_name: str) -> Display:
    """Presentation of a metric from engine.schema (label from the schema, unit and scale for people)."""
    metric = schema.METRICS[metric_name]
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


class CompactAxis(pg.AxisItem):
    """An axis without SI-prefix rescaling whose ticks print big numbers as 20k / 1.5M."""

    def __init__(self, orientation: str, **kwargs):
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values, scale, spacing):
        if self.logMode:
            return [text if abs(value) < 300 and self._labels_log_tick(value) else "" for value, text in
                    zip(values, compact_ticks([10 ** value if abs(value) < 300 else 0 for value in values]))]
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


class _LegendItem(QGraphicsObject):
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
            self.setToolTip("Click to show or hide these curves")

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
        self._items: list[_LegendItem] = []
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
        self._item_groups: list[list[_LegendItem]] = []
        for group in self._groups:
            created = [_LegendItem(entry, self._text_color, self) for entry in group]
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
class Theme:
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
    def from_palette(cls, palette: QPalette) -> Theme:
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


def style_plot_item(plot: pg.PlotItem, theme: Theme, font_size_pt: float = 9.0) -> None:
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
