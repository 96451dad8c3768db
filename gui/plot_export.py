"""Exports of the live plots that stand alone: one plot as a figure with its title, both axes named with their
units and a legend of what its curves are; and the values behind the curves as CSV, units in the header.
Writing the image is gui/export.py's.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from engine import schema
from engine.runfile import RunData, TrialData
from gui.export import ExportError, export_widget_image
from gui.plot_legend import FlowLegend, LegendEntry
from gui.plotkit import CompactAxis, PlotColors, style_plot_item

FIGURE_SIZE = (960, 600)          # pixels of a single exported plot (PNG is scaled up by gui/export.py)
CURVE_OPTIONS = ("pen", "symbol", "symbolSize", "symbolBrush", "symbolPen", "antialias")


def export_figure(source: pg.PlotItem, path: Path, *, title: str, x_label: str, y_label: str,
                  legend: Sequence[Sequence[LegendEntry]], colors: PlotColors) -> None:
    """The visible curves of `source`, in its current view range and log scales, as a figure of their own."""
    figure = pg.GraphicsLayoutWidget()
    # Laid out at its size like a shown window, but never put on the screen.
    figure.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
    figure.resize(*FIGURE_SIZE)
    figure.setBackground(colors.background)
    figure.ci.setContentsMargins(12, 10, 16, 10)
    try:
        heading = figure.addLabel(title, row=0, col=0, size="13pt", color=colors.text.name())
        heading.setAttr("justify", "left")
        plot = figure.addPlot(row=1, col=0, axisItems={"left": CompactAxis("left"), "bottom": CompactAxis("bottom")})
        style_plot_item(plot, colors, font_size_pt=10.0)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.setLabel("bottom", x_label)
        plot.setLabel("left", y_label)
        log_x, log_y = source.ctrl.logXCheck.isChecked(), source.ctrl.logYCheck.isChecked()
        plot.setLogMode(x=log_x, y=log_y)
        for item in source.listDataItems():
            if not item.isVisible() or not isinstance(item, pg.PlotDataItem):
                continue
            x, y = item.getOriginalDataset()
            if x is None or not len(x):
                continue
            copy = pg.PlotDataItem(x, y, **{key: item.opts[key] for key in CURVE_OPTIONS})
            copy.setZValue(item.zValue())
            plot.addItem(copy)
            if item.opts["autoDownsample"]:
                # A long per-step curve as drawn on screen (a min/max pair per pixel column): an SVG of every
                # one of 100,000 steps would be tens of megabytes and look the same.
                copy.setDownsampling(auto=True, method="peak")
                copy.setClipToView(True)
        (x_low, x_high), (y_low, y_high) = source.getViewBox().viewRange()
        plot.setXRange(x_low, x_high, padding=0)
        plot.setYRange(y_low, y_high, padding=0)
        key = FlowLegend()
        figure.addItem(key, row=2, col=0)
        key.set_groups([list(group) for group in legend], colors.text)
        figure.show()
        QApplication.processEvents()
        export_widget_image(figure, Path(path))
    finally:
        figure.close()
        figure.deleteLater()


def _header(metric: schema.Metric) -> str:
    return metric.name if metric.units == "1" else f"{metric.name} ({metric.units})"


def _quoted(*texts: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(texts)
    return buffer.getvalue()


def export_curve_data(shown: Sequence[tuple[RunData, Sequence[TrialData]]], group: str, path: Path) -> None:
    """The per-epoch (group schema.EPOCH_GROUP) or per-step values of these trials as CSV: one row per point, the
    run and trial first, then every column of the run file as stored (accuracy as a fraction, memory in bytes),
    each header naming its unit."""
    path = Path(path)
    metrics = schema.EPOCH_METRICS if group == schema.EPOCH_GROUP else schema.STEP_METRICS
    headers = ["run", "trial", "batch_size", "seed", "lr"] + [_header(metric) for metric in metrics]
    if not path.parent.exists():
        raise ExportError(f"{path.parent}: no such folder")
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            handle.write(_quoted(*headers) + "\n")
            for run, trials in shown:
                for trial in trials:
                    columns = trial.epoch if group == schema.EPOCH_GROUP else trial.step
                    if not len(columns[metrics[0].name]):
                        continue
                    table = np.column_stack([np.asarray(columns[metric.name], dtype=np.float64)
                                             for metric in metrics])
                    prefix = _quoted(run.path.stem, trial.name) + f",{trial.batch_size},{trial.seed},{trial.lr!r},"
                    # %.17g keeps every float64 exactly; NaN (a missing value) is written as an empty cell.
                    lines = io.StringIO()
                    np.savetxt(lines, table, fmt="%.17g", delimiter=",")
                    for line in lines.getvalue().splitlines():
                        handle.write(prefix + line.replace("nan", "") + "\n")
    except OSError as error:
        raise ExportError(f"{path}: could not be written ({error.strerror or error})") from None
