"""The legend of the live plots: entries with a line sample (colour, line style, marker) that wrap to the width
they are given, grouped (batch sizes, seeds, lines, runs); clicking an entry with a key shows or hides its curves.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QTextDocument
from PySide6.QtWidgets import QGraphicsObject, QSizePolicy
from pyqtgraph.graphicsItems.ScatterPlotItem import drawSymbol


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
