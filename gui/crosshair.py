"""The crosshair of the live plots: a dashed vertical line through every plot at the mouse's x, and in the plot
under the mouse a horizontal line, a ring on the nearest point and a label beside it saying what that point is.

`nearest_point` finds the point; `Crosshair` draws; what the label says is the caller's (it knows the trials).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt

from gui.plotkit import PlotColors, make_pen

Payload = TypeVar("Payload")
LABEL_GAP_PX = 10.0               # between the marked point and its label


@dataclass(frozen=True)
class NearestPoint(Generic[Payload]):
    payload: Payload               # what the caller attached to the curve the point is on
    x: float                       # the point in data units
    y: float
    view_x: float                  # and in view coordinates (log10 of the data on a log axis)
    view_y: float


def nearest_point(view: pg.ViewBox, curves: Iterable[tuple[pg.PlotDataItem, Payload]], x: float, y: float,
                  log_x: bool, log_y: bool) -> NearestPoint[Payload] | None:
    """The point of these (visible) curves nearest on screen to view coordinates (x, y): for each curve, the two
    points either side of x, compared by their distance in pixels."""
    mouse = view.mapViewToScene(QPointF(x, y))
    data_x = 10 ** x if log_x else x
    best: tuple[float, NearestPoint] | None = None
    for item, payload in curves:
        xs, ys = item.getOriginalDataset()
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
            distance = (view.mapViewToScene(QPointF(vx, vy)) - mouse).manhattanLength()
            if best is None or distance < best[0]:
                best = (distance, NearestPoint(payload, px, py, vx, vy))
    return None if best is None else best[1]


@dataclass
class _Marks:
    vline: pg.InfiniteLine
    hline: pg.InfiniteLine
    ring: pg.ScatterPlotItem
    label: pg.TextItem

    def items(self) -> tuple:
        return self.vline, self.hline, self.ring, self.label


class Crosshair:
    """The crosshair's items in each plot (drawn above the curves, ignored by auto-range)."""

    def __init__(self, plots: dict[str, pg.PlotItem]):
        self._plots = plots
        self._marks: dict[str, _Marks] = {}
        for name, plot in plots.items():
            marks = _Marks(pg.InfiniteLine(angle=90, movable=False), pg.InfiniteLine(angle=0, movable=False),
                           pg.ScatterPlotItem(size=10), pg.TextItem(anchor=(0, 0)))
            for item in marks.items():
                item.setZValue(1000)
                plot.addItem(item, ignoreBounds=True)
                item.hide()
            self._marks[name] = marks

    def set_colors(self, colors: PlotColors) -> None:
        dashed = make_pen(colors.crosshair, 1, Qt.PenStyle.DashLine)
        for marks in self._marks.values():
            marks.vline.setPen(dashed)
            marks.hline.setPen(dashed)
            marks.ring.setPen(pg.mkPen(colors.text, width=2))
            marks.ring.setBrush(pg.mkBrush(None))
            marks.label.fill = pg.mkBrush(colors.label_fill)
            marks.label.border = pg.mkPen(colors.axis)
            marks.label.setColor(colors.text)

    def hide(self) -> None:
        for marks in self._marks.values():
            for item in marks.items():
                item.hide()

    def move_to(self, plot_name: str, x: float, y: float) -> None:
        """Lines through (x, y) of this plot, and through x in every other plot (whose marks are hidden)."""
        for name, marks in self._marks.items():
            marks.vline.setPos(x)
            marks.vline.show()
            if name != plot_name:
                for item in (marks.hline, marks.ring, marks.label):
                    item.hide()
        marks = self._marks[plot_name]
        marks.hline.setPos(y)
        marks.hline.show()

    def unmark(self, plot_name: str) -> None:
        marks = self._marks[plot_name]
        marks.ring.hide()
        marks.label.hide()

    def mark(self, plot_name: str, view_x: float, view_y: float, html: str) -> None:
        """A ring on the point and the label beside it, kept inside the plot (labels are wider than half a small
        plot): right of and above the point where there is room, else left of or below it."""
        marks = self._marks[plot_name]
        view = self._plots[plot_name].getViewBox()
        marks.ring.setData([view_x], [view_y])
        marks.ring.show()
        marks.label.setHtml(html)
        size = marks.label.textItem.boundingRect()
        point = view.mapViewToScene(QPointF(view_x, view_y))
        area = view.sceneBoundingRect()
        left = point.x() + LABEL_GAP_PX
        if left + size.width() > area.right() - 2:
            left = point.x() - LABEL_GAP_PX - size.width()
        left = min(max(left, area.left() + 2), area.right() - 2 - size.width())
        top = point.y() - LABEL_GAP_PX - size.height()
        if top < area.top() + 2:
            top = point.y() + LABEL_GAP_PX
        corner = view.mapSceneToView(QPointF(left, top))
        marks.label.setPos(corner.x(), corner.y())
        marks.label.setVisible(True)       # TextItem.setVisible (not show()) updates its transform
        marks.label.updateTransform(force=True)
