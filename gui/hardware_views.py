"""The Summary's throughput-vs-ranks card: examples per second against the number of data-parallel ranks, one line
per batch size with its ideal (linear) line, and the scaling efficiency and all-reduce share in the note.

A sweep trains every trial on one rank count, so the card compares the runs shown together (made with
sweep.data_parallel = 1, 2, 4, ...); with a single rank count it says how to see scaling. The numbers are
engine.hardware.rank_scaling's.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from engine.hardware.rank_scaling import RankScaling, rank_scaling
from gui.colors import batch_size_color
from gui.plotkit import PlotColors, make_pen, with_alpha
from gui.summary_cards import Level, SummaryCard, SummaryPlot, SummaryPoint, SummarySeries

RANK_SCALING_PLOT = SummaryPlot(
    "rank_scaling", "Throughput vs ranks", ("samples_per_s",),
    "Higher is better: training examples per second against the number of data-parallel ranks, one line per batch "
    "size. Dashed: ideal linear scaling from the fewest ranks; the gap is lost to communication and waiting.")


class RankScalingCard(SummaryCard):
    """Throughput against ranks for the runs shown; `scaling` holds what was drawn."""

    def __init__(self, on_click=None):
        super().__init__(RANK_SCALING_PLOT, on_click)
        self.plot_item().setLabel("bottom", "Ranks (processes per trial)")
        self.scaling = RankScaling([], [], "")

    def draw(self, series: list[SummarySeries], sizes: list[int], theme: PlotColors,
             levels: tuple[Level, ...] = ()) -> None:
        runs = list({id(one.run): one.run for one in series}.values())
        self.scaling = scaling = rank_scaling(runs)
        plot = self.plot_item()
        plot.clear()
        self.points, self.missing, self.levels = [], [], ()
        plot.getAxis("bottom").setTicks([[(math.log2(ranks), str(ranks)) for ranks in scaling.rank_counts], []])
        compared = len(scaling.rank_counts) > 1
        for batch_size in sorted({point.batch_size for point in scaling.points}):
            measured = scaling.at(batch_size)
            color = batch_size_color(batch_size, sizes, dark=theme.dark)
            xs = [math.log2(point.ranks) for point in measured]
            if compared:
                plot.addItem(pg.PlotDataItem(xs, [p.ideal_samples_per_s for p in measured],
                                             pen=make_pen(with_alpha(color, 0.7), 1.2, Qt.PenStyle.DashLine)))
            plot.addItem(pg.PlotDataItem(xs, [p.samples_per_s for p in measured],
                                         pen=make_pen(color, 1.6) if compared else None, symbol="o", symbolSize=9,
                                         symbolBrush=color, symbolPen=pg.mkPen(theme.background, width=1.2)))
            self.points += [SummaryPoint("samples_per_s", batch_size, math.nan, 0, p.samples_per_s, 0.0, color, 0,
                                         p.trials) for p in measured]
        if scaling.rank_counts:
            low, high = math.log2(min(scaling.rank_counts)), math.log2(max(scaling.rank_counts))
            plot.setXRange(low - 0.5, high + 0.5, padding=0)
        plot.getAxis("left").setStyle(showValues=bool(self.points))
        plot.enableAutoRange(axis="y")
        self._show_note(scaling, compared)

    def _show_note(self, scaling: RankScaling, compared: bool) -> None:
        parts = [scaling.advice] if scaling.advice else []
        most = max(scaling.rank_counts, default=1)
        if compared:
            efficiencies = [f"batch {p.batch_size} {p.efficiency:.0%}" for p in scaling.points if p.ranks == most]
            parts.append(f"Scaling efficiency at {most} ranks: {', '.join(efficiencies)}.")
        shares = [f"batch {p.batch_size} {p.communication_share:.0%}" for p in scaling.points
                  if p.ranks == most and np.isfinite(p.communication_share)]
        if shares:
            parts.append(f"All-reduce in flight at {most} ranks (share of training time): {', '.join(shares)}.")
        self.note.setText(" ".join(parts))
        self.note.setVisible(bool(parts))
