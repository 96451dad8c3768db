"""The Science tab's Findings: a card per claim of the usual batch-size advice with its verdict, the numbers behind
it and its evidence plot. The plot draws the series the finding returns (engine.science.findings.evidence.
EvidencePlot): each seed's point, so the spread that makes a verdict inconclusive is in sight, and the lines the
finding computed. This view does no statistics of its own."""
from __future__ import annotations

import html

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from engine.science.findings import Finding
from engine.science.findings.evidence import EvidencePlot
from engine.science.report import VERDICT_COLORS, VERDICT_WORDS
from gui.colors import batch_size_color
from gui.plotkit import PlotColors, captioned_plots, make_pen, style_plot_item

PLOT_HEIGHT = 210
LOG_Y_MIN_RATIO = 10
# The lines after the first (the summary the verdict compares): fits solid, rules dashed, told apart by style.
DASHES = (Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine)
# How the key under a plot draws each pen style; the key sits with the caption, so no legend covers a point.
KEY_GLYPHS = {Qt.PenStyle.SolidLine: "━━", Qt.PenStyle.DashLine: "– –", Qt.PenStyle.DotLine: "···",
              Qt.PenStyle.DashDotLine: "–·–"}


class FindingCard(QFrame):
    """One claim: verdict, claim and evidence on the left, the evidence plot and its caption on the right (hidden
    for a claim the run cannot test). Made once and refilled for each run: a plot widget costs a fifth of a
    second to build, and the cards are refilled whenever the tab shows another run or theme."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("findingCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.finding: Finding | None = None
        layout = QHBoxLayout(self)
        text = QVBoxLayout()
        self.verdict, self.claim, self.evidence = QLabel(), QLabel(), QLabel()
        self.evidence.setTextFormat(Qt.TextFormat.PlainText)
        for label in (self.verdict, self.claim, self.evidence):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            text.addWidget(label)
        text.addStretch(1)
        layout.addLayout(text, 2)
        self.plot_box = QWidget()
        grid = QGridLayout(self.plot_box)
        grid.setContentsMargins(0, 0, 0, 0)
        plots, captions = captioned_plots(grid, {"evidence": ""}, {"evidence": ""})
        self.plot, self.caption = plots["evidence"], captions["evidence"]
        self.plot.setTitle(None)        # the claim beside it is the title
        self.plot.setFixedHeight(PLOT_HEIGHT)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.plot_box, 3)

    def show_finding(self, finding: Finding, colors: PlotColors) -> None:
        self.finding = finding
        color = VERDICT_COLORS.get(finding.verdict, colors.muted_text.name())
        self.verdict.setText(f"<b style='color:{color}'>{VERDICT_WORDS[finding.verdict]}</b>")
        self.claim.setText(f"<b>{html.escape(finding.claim, quote=False)}</b>")
        self.evidence.setText(finding.evidence)
        self.plot.clear()
        self.plot_box.setVisible(finding.plot is not None)
        if finding.plot is not None:
            key = draw_evidence(self.plot, finding.plot, colors)
            self.caption.setText(f"{key}<br/>{html.escape(finding.plot.caption, quote=False)}")

    def shows_plot(self) -> bool:
        return not self.plot_box.isHidden()


def spans_a_decade(values: list[float]) -> bool:
    """Whether a log axis suits these values: within less than a decade it may have no labelled tick at all
    (plotkit.CompactAxis labels 1, 2 and 5 × 10^n), so a linear axis reads better there."""
    positive = [value for value in values if value > 0]
    return bool(positive) and bool(max(positive) >= LOG_Y_MIN_RATIO * min(positive))


def draw_evidence(plot: pg.PlotWidget, evidence: EvidencePlot, colors: PlotColors) -> str:
    """A point per seed coloured by batch size, then the finding's lines; returns their key (rich text)."""
    shown = evidence.values + [value for line in evidence.lines for value in line.values]
    plot.setLogMode(x=True, y=evidence.log_y and spans_a_decade(shown))
    plot.setBackground(colors.background)
    style_plot_item(plot.getPlotItem(), colors)
    plot.setLabel("bottom", "batch size")
    plot.setLabel("left", evidence.y_label)
    sizes = sorted(set(evidence.batch_sizes))
    plot.plot(evidence.batch_sizes, evidence.values, pen=None, symbol="o", symbolSize=7, symbolPen=None,
              symbolBrush=[pg.mkBrush(batch_size_color(size, sizes)) for size in evidence.batch_sizes])
    dots = "".join(f"<span style='color:{batch_size_color(size, sizes).name()}'>●</span>"
                   for size in (sizes[0], sizes[len(sizes) // 2], sizes[-1]))
    key = [f"{dots}&nbsp;each&nbsp;seed&nbsp;(colour:&nbsp;batch&nbsp;size)"]
    dashed = 0
    for index, line in enumerate(evidence.lines):
        color, width, style = colors.muted_text, 1.5, Qt.PenStyle.SolidLine
        if index == 0:
            color, width = colors.text, 2
        elif line.dashed:
            style = DASHES[dashed % len(DASHES)]
            dashed += 1
        plot.plot(line.batch_sizes, line.values, pen=make_pen(color, width, style))
        # Each entry kept on one line: a key wrapped inside a name reads as two entries.
        entry = f"{KEY_GLYPHS[style]} {html.escape(line.name)}".replace(" ", "&nbsp;")
        key.append(f"<span style='color:{color.name()}'>{entry}</span>")
    return "&nbsp;&nbsp; ".join(key)


class FindingsView(QWidget):
    """The cards of a run's findings, one under the other, in the order the engine judges the claims."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("findingsView")
        self.cards_layout = QVBoxLayout(self)
        self.cards_layout.setContentsMargins(0, 0, 0, 0)
        self._pool: list[FindingCard] = []
        self._shown = 0

    @property
    def cards(self) -> list[FindingCard]:
        """The cards on screen, one per finding."""
        return self._pool[:self._shown]

    def set_findings(self, findings: list[Finding]) -> None:
        colors = PlotColors.from_palette(self.palette())
        while len(self._pool) < len(findings):
            self._pool.append(FindingCard(self))
            self.cards_layout.addWidget(self._pool[-1])
        for card, finding in zip(self._pool, findings):
            card.show_finding(finding, colors)
        for index, card in enumerate(self._pool):
            card.setVisible(index < len(findings))
        self._shown = len(findings)
