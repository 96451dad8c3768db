"""Export of plots (PNG, SVG) and tables (CSV) from the real widgets."""
from __future__ import annotations

import csv
import math

import pytest
from PySide6.QtGui import QImage

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
