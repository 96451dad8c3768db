"""Export a plot as PNG or SVG (chosen by the file suffix) and a table as CSV."""
from __future__ import annotations

import csv
import html
import importlib
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyqtgraph as pg
import pyqtgraph.exporters as pg_exporters
from PySide6 import QtGui
from PySide6.QtCore import QPoint, QSize, Qt
from PySide6.QtGui import QColor, QFontInfo, QPainter, QPalette, QPixmap, QTextDocument
from PySide6.QtWidgets import QFrame, QGraphicsItem, QGraphicsScene, QLabel, QScrollBar, QWidget

from engine.errors import UserError

_svg_exporter_module = importlib.import_module("pyqtgraph.exporters.SVGExporter")

IMAGE_SUFFIXES = (".png", ".svg")
PNG_SCALE = 2.0          # exported PNGs have twice the on-screen resolution, for slides and papers


class ExportError(UserError):
    """An export the user asked for could not be written (bad suffix, folder not writable, ...)."""


def _background(target) -> QColor:
    widget = target if isinstance(target, QWidget) else None
    if widget is None:
        scene = target.scene() if isinstance(target, QGraphicsItem) else target
        views = scene.views() if isinstance(scene, QGraphicsScene) else []
        widget = views[0] if views else None
    if isinstance(widget, pg.GraphicsView):
        brush = widget.backgroundBrush()
        if brush.style() != Qt.BrushStyle.NoBrush:
            return QColor(brush.color())
    if widget is not None:
        return widget.palette().color(QPalette.ColorRole.Base)
    return QColor("white")


def _export_item(target) -> QGraphicsItem | QGraphicsScene:
    """What pyqtgraph's exporters take for a PlotItem / PlotWidget / GraphicsLayoutWidget / scene."""
    if isinstance(target, pg.PlotWidget):
        return target.getPlotItem()
    if isinstance(target, pg.GraphicsLayoutWidget):
        return target.scene()
    if isinstance(target, pg.GraphicsView):
        return target.scene()
    if isinstance(target, (QGraphicsItem, QGraphicsScene)):
        return target
    raise TypeError(f"cannot export {type(target).__name__} with pyqtgraph")


def export_widget_image(target, path: Path) -> None:
    """A pyqtgraph PlotItem / PlotWidget / GraphicsLayoutWidget (or any QWidget) as PNG or SVG by suffix.

    The background is the plot's own (the theme's), never transparent, so the picture reads the same in
    any viewer. Raises ExportError for another suffix or a file that cannot be written."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ExportError(f"{path.name}: choose a file name ending in .png or .svg")
    _check_writable(path)
    background = _background(target)
    if isinstance(target, QWidget) and not isinstance(target, pg.GraphicsView):
        _export_plain_widget(target, path, background)
    else:
        item = _export_item(target)
        if suffix == ".png":
            exporter = pg_exporters.ImageExporter(item)
            parameters = exporter.parameters()
            width = int(parameters["width"])
            parameters["width"] = max(1, int(round(width * PNG_SCALE)))
            parameters["background"] = background
            parameters["antialias"] = True
        else:
            exporter = pg_exporters.SVGExporter(item)
            exporter.parameters()["background"] = background
        try:
            with _closed_paths_spelled_out():
                exporter.export(str(path))
        except OSError as error:
            raise ExportError(f"{path}: could not be written ({error})") from None
    if not path.exists() or path.stat().st_size == 0:
        raise ExportError(f"{path}: could not be written")


def _spell_out_closes(path_data: str) -> str:
    """SVG path data with each close-path ('Z') written as a line back to its subpath's start."""
    tokens, start = [], None
    for token in path_data.split():
        if token in ("Z", "z"):
            if start is not None:
                tokens.append(f"L{start}")
            continue
        if token[0] in "Mm":
            start = token[1:]
        tokens.append(token)
    return " ".join(tokens)


@contextmanager
def _closed_paths_spelled_out() -> Iterator[None]:
    """pyqtgraph 0.14's SVG exporter cannot parse the close-path command ('Z') that Qt 6's SVG generator now
    writes (pyqtgraph issue #3495: every plot fails with "not enough values to unpack"). While exporting,
    rewrite each 'Z' as a line back to the start before pyqtgraph reads the path, which draws the same."""
    original = _svg_exporter_module.correctCoordinates

    def correct_coordinates(node, defs, item, options):
        for element in node.getElementsByTagName("path"):
            data = element.getAttribute("d")
            if "Z" in data or "z" in data:
                element.setAttribute("d", _spell_out_closes(data))
        return original(node, defs, item, options)

    _svg_exporter_module.correctCoordinates = correct_coordinates
    try:
        yield
    finally:
        _svg_exporter_module.correctCoordinates = original


def _export_plain_widget(widget: QWidget, path: Path, background: QColor) -> None:
    """A composite widget (plots with titles and captions): PNG from a grab at twice the resolution; SVG
    composed from pyqtgraph's SVG of each plot, the labels as text and the panels as rectangles (Qt's own
    SVG generator cannot clip, so painting the widget into it would draw curves outside their plots)."""
    if path.suffix.lower() == ".png":
        pixmap = _grab_scaled(widget, PNG_SCALE, background)
        if not pixmap.save(str(path), "PNG"):
            raise ExportError(f"{path}: could not be written")
        return
    svg = compose_widget_svg(widget, background)
    try:
        path.write_text(svg, encoding="utf-8")
    except OSError as error:
        raise ExportError(f"{path}: could not be written ({error.strerror or error})") from None


def compose_widget_svg(container: QWidget, background: QColor) -> str:
    """SVG of a widget holding pyqtgraph views, labels and framed panels, laid out as on screen."""
    width, height = container.width(), container.height()
    parts = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="{background.name()}"/>']
    for index, child in enumerate(_visible_descendants(container)):
        origin = child.mapTo(container, QPoint(0, 0))
        x, y, w, h = origin.x(), origin.y(), child.width(), child.height()
        if isinstance(child, pg.GraphicsView):
            parts.append(_plot_group_svg(child, x, y, w, h, f"p{index}_"))
        elif isinstance(child, QLabel):
            parts.extend(_label_svg(child, x, y))
        elif isinstance(child, QFrame) and child.frameShape() != QFrame.Shape.NoFrame:
            palette = child.palette()
            parts.append(f'<rect x="{x + 0.5}" y="{y + 0.5}" width="{w - 1}" height="{h - 1}" rx="3" '
                         f'fill="{palette.color(QPalette.ColorRole.Window).name()}" '
                         f'stroke="{palette.color(QPalette.ColorRole.Mid).name()}"/>')
    body = "\n".join(parts)
    return ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" version="1.1" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">\n{body}\n</svg>\n')


def _visible_descendants(widget: QWidget) -> list[QWidget]:
    """Children before grandchildren (panels under their contents), skipping hidden ones and the insides
    of plot views."""
    found = []
    for child in widget.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly):
        if not child.isVisibleTo(widget) or isinstance(child, QScrollBar):
            continue
        found.append(child)
        if not isinstance(child, pg.GraphicsView):
            found.extend(_visible_descendants(child))
    return found


def _plot_group_svg(view: pg.GraphicsView, x: int, y: int, w: int, h: int, prefix: str) -> str:
    """A plot view as a group placed at (x, y) and clipped to its w × h box. A group, not a nested <svg>
    element: Qt's SVG renderer (SVG Tiny 1.2) draws nothing inside nested <svg>, and browsers and Inkscape read
    groups alike."""
    item = view.getPlotItem() if isinstance(view, pg.PlotWidget) else view.scene()
    exporter = pg_exporters.SVGExporter(item)
    exporter.parameters()["background"] = _background(view)
    with _closed_paths_spelled_out():
        text = exporter.export(toBytes=True).decode("utf-8")
    opening = re.search(r"<svg\b[^>]*>", text)
    body = text[opening.end():text.rindex("</svg>")]
    box = re.search(r'viewBox\s*=\s*"([-\d.eE]+)[ ,]+([-\d.eE]+)[ ,]+([-\d.eE]+)[ ,]+([-\d.eE]+)"', opening.group(0))
    left, top, box_w, box_h = (float(value) for value in box.groups()) if box else (0.0, 0.0, w, h)
    # The document's title, description and image style belong to a whole file, not to one plot in it.
    body = re.sub(r"<(title|desc|style)\b[^>]*>.*?</\1>", "", body, flags=re.DOTALL)
    # The background said "100%" of its own viewport; in a group that would be the whole page.
    body = re.sub(r'<rect width="100%" height="100%"', f'<rect x="{left:g}" y="{top:g}" width="{box_w:g}" '
                  f'height="{box_h:g}"', body)
    # Ids are numbered per export; prefix them so several plots in one file keep their own clip paths.
    body = re.sub(r'id="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', body)
    body = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", body)
    body = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', body)
    scale = (f" scale({w / box_w:.6g} {h / box_h:.6g})" if box_w and box_h and (box_w, box_h) != (w, h) else "")
    shift = f" translate({-left:g} {-top:g})" if (left, top) != (0.0, 0.0) else ""
    return (f'<clipPath id="{prefix}box"><rect x="{x}" y="{y}" width="{w}" height="{h}"/></clipPath>\n'
            f'<g clip-path="url(#{prefix}box)">\n<g transform="translate({x} {y}){scale}{shift}">\n{body}\n</g>\n</g>')


def _label_svg(label: QLabel, x: int, y: int) -> list[str]:
    """The text of a label, line by line as Qt lays it out, keeping bold and coloured spans."""
    text = label.text()
    if not text:
        return []
    document = QTextDocument()
    document.setDefaultFont(label.font())
    document.setDocumentMargin(0)
    rich = label.textFormat() == Qt.TextFormat.RichText or (
        label.textFormat() == Qt.TextFormat.AutoText and QtGui.Qt.mightBeRichText(text))
    if rich:
        document.setHtml(text)
    else:
        document.setPlainText(text)
    contents = label.contentsRect()
    document.setTextWidth(contents.width() if label.wordWrap() else -1)
    document.size()                                                       # lays the text out
    default_color = label.palette().color(QPalette.ColorRole.WindowText)
    top = y + contents.y()
    if label.alignment() & Qt.AlignmentFlag.AlignVCenter:
        top += max(0.0, (contents.height() - document.size().height()) / 2)
    pixel_size = QFontInfo(label.font()).pixelSize()
    elements = []
    block = document.begin()
    while block.isValid():
        layout = block.layout()
        block_top = document.documentLayout().blockBoundingRect(block).top()
        fragments = []
        iterator = block.begin()
        while not iterator.atEnd():
            fragment = iterator.fragment()
            fragments.append((fragment.position() - block.position(), fragment.text(), fragment.charFormat()))
            iterator += 1
        for line_index in range(layout.lineCount()):
            line = layout.lineAt(line_index)
            start, end = line.textStart(), line.textStart() + line.textLength()
            baseline = top + block_top + line.y() + line.ascent()
            for position, fragment_text, char_format in fragments:
                first, last = max(start, position), min(end, position + len(fragment_text))
                if last <= first:
                    continue
                piece = fragment_text[first - position:last - position].replace("\u2028", "")
                if not piece.strip():
                    continue
                left = x + contents.x() + line.cursorToX(first)[0]
                brush = char_format.foreground()
                color = brush.color() if brush.style() != Qt.BrushStyle.NoBrush else default_color
                weight = "bold" if char_format.fontWeight() >= 600 else "normal"
                font_size = char_format.font().pixelSize() if char_format.font().pixelSize() > 0 else pixel_size
                elements.append(
                    f'<text x="{left:.1f}" y="{baseline:.1f}" font-family="{label.font().family()}, sans-serif" '
                    f'font-size="{font_size}px" font-weight="{weight}" fill="{color.name()}" '
                    f'fill-opacity="{color.alphaF():.2f}" xml:space="preserve">{html.escape(piece)}</text>')
        block = block.next()
    return elements


def _grab_scaled(widget: QWidget, ratio: float, background: QColor) -> QPixmap:
    size = QSize(int(widget.width() * ratio), int(widget.height() * ratio))
    pixmap = QPixmap(size)
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(background)
    painter = QPainter(pixmap)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        widget.render(painter, QPoint())
    finally:
        painter.end()
    return pixmap


def _cell(value) -> str | int:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    return str(value)


def export_table_csv(headers: list[str], rows: list[list], path: Path) -> None:
    """A table as UTF-8 CSV with a header row. Missing values (None, NaN) are empty cells; floats keep full
    precision. Raises ExportError when the file cannot be written."""
    path = Path(path)
    _check_writable(path)
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(headers)
            for row in rows:
                writer.writerow([_cell(value) for value in row])
    except OSError as error:
        raise ExportError(f"{path}: could not be written ({error.strerror or error})") from None


def _check_writable(path: Path) -> None:
    if not path.parent.exists():
        raise ExportError(f"{path.parent}: no such folder")
    if path.is_dir():
        raise ExportError(f"{path}: is a folder")


class CurrentPlotExport:
    """For a view of several named plots (it provides plot_names, export_plot and export_all): remembers the
    plot last clicked, and exports that one, or every plot when none has been clicked."""

    _current_plot: str | None = None

    def current_plot(self) -> str | None:
        """The plot last clicked, which `export_current` writes; None until one is clicked."""
        return self._current_plot

    def set_current_plot(self, name: str | None) -> None:
        if name is not None and name not in self.plot_names():
            raise ValueError(f"unknown plot {name!r}")
        self._current_plot = name

    def export_current(self, path: Path) -> None:
        """The plot last clicked, or all plots when none has been clicked."""
        if self._current_plot is None:
            self.export_all(path)
        else:
            self.export_plot(self._current_plot, path)
