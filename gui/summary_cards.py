"""The Summary's plot cards: one quantity against batch size (log2 axis), one point per batch size and series
(mean over seeds, error bar one standard deviation), a title, a caption saying how to read it, and a note
naming the batch sizes that have no value and why.

A series is one run and one base learning rate; several are told apart by symbol and named in the notes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QFrame, QLabel, QSizePolicy, QVBoxLayout

from engine import schema
from engine.analysis import MEMORY_LABELS, MEMORY_PER_TRIAL, BatchSizeStats, memory_measure
from engine.hardware.memory_model import format_bytes, sweep_memory
from engine.runfile import RunData
from gui.colors import batch_size_color
from gui.plotkit import CompactAxis, Display, PlotColors, display, make_pen, run_line_style, style_plot_item, with_alpha

SERIES_SYMBOLS = ("o", "s", "t", "d", "p", "h")
SYMBOL_GLYPHS = {"o": "●", "s": "■", "t": "▼", "d": "◆", "p": "⬟", "h": "⬢"}
# Cards are laid out in as many columns as fit at this width or more.
MIN_CARD_WIDTH = 260


@dataclass(frozen=True)
class Measure:
    """One summary quantity: a key of TrialSummary, how it is shown, and how to read it."""
    key: str
    label: str
    display: Display
    log_y: bool = False
    needs_target: bool = False
    unmeasured: str = "no data yet"     # why a batch size without a failed trial has no value

    def column_title(self) -> str:
        return f"{self.label} ({self.display.unit})" if self.display.unit else self.label


def _measure(key: str, label: str, metric: str | None = None, *, unit: str | None = None, scale: float | None = None,
             fmt: str | None = None, log_y: bool = False, needs_target: bool = False,
             unmeasured: str = "no data yet") -> Measure:
    base = display(metric) if metric else Display(label, "")
    shown = Display(label, base.unit if unit is None else unit, base.scale if scale is None else scale,
                    base.fmt if fmt is None else fmt)
    return Measure(key, label, shown, log_y, needs_target, unmeasured)


NO_ENERGY = "not measured here (no readable energy counter)"
MEASURES: dict[str, Measure] = {m.key: m for m in (
    _measure("best_val_accuracy", "Best validation accuracy", "val_accuracy"),
    _measure("final_val_accuracy", "Final validation accuracy", "val_accuracy"),
    _measure("generalization_gap", "Generalization gap", unit="% points", scale=100.0, fmt="{:.2f}"),
    _measure("time_to_target_s", "Time to target", "wall_time_s", log_y=True, needs_target=True),
    _measure("steps_to_target", "Steps to target", "step", unit="steps", log_y=True, needs_target=True),
    _measure("samples_to_target", "Samples to target", "samples", unit="samples", log_y=True, needs_target=True),
    # Over the whole trial, evaluation excluded (engine.analysis.training_throughput), as in the trial table.
    _measure("samples_per_s", "Throughput", "samples_per_s"),
    _measure("peak_memory_bytes", "Peak memory", "peak_memory_bytes"),
    _measure("step_memory_bytes", "Memory per step", "peak_memory_bytes"),
    # Telemetry (engine.hardware.telemetry): NaN where no energy counter could be read, never 0.
    _measure("energy_per_example_j", "Energy per example", unit="J", scale=1.0, fmt="{:.3g}", log_y=True,
             unmeasured=NO_ENERGY),
    _measure("energy_to_target_j", "Energy to target", unit="J", scale=1.0, fmt="{:.3g}", log_y=True,
             needs_target=True, unmeasured=NO_ENERGY),
    _measure("gpu_utilization_percent", "GPU utilisation", unit="%", scale=1.0, fmt="{:.0f}",
             unmeasured="no GPU samples"),
)}
# Shown only where a run trained on a GPU: elsewhere every point would be missing for the same reason.
GPU_MEASURES = ("gpu_utilization_percent",)


@dataclass(frozen=True)
class SummaryPlot:
    name: str
    title: str
    measures: tuple[str, ...]      # first is drawn filled; a second (final accuracy) hollow beside it
    caption: str


SUMMARY_PLOTS: tuple[SummaryPlot, ...] = (
    SummaryPlot("accuracy", "Validation accuracy", ("best_val_accuracy", "final_val_accuracy"),
                "Higher is better. Filled: the best epoch; hollow: the last epoch. A drop at large batch sizes "
                "means they generalize worse with this budget.{levels}"),
    SummaryPlot("generalization_gap", "Generalization gap", ("generalization_gap",),
                "Train minus validation accuracy at the end. Closer to zero is better; a large gap means the model "
                "memorizes the training set."),
    SummaryPlot("time_to_target", "Time to target", ("time_to_target_s",),
                "Lower is better: seconds of training until validation accuracy first reached {target}. The "
                "lowest point is the fastest batch size on this machine."),
    SummaryPlot("steps_to_target", "Steps to target", ("steps_to_target",),
                "Lower is better: optimizer steps until {target}. While doubling the batch size halves the steps, "
                "larger batches are free speed-up; where the curve flattens is the critical batch size."),
    SummaryPlot("samples_to_target", "Samples to target", ("samples_to_target",),
                "Lower is better: training examples needed to reach {target}. Flat means larger batches waste "
                "no data; rising means they need more examples for the same result."),
    SummaryPlot("throughput", "Throughput", ("samples_per_s",),
                "Higher is better: training examples per second over the whole trial, evaluation excluded (as "
                "Samples/s in the trial table). It stops growing once the device is saturated."),
    SummaryPlot("energy", "Energy per example", ("energy_per_example_j",),
                "Lower is better: joules per training example, CPU packages (RAPL) and GPU (NVML) as measured "
                "during the trial. Larger batches often cost less per example until the device is saturated. "
                "Missing where this machine has no readable energy counter (RAPL needs permission; NVML an "
                "NVIDIA GPU)."),
    SummaryPlot("energy_to_target", "Energy to target", ("energy_to_target_j",),
                "Lower is better: joules used until validation accuracy first reached {target}, its evaluations "
                "included (the energy counters at that moment). The lowest point gets there on the least energy."),
    SummaryPlot("gpu_utilization", "GPU utilisation", ("gpu_utilization_percent",),
                "Higher means the GPU is kept busy: its utilisation averaged over the trial (NVML, sampled ten "
                "times a second). Small batches that leave it idle waste the device."),
    SummaryPlot("memory", "Peak memory", ("peak_memory_bytes",),
                "Lower is better; it must fit on the device. Peak tensor memory of each trial, which grows with "
                "the batch size (activations)."),
)
SUMMARY_PLOT_NAMES = tuple(plot.name for plot in SUMMARY_PLOTS)
# On the CPU, peak memory is the process's resident peak (engine.analysis.MEMORY_PROCESS): it never falls from one
# trial to the next, so its shape says nothing about the batch size.
PROCESS_MEMORY_TITLE = "Peak memory, whole process"
PROCESS_MEMORY_CAPTION = (f"Peak resident memory of the whole process ({MEMORY_LABELS['process']}). The process "
                          "keeps what earlier trials used, so the values only grow in the order the trials ran and "
                          "say nothing about one batch size (so the points are not joined); the largest is what "
                          "the sweep needed.")


@dataclass
class SummarySeries:
    """The per-batch-size statistics of one run, one base learning rate and one precision, and how the series is
    named."""
    run_index: int
    run: RunData
    base_lr: float
    stats: list[BatchSizeStats]
    label: str                     # "" when only one series is shown
    symbol: str
    pick: int | None = None        # the recommended batch size of this series, if its verdict has one
    roles: dict[int, str] = field(default_factory=dict)   # batch size -> role in the run's verdict
    precision: str = ""            # the series' precision (sweep.precisions), or the run's train.precision


@dataclass(frozen=True)
class SummaryPoint:
    """A point as drawn: the mean and standard deviation over seeds in the units shown (% for accuracy)."""
    measure: str
    batch_size: int
    base_lr: float
    run_index: int
    mean: float
    std: float
    color: QColor
    reached_target: int
    trials: int


@dataclass(frozen=True)
class Level:
    """A horizontal reference line in the units shown: the target (dashed) or a no-skill baseline (dotted)."""
    value: float
    label: str                     # "the target, 55.0%", named in the caption and the line's tooltip
    baseline: bool
    widen: bool                    # the view widens to show it; otherwise only where it falls in the data's range


def levels_caption(levels: tuple[Level, ...]) -> str:
    parts = [f"{'dotted' if level.baseline else 'dashed'}: {level.label}" for level in levels]
    return f" Lines: {'; '.join(parts)}." if parts else ""


@dataclass(frozen=True)
class MissingPoint:
    """A batch size of a series without a value in one plot, shown as × with the reason."""
    series: str                    # the series label ("" with a single series)
    batch_size: int
    reason: str                    # "not reached", "out of memory", "no data yet", ...


def status_words(statuses: dict[str, int]) -> str:
    return ", ".join(sorted(schema.STATUS_LABELS.get(status, status) for status in statuses))


def missing_reason(entry: BatchSizeStats, measure: Measure) -> str:
    failed = entry.failed()
    if measure.needs_target and entry.reached_target == 0:
        if failed and sum(failed.values()) == entry.trials:
            return status_words(failed)
        return "not reached"
    if failed:
        return status_words(failed)
    return measure.unmeasured


class SummaryCard(QFrame):
    """A plot with its title, caption and a note on missing batch sizes; `draw` fills it from series."""

    def __init__(self, spec: SummaryPlot, on_click=None):
        super().__init__()
        self.spec = spec
        self.setObjectName("summaryCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumWidth(MIN_CARD_WIDTH)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 8)
        layout.setSpacing(2)
        self.title = QLabel()
        self.title.setObjectName("summaryCardTitle")
        layout.addWidget(self.title)
        self.plot_widget = pg.PlotWidget(axisItems={"left": CompactAxis("left"), "bottom": CompactAxis("bottom")})
        self.plot_widget.setMinimumHeight(150)
        # Ignored: the plot takes what the card can spare, the captions keep the height their text needs.
        self.plot_widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)
        plot = self.plot_widget.getPlotItem()
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.getViewBox().setMouseEnabled(x=False, y=False)
        plot.getViewBox().setDefaultPadding(0.08)
        plot.setLabel("bottom", "Batch size")
        plot.getAxis("left").setWidth(52)
        # The last batch size sits half a tick step from the right edge; its label is wider than that, so let
        # it reach into a right margin kept free for it instead of being hidden.
        plot.getAxis("bottom").setStyle(hideOverlappingLabels=18)
        plot.layout.setContentsMargins(0, 0, 16, 0)
        layout.addWidget(self.plot_widget, 1)
        self.caption = QLabel(spec.caption)
        self.caption.setObjectName("summaryCaption")
        self.caption.setWordWrap(True)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.caption)
        self.note = QLabel()
        self.note.setObjectName("summaryNote")
        self.note.setWordWrap(True)
        self.note.hide()
        layout.addWidget(self.note)
        self.points: list[SummaryPoint] = []
        self.missing: list[MissingPoint] = []
        self.levels: tuple[Level, ...] = ()
        self._title_text = spec.title
        self._theme: PlotColors | None = None
        # Points are joined by a line where neighbours are comparable; not where values only accumulate.
        self.join_points = True
        if on_click is not None:
            self.plot_widget.scene().sigMouseClicked.connect(lambda *_: on_click(spec.name))

    def plot_item(self) -> pg.PlotItem:
        return self.plot_widget.getPlotItem()

    def set_texts(self, title: str, caption: str) -> None:
        self._title_text = title
        self.caption.setText(caption)
        if self._theme is not None:
            self.apply_theme(self._theme)

    def apply_theme(self, theme: PlotColors) -> None:
        self._theme = theme
        muted = theme.muted_text
        muted_css = f"rgba({muted.red()},{muted.green()},{muted.blue()},{muted.alphaF():.2f})"
        self.plot_widget.setBackground(theme.background)
        style_plot_item(self.plot_item(), theme)
        self.caption.setStyleSheet(f"color: {muted_css};")
        self.note.setStyleSheet(f"color: {theme.text.name()};")
        unit = MEASURES[self.spec.measures[0]].display.unit
        unit_html = f" <span style='color:{muted_css}; font-weight:normal'>({unit})</span>" if unit else ""
        self.title.setText(f"<b>{self._title_text}</b>{unit_html}")

    def minimum_height_for_width(self, width: int) -> int:
        """The height this card needs at a width: the plot at its minimum, every caption line readable."""
        margins = self.layout().contentsMargins()
        text_width = max(1, width - margins.left() - margins.right() - 2 * self.frameWidth())
        labels = [self.title, self.caption] + ([self.note] if not self.note.isHidden() else [])
        height = sum(label.heightForWidth(text_width) if label.wordWrap() else label.sizeHint().height()
                     for label in labels)
        spacing = self.layout().spacing() * (len(labels))
        return (height + self.plot_widget.minimumHeight() + spacing + margins.top() + margins.bottom()
                + 2 * self.frameWidth())

    # ---------------------------------------------------------------- drawing

    def uses_log_y(self, series: list[SummarySeries]) -> bool:
        """Log y for quantities that halve as the batch size doubles, when they span more than a factor 4."""
        measure = MEASURES[self.spec.measures[0]]
        if not measure.log_y:
            return False
        values = [entry.mean[measure.key] for one in series for entry in one.stats
                  if math.isfinite(entry.mean[measure.key]) and entry.mean[measure.key] > 0]
        return bool(values) and max(values) / min(values) > 4

    def draw(self, series: list[SummarySeries], sizes: list[int], theme: PlotColors,
             levels: tuple[Level, ...] = ()) -> None:
        """Draw the series, and `levels` as horizontal reference lines (named in the caption, not on the plot,
        where a label would cover points)."""
        plot = self.plot_item()
        plot.clear()
        ticks = [(math.log2(size), str(size)) for size in sizes]
        plot.getAxis("bottom").setTicks([ticks, []])
        log_y = self.uses_log_y(series)
        plot.getAxis("left").setLogMode(False, log_y)
        missing: dict[tuple[str, int], str] = {}
        points: list[SummaryPoint] = []
        partial: list[tuple[float, float, str]] = []
        picks: list[tuple[float, float]] = []
        tops: list[float] = []
        variants = len(self.spec.measures)
        for one in series:
            for variant, key in enumerate(self.spec.measures):
                measure = MEASURES[key]
                offset = (variant - (variants - 1) / 2) * 0.09
                xs, ys, tops_err, bottoms_err, colors = [], [], [], [], []
                for entry in one.stats:
                    mean = entry.mean[key] * measure.display.scale
                    std = entry.std[key] * measure.display.scale
                    if not math.isfinite(mean) or (log_y and mean <= 0):
                        missing.setdefault((one.label, entry.batch_size), missing_reason(entry, measure))
                        continue
                    x = math.log2(entry.batch_size) + offset
                    std = std if math.isfinite(std) else 0.0
                    if log_y:
                        y = math.log10(mean)
                        top = math.log10(mean + std) - y
                        bottom = y - math.log10(mean - std) if mean - std > 0 else 0.0
                    else:
                        y, top, bottom = mean, std, std
                    xs.append(x)
                    ys.append(y)
                    tops_err.append(top)
                    bottoms_err.append(bottom)
                    tops.append(y + top)
                    colors.append(batch_size_color(entry.batch_size, sizes, dark=theme.dark))
                    points.append(SummaryPoint(key, entry.batch_size, entry.base_lr, one.run_index, mean, std,
                                               colors[-1], entry.reached_target, entry.trials))
                    if measure.needs_target and 0 < entry.reached_target < entry.trials:
                        partial.append((x, y, f"{entry.reached_target}/{entry.trials}"))
                    if variant == 0 and entry.batch_size == one.pick:
                        picks.append((x, y))
                if not xs:
                    continue
                if variant == 0 and self.join_points:
                    plot.addItem(pg.PlotDataItem(xs, ys, pen=make_pen(with_alpha(theme.neutral_line, 0.45), 1.4,
                                                                        run_line_style(one.run_index))))
                plot.addItem(pg.ErrorBarItem(x=np.array(xs), y=np.array(ys), top=np.array(tops_err),
                                             bottom=np.array(bottoms_err), beam=0.12,
                                             pen=pg.mkPen(with_alpha(theme.text, 0.55), width=1.2)))
                hollow = variant > 0
                brushes = [pg.mkBrush(theme.background if hollow else color) for color in colors]
                pens = [pg.mkPen(color, width=2) if hollow else pg.mkPen(theme.background, width=1.2)
                        for color in colors]
                scatter = pg.ScatterPlotItem(xs, ys, symbol=one.symbol, size=11, brush=brushes, pen=pens,
                                             antialias=True)
                scatter.setZValue(10)
                plot.addItem(scatter)
        if picks:
            ring = pg.ScatterPlotItem([x for x, _ in picks], [y for _, y in picks], symbol="o", size=22,
                                      brush=None, pen=pg.mkPen(theme.text, width=1.6), antialias=True)
            ring.setToolTip("The recommended batch size")
            ring.setZValue(11)
            plot.addItem(ring)
        for x, y, text in partial:
            item = pg.TextItem(text, color=theme.muted_text, anchor=(-0.2, 1.0))
            item.setToolTip("seeds that reached the target (the mean is over those)")
            plot.addItem(item, ignoreBounds=True)
            item.setPos(x, y)
        for level in levels:
            style = Qt.PenStyle.DotLine if level.baseline else Qt.PenStyle.DashLine
            line = pg.InfiniteLine(pos=level.value, angle=0, movable=False,
                                   pen=make_pen(with_alpha(theme.text, 0.6), 1.2, style))
            line.setToolTip(level.label)
            plot.addItem(line, ignoreBounds=not level.widen)
        self.levels = tuple(levels)
        self.points = points
        self.missing = [MissingPoint(label, size, reason) for (label, size), reason in missing.items()]
        self._draw_missing(plot, tops, theme, len(series) > 1)
        # With no value at all the y axis would number a made-up range around the × marks (-0.4 to 0.4 J).
        plot.getAxis("left").setStyle(showValues=bool(points))
        plot.enableAutoRange()
        if sizes:
            low, high = math.log2(min(sizes)), math.log2(max(sizes))
            plot.setXRange(low - 0.5, high + 0.5, padding=0)

    def _draw_missing(self, plot: pg.PlotItem, tops: list[float], theme: PlotColors, named: bool) -> None:
        """Batch sizes without a value are marked at the top of the plot with the reason, never drawn as 0."""
        if not self.missing:
            self.note.hide()
            return
        finite = [value for value in tops if math.isfinite(value)]
        if finite:
            low, high = min(finite), max(finite)
            span = high - low if high > low else (abs(high) if high else 1.0)
            level = high + 0.12 * span
        else:
            level = 0.0
        xs = sorted({math.log2(point.batch_size) for point in self.missing})
        marks = pg.ScatterPlotItem(xs, [level] * len(xs), symbol="x", size=11,
                                   pen=pg.mkPen(theme.muted_text, width=1.5), brush=None)
        marks.setToolTip("No value for this batch size: see the note under the plot")
        plot.addItem(marks)
        groups: dict[str, dict[str, list[int]]] = {}
        for point in sorted(self.missing, key=lambda p: (p.series, p.batch_size)):
            groups.setdefault(point.reason, {}).setdefault(point.series, []).append(point.batch_size)
        parts = []
        for reason, by_series in groups.items():
            sizes = "; ".join(f"{series + ' ' if named and series else ''}batch size {', '.join(map(str, found))}"
                              for series, found in by_series.items())
            parts.append(f"{reason}: {sizes}")
        self.note.setText("× " + "; ".join(parts))
        self.note.show()


def gpu_sampled(series: list[SummarySeries]) -> bool:
    """Whether any trial shown had its GPU sampled: the GPU card and column are shown only then."""
    return any(math.isfinite(entry.mean[key]) for one in series for entry in one.stats for key in GPU_MEASURES)


def memory_per_trial(runs: list[RunData]) -> bool:
    """Whether every run measured peak memory per trial (CUDA); otherwise it is the process's peak (CPU)."""
    return bool(runs) and all(memory_measure(run) == MEMORY_PER_TRIAL for run in runs)


def peak_memory_texts(runs: list[RunData]) -> tuple[str, str]:
    """Title and caption of peak_memory_bytes for what the runs measured."""
    spec = next(plot for plot in SUMMARY_PLOTS if plot.name == "memory")
    if memory_per_trial(runs):
        return spec.title, spec.caption
    return PROCESS_MEMORY_TITLE, PROCESS_MEMORY_CAPTION


def memory_card(runs: list[RunData]) -> tuple[str, str, str]:
    """The measure, title and caption of the memory card: each trial's step memory where every run measured it
    (engine.hardware.step_memory), with the sweep's memory model in the caption; else peak_memory_bytes."""
    if not runs or not all(any(math.isfinite(t.step_memory_bytes) for t in run.trials) for run in runs):
        return ("peak_memory_bytes", *peak_memory_texts(runs))
    fits = [f"{run.path.stem}: {text}" if len(runs) > 1 else text
            for run in runs if (text := sweep_memory(run).text())]
    return ("step_memory_bytes", STEP_MEMORY_TITLE, f"{STEP_MEMORY_CAPTION} {' '.join(fits)}")


def draw_memory_fit(card: "SummaryCard", runs: list[RunData], sizes: list[int], theme: PlotColors) -> None:
    """Each run's fitted memory = fixed + per example × batch size as a dashed line across the card's batch sizes,
    and the device's memory as a dotted line (after card.draw, which clears the plot)."""
    if not sizes:
        return
    scale = MEASURES["step_memory_bytes"].display.scale
    xs = np.linspace(math.log2(min(sizes)), math.log2(max(sizes)), 64)
    shown = [point.mean for point in card.points]
    for run in runs:
        memory = sweep_memory(run)
        if memory.model is None:
            continue
        card.plot_item().addItem(pg.PlotDataItem(
            xs, [memory.model.bytes_at(2**x) * scale for x in xs], name=MEMORY_FIT_NAME,
            pen=make_pen(with_alpha(theme.text, 0.6), 1.2, Qt.PenStyle.DashLine)))
        if memory.device_bytes is not None:
            limit = memory.device_bytes * scale
            line = pg.InfiniteLine(pos=limit, angle=0, movable=False,
                                   pen=make_pen(with_alpha(theme.text, 0.75), 1.4, Qt.PenStyle.DotLine))
            line.setToolTip(f"{MEMORY_LIMIT_NAME}: {format_bytes(memory.device_bytes)}")
            # A limit hundreds of times above every point would flatten them all to the axis: then the caption
            # names it and the line stays out of view.
            near = bool(shown) and limit <= MEMORY_LIMIT_IN_VIEW * max(shown)
            card.plot_item().addItem(line, ignoreBounds=not near)


MEMORY_FIT_NAME = "memory model fit"
MEMORY_LIMIT_NAME = "the device's memory"
MEMORY_LIMIT_IN_VIEW = 4     # the limit line widens the view when within this factor of the largest point
STEP_MEMORY_TITLE = "Memory per training step"
STEP_MEMORY_CAPTION = ("Lower is better; it must fit on the device. The memory of each trial's second training step, "
                       "which belongs to the trial (not to what ran before it) and grows with the batch size as "
                       "activations do (docs/memory.md). Dashed: the fitted memory model; dotted: the device's memory, "
                       "drawn when within 4× of the points.")


class KeyCard(QFrame):
    """How to read the cards: colour, points and error bars, symbols of the series, rings and ×."""

    def __init__(self):
        super().__init__()
        self.setObjectName("summaryCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        title = QLabel("How to read these")
        title.setObjectName("summaryCardTitle")
        layout.addWidget(title)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.text, 1)

    def update_key(self, sizes: list[int], series: list[SummarySeries], theme: PlotColors) -> None:
        swatches = " ".join(
            f"<span style='color:{batch_size_color(size, sizes, dark=theme.dark).name()}'>●</span>&nbsp;{size}"
            for size in sizes)
        paragraph = "<p style='margin:0 0 6px 0'>"
        lines = [f"{paragraph}<b>Colour</b> is the batch size:<br>{swatches}</p>",
                 f"{paragraph}<b>Points</b> are the mean over seeds; <b>error bars</b> one standard deviation "
                 "(none with a single seed).</p>"]
        if len(series) > 1:
            keys = "<br>".join(f"{SYMBOL_GLYPHS[one.symbol]}&nbsp;{one.label}" for one in series)
            lines.append(f"{paragraph}<b>Symbols</b> tell the series apart:<br>{keys}</p>")
        if any(one.pick is not None for one in series):
            lines.append(f"{paragraph}<b>○ A ring</b> marks the recommended batch size.</p>")
        lines.append("<p style='margin:0'><b>×</b> marks a batch size with no value, with the reason "
                     "(not reached, out of memory, ...).</p>")
        self.text.setText("".join(lines))
