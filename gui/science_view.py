"""The Science tab: why a batch size is fast or slow, from the run on screen at the Summary's target, through the
same engine calls as `report` (engine.science.report.analyse): steps and examples to the target against batch
size with the critical-batch fit and its regimes, the gradient noise scale against examples seen, and a card for
each claim of the usual batch-size advice with its verdict and evidence plot (gui/findings_view.py). The tab
scrolls as a whole: the findings' plots need more height than is left under the three plots above."""
from __future__ import annotations

import math
import tomllib

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtWidgets import QGridLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from engine.runfile import RunData
from engine.science.critical_batch import DIMINISHING, NO_GAIN, PERFECT, REGIME_FACTOR, CriticalBatch
from engine.science.report import Science, analyse
from engine.science.recommendation import default_target
from gui.colors import batch_size_color
from gui.findings_view import FindingsView, spans_a_decade
from gui.plotkit import PlotColors, captioned_plots, make_pen, selectable_headline, style_plot_item

# Regimes shaded behind the fit: green where doubling the batch still pays, red where it no longer does.
REGIME_BRUSHES = {PERFECT: (60, 160, 90, 40), DIMINISHING: (230, 170, 40, 40), NO_GAIN: (210, 70, 60, 40)}
LIVE_INTERVAL_MS = 1000
TOP_PLOT_HEIGHT = 250
NO_NOISE = "No noise-scale measurement in this run: turn on science.noise_scale (Measure noise scale in Setup)."
NOISE_COMING = "No noise-scale measurement yet: the first comes after science.noise_every steps."

CAPTIONS = {
    "steps": "Steps to the target at each batch size (its best learning rate, median over seeds); the line is "
             "S_min + E_min/B. Green: doubling the batch still halves the steps; amber: diminishing returns; red: "
             "no gain. Dashed: the noise scale B_simple, which should be of the critical batch's order.",
    "examples": "Examples to the target: flat while the batch is small (each example counts fully), rising past "
                "the critical batch, where larger batches pay examples without saving steps.",
    "noise": "The gradient noise scale B_simple of each trial as it trains (one line per trial, coloured by batch "
             "size). It grows as the loss falls: the batch size worth using grows with it.",
}


class ScienceView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("scienceView")
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        content = QWidget()
        scroll.setWidget(content)
        layout = QVBoxLayout(content)
        layout.setContentsMargins(8, 6, 8, 6)
        self.headline = selectable_headline()
        layout.addWidget(self.headline)
        grid = QGridLayout()
        layout.addLayout(grid)
        # Short enough for three plots beside the setup panel at 1280 px; the axes say what is against what.
        titles = {"steps": "Steps to target", "examples": "Examples to target", "noise": "Noise scale B_simple"}
        self.plots, _ = captioned_plots(grid, titles, CAPTIONS, log=True)
        for plot in self.plots.values():
            # In a scrolling tab a plot would take its size hint (twice this) and push the findings off screen.
            plot.setFixedHeight(TOP_PLOT_HEIGHT)
        self.noise_empty = pg.TextItem(anchor=(0.5, 0.5))
        layout.addWidget(QLabel("<b>Findings</b>: each claim of the usual advice, tested by this run; each plot "
                                "shows every seed, so a spread as wide as the effect is in sight"))
        self.findings = FindingsView()
        layout.addWidget(self.findings)
        layout.addStretch(1)
        self.science: Science | None = None
        self.runs: list[RunData] = []
        # While shown, the noise-scale curves follow a run being trained (its RunData grows in place); the fit
        # and the findings wait for the sweep's end, as their bootstrap takes a noticeable fraction of a second.
        self.live_timer = QTimer(self)
        self.live_timer.setInterval(LIVE_INTERVAL_MS)
        self.live_timer.timeout.connect(self.refresh_noise)
        self.set_runs([], None)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.live_timer.start()
        super().showEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.live_timer.stop()
        super().hideEvent(event)

    def refresh_noise(self) -> None:
        """Redraw the noise-scale curves from the run on screen, as it is now."""
        if self.runs:
            self.plots["noise"].clear()
            self._draw_noise(self.runs[0])

    def set_runs(self, runs: list[RunData], target: float | None) -> None:
        """Show the first run on screen at `target` (None: the automatic target)."""
        for plot in self.plots.values():
            plot.clear()
        self.runs = list(runs)
        if not runs:
            self.science = None
            self.headline.setText("Open a run or start a sweep: this tab explains what its batch sizes did.")
            self.findings.set_findings([])
            self._show_noise_empty("")
            return
        run = runs[0]
        target = target if target is not None else default_target([run])
        self.science = analyse(run, target)
        self.headline.setText(headline(self.science.critical_batch, self.science))
        self._draw()

    def _draw(self) -> None:
        """The plots and the findings' cards of the analysis on screen, in the palette's colours."""
        colors = self._style_plots()
        for plot in self.plots.values():
            plot.clear()
        self._draw_fit(self.science.critical_batch, colors)
        self._draw_noise(self.runs[0])
        self.findings.set_findings(self.science.findings)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt's name)
        # A theme switch: plots keep the background they were made with, and lines drawn in the text colour
        # vanish on it (white plots in the dark theme), so they are drawn again, without analysing again.
        if event.type() == QEvent.Type.PaletteChange and self.science is not None:
            self._draw()
        elif event.type() == QEvent.Type.PaletteChange:
            self._style_plots()
        super().changeEvent(event)

    def _style_plots(self) -> PlotColors:
        colors = PlotColors.from_palette(self.palette())
        for plot in self.plots.values():
            plot.setBackground(colors.background)
            style_plot_item(plot.getPlotItem(), colors)
            title = plot.getPlotItem().titleLabel
            title.setText(title.text, color=colors.text)
        return colors

    def _draw_fit(self, fit: CriticalBatch, colors: PlotColors) -> None:
        sizes = np.asarray(fit.batch_sizes, float)
        steps, samples = np.asarray(fit.steps, float), np.asarray(fit.samples, float)
        reached = np.isfinite(steps)
        for key, values in (("steps", steps), ("examples", samples)):
            plot = self.plots[key]
            plot.setLabel("bottom", "batch size")
            plot.setLabel("left", "optimizer steps" if key == "steps" else "examples")
            if not reached.any():
                continue
            fitted = fit.fitted_steps(sizes) * (1 if key == "steps" else sizes) if fit.available else []
            plot.setLogMode(x=True, y=spans_a_decade([*values[reached], *fitted]))
            plot.plot(sizes[reached], values[reached], pen=None, symbol="o", symbolSize=9,
                      symbolBrush=colors.text)
            if not fit.available:
                continue
            line = np.geomspace(sizes.min(), sizes.max(), 100)
            curve = fit.fitted_steps(line) if key == "steps" else fit.fitted_steps(line) * line
            plot.plot(line, curve, pen=make_pen(colors.text, 2))
            self._shade_regimes(plot, fit, sizes.min(), sizes.max())
            b_simple = self.science.noise.b_simple
            if math.isfinite(b_simple) and b_simple > 0:
                plot.addItem(pg.InfiniteLine(math.log10(b_simple), angle=90,
                                             pen=make_pen(colors.text, 1, Qt.PenStyle.DashLine)))

    @staticmethod
    def _shade_regimes(plot: pg.PlotWidget, fit: CriticalBatch, smallest: float, largest: float) -> None:
        low, high = math.log10(smallest) - 0.2, math.log10(largest) + 0.2
        edges = [(PERFECT, low, math.log10(fit.b_crit / REGIME_FACTOR)),
                 (DIMINISHING, math.log10(fit.b_crit / REGIME_FACTOR), math.log10(fit.b_crit * REGIME_FACTOR)),
                 (NO_GAIN, math.log10(fit.b_crit * REGIME_FACTOR), high)]
        for regime, start, end in edges:
            start, end = max(start, low), min(end, high)
            if end > start:
                region = pg.LinearRegionItem((start, end), movable=False, brush=pg.mkBrush(*REGIME_BRUSHES[regime]),
                                             pen=pg.mkPen(None))
                region.setZValue(-10)
                plot.addItem(region)

    def _draw_noise(self, run: RunData) -> None:
        plot = self.plots["noise"]
        plot.setLabel("bottom", "examples seen")
        plot.setLabel("left", "B_simple (examples)")
        sizes = sorted({trial.batch_size for trial in run.trials})
        drawn = False
        for trial in run.trials:
            values = trial.noise["b_simple"]
            keep = np.isfinite(values) & (values > 0)
            if keep.any():
                plot.plot(trial.noise["samples"][keep], values[keep],
                          pen=make_pen(batch_size_color(trial.batch_size, sizes), 1.5))
                drawn = True
        self._show_noise_empty("" if drawn else _noise_missing(run))

    def _show_noise_empty(self, text: str) -> None:
        """Without a curve the noise plot says why in its middle, instead of numbering axes around nothing."""
        plot = self.plots["noise"]
        for side in ("left", "bottom"):
            plot.getAxis(side).setStyle(showValues=not text)
        if not text:
            plot.removeItem(self.noise_empty)
            plot.enableAutoRange()
            return
        self.noise_empty.setText(text, color=PlotColors.from_palette(self.palette()).muted_text)
        self.noise_empty.setTextWidth(max(120, plot.width() - 60))
        if self.noise_empty not in plot.getPlotItem().items:
            plot.addItem(self.noise_empty, ignoreBounds=True)
        plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.noise_empty.setPos(0.5, 0.5)


def _noise_missing(run: RunData) -> str:
    """Why a run has no noise-scale curve, in the words of its setting."""
    reasons = sorted({trial.noise_scale_unavailable for trial in run.trials if trial.noise_scale_unavailable})
    if reasons:
        return "No noise-scale measurement in this run: " + "; ".join(reasons) + "."
    try:
        asked = run.config.get("science", {}).get("noise_scale", False)
    except tomllib.TOMLDecodeError:      # a run without a readable config did not ask for it
        asked = False
    return NOISE_COMING if asked else NO_NOISE


def headline(fit: CriticalBatch, science: Science) -> str:
    target = f"{fit.target:.1%}" if fit.target is not None else "no target yet"
    if not fit.available:
        text = f"Critical batch at {target} validation accuracy: unavailable ({fit.unavailable})."
    else:
        interval = (f", 95% interval {fit.b_crit_low:,.0f}–{fit.b_crit_high:,.0f}"
                    if math.isfinite(fit.b_crit_low) else "")
        text = (f"Critical batch at {target} validation accuracy: {fit.b_crit:,.0f}{interval} "
                f"({'tuned over learning rates' if fit.tuned else 'one learning rate per batch size'}; "
                f"R² {fit.r2:.2f}). Beyond about {REGIME_FACTOR * fit.b_crit:,.0f}, larger batches pay examples "
                "without saving steps.")
    noise = science.noise
    text += (f" Noise scale B_simple up to the target: {noise.b_simple:,.0f}." if not noise.unavailable
             else f" Noise scale: {noise.unavailable}.")
    return text

