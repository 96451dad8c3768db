"""Export of plots (PNG, SVG) and tables (CSV) from the real widgets."""
from __future__ import annotations

import csv
import math
from xml.etree import ElementTree

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

from engine.runfile import read_run
from gui.export import ExportError, export_table_csv, export_widget_image
from gui.plots import LivePlots
from gui.runs_browser import RunsBrowser
from gui.summary import SummaryView
from tests.gui.runfactory import write_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run(tmp_path):
    return read_run(write_run(tmp_path / "run.h5", batch_sizes=(16, 32, 64), seeds=(0, 1), epochs=3, train_size=1024))


def _is_png(path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC and not QImage(str(path)).isNull()


def _is_svg(path) -> bool:
    text = path.read_text(encoding="utf-8")
    return path.stat().st_size > 1000 and "<svg" in text and text.rstrip().endswith("</svg>")


def test_live_plots_export_png_and_svg(qtbot, run, tmp_path):
    plots = LivePlots()
    qtbot.addWidget(plots)
    plots.resize(1000, 650)
    plots.show()
    plots.set_runs([run])
    plots.export_all(tmp_path / "all.png")
    assert _is_png(tmp_path / "all.png")
    image = QImage(str(tmp_path / "all.png"))
    assert image.width() >= 2 * plots.graphics().width() - 2          # exported at twice the screen resolution
    plots.export_plot("loss", tmp_path / "loss.svg")
    assert _is_svg(tmp_path / "loss.svg")
    plots.set_current_plot("accuracy")
    plots.export_current(tmp_path / "current.png")
    assert _is_png(tmp_path / "current.png")
    assert QImage(str(tmp_path / "current.png")).width() < image.width()    # one plot, not all


def test_summary_exports_plots_and_table(qtbot, run, tmp_path):
    summary = SummaryView()
    qtbot.addWidget(summary)
    summary.resize(1200, 800)
    summary.show()
    summary.set_runs([run])
    summary.export_all(tmp_path / "summary.png")
    assert _is_png(tmp_path / "summary.png")
    summary.export_all(tmp_path / "summary.svg")
    assert _is_svg(tmp_path / "summary.svg")
    summary.export_plot("steps_to_target", tmp_path / "steps.svg")
    assert _is_svg(tmp_path / "steps.svg")

    summary.export_table(tmp_path / "summary.csv")
    with (tmp_path / "summary.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == summary.table_headers()
    assert [int(row[0]) for row in rows[1:]] == [16, 32, 64]
    column = rows[0].index("Throughput (samples/s) mean")
    for row, expected in zip(rows[1:], summary.table_rows()):
        assert float(row[column]) == pytest.approx(expected[column])


def test_runs_browser_listing_as_csv(qtbot, run, tmp_path):
    browser = RunsBrowser(tmp_path)
    qtbot.addWidget(browser)
    browser.export_table(tmp_path / "runs.csv")
    with (tmp_path / "runs.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][0] == "Name" and rows[1][0] == "mlp-on-mnist1d"


def test_export_helpers_directly(qtbot, run, tmp_path):
    plots = LivePlots()
    qtbot.addWidget(plots)
    plots.set_runs([run])
    export_widget_image(plots.plot_item("throughput"), tmp_path / "throughput.PNG")
    assert _is_png(tmp_path / "throughput.PNG")
    with pytest.raises(ExportError, match="png or .svg"):
        export_widget_image(plots.plot_item("throughput"), tmp_path / "throughput.jpg")
    with pytest.raises(ExportError, match="no such folder"):
        export_widget_image(plots.graphics(), tmp_path / "missing" / "plot.svg")

    export_table_csv(["name", "value", "missing"], [["a, quoted", 1.5, math.nan], ["b", 2, None]],
                     tmp_path / "table.csv")
    with (tmp_path / "table.csv").open(newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [["name", "value", "missing"], ["a, quoted", "1.5", ""], ["b", "2", ""]]


def _rendered_by_qt(path) -> QImage:
    renderer = QSvgRenderer(str(path))
    assert renderer.isValid()
    image = QImage(renderer.defaultSize(), QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    return image


def _pixels(image: QImage, rect: QRect) -> np.ndarray:
    part = image.copy(rect).convertToFormat(QImage.Format.Format_RGB32)
    data = np.frombuffer(part.constBits(), np.uint8, count=part.sizeInBytes())
    return data.reshape(part.height(), part.bytesPerLine() // 4, 4)[:, :part.width(), :3].copy()


def test_summary_svg_is_flat_and_qt_draws_every_plot(qtbot, run, tmp_path):
    summary = SummaryView()
    qtbot.addWidget(summary)
    summary.resize(1200, 800)
    summary.show()
    summary.set_runs([run])
    path = tmp_path / "summary.svg"
    summary.export_all(path)
    root = ElementTree.parse(path).getroot()                        # well-formed XML
    namespace = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{namespace}svg" and len(list(root.iter(f"{namespace}svg"))) == 1   # nothing nested
    ids = [element.get("id") for element in root.iter() if element.get("id")]
    assert len(ids) == len(set(ids))
    image = _rendered_by_qt(path)
    container = summary.card(summary.plot_names()[0]).parentWidget()
    assert (image.width(), image.height()) == (container.width(), container.height())
    for name in summary.plot_names():
        view = summary.plot_widget(name)
        origin = view.mapTo(container, QPoint(0, 0))
        pixels = _pixels(image, QRect(origin.x(), origin.y(), view.width(), view.height()))
        # A blank card is one flat colour; a drawn plot has axes, tick labels, points and error bars.
        colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
        assert pixels.std() > 10 and colours > 20, (name, pixels.std(), colours)
    # Nothing of a plot is drawn outside its own box: the space between two cards stays the page colour.
    first, second = (summary.card(name) for name in summary.plot_names()[:2])
    gap_left = first.mapTo(container, QPoint(first.width(), 0)).x()
    gap = _pixels(image, QRect(gap_left + 1, first.mapTo(container, QPoint(0, 0)).y() + 10,
                               max(1, second.mapTo(container, QPoint(0, 0)).x() - gap_left - 2), 40))
    assert len(np.unique(gap.reshape(-1, 3), axis=0)) == 1
