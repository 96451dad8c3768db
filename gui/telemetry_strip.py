"""The Live tab's telemetry strip: one compact row under the plots with what the machine is doing for the trial on
screen (the one selected in the trial table, else the running one, else the last with telemetry): CPU
utilisation, the process's memory, the energy so far, and on a GPU its utilisation, memory, power, temperature,
SM clock and clock event reasons. Each figure is its current value as text beside a sparkline of the last minute.

It reads the trial's telemetry rows (engine/hardware/telemetry.py): the same RunData whether the run is trained
here, followed from a file or reopened. A figure that was not measured shows "—" with the reason as its tooltip,
never 0. Redraws are throttled: data only marks the strip dirty, a timer draws at most REDRAW_INTERVAL_MS apart,
and only when the trial's telemetry grew.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from engine import schema
from engine.hardware.telemetry import clock_event_words, unavailable_reason
from engine.runfile import RunData, TrialData
from gui.colors import batch_size_color
from gui.plotkit import PlotColors, make_pen

WINDOW_S = 60.0                  # the sparklines show the last minute of the trial
REDRAW_INTERVAL_MS = 500         # telemetry is sampled at 10 Hz; twice a second is live enough for a strip
MISSING = "—"
SPARKLINE_SIZE = (64, 26)
# Every figure takes this width; the strip puts as many in a row as fit and wraps the rest onto another row, so it
# never widens the window (nine GPU figures need ~1,400 px).
CELL_WIDTH = 150
TITLE_WIDTH = 190                # "batch size 2048 · seed 1" on one line


def _bytes(value: float) -> str:
    return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:,.0f} MiB"


def _energy(value: float) -> str:
    return f"{value / 1000:.3g} kJ" if value >= 1000 else f"{value:.3g} J"


@dataclass(frozen=True)
class Figure:
    """One figure of the strip: a telemetry column (or the energy, CPU and GPU together), its label, how its
    value reads, what it means, and whether it has a sparkline."""
    key: str
    label: str
    text: Callable[[float], str]
    help: str
    gpu: bool = False
    sparkline: bool = True


def energy_column(telemetry: dict[str, np.ndarray]) -> np.ndarray:
    """CPU packages and GPU energy since the trial started, row by row: the sum of the counters that were read
    (NaN where neither was)."""
    parts = [telemetry[key] for key in ("cpu_energy_j", "gpu_energy_j") if np.isfinite(telemetry[key]).any()]
    if not parts:
        return np.full(len(telemetry["time_s"]), np.nan)
    return np.sum([np.nan_to_num(part, nan=0.0) for part in parts], axis=0)


FIGURES: tuple[Figure, ...] = (
    Figure("cpu_percent", "CPU", lambda v: f"{v:,.0f} %",
           "CPU utilisation of the training process, in % of one core (200 % is two cores busy)."),
    Figure("process_rss_bytes", "Memory", _bytes, "Resident memory of the training process."),
    Figure("energy_j", "Energy", _energy,
           "Energy used since the trial started: the CPU packages (RAPL) and the GPU, where their counters can "
           "be read."),
    Figure("gpu_utilization", "GPU", lambda v: f"{v:.0f} %", "Share of time the GPU was running a kernel.", gpu=True),
    Figure("gpu_memory_used_bytes", "GPU memory", _bytes, "GPU memory in use (by every process on the GPU).",
           gpu=True),
    Figure("gpu_power_w", "Power", lambda v: f"{v:,.0f} W", "GPU board power draw.", gpu=True),
    Figure("gpu_temperature_c", "Temp", lambda v: f"{v:.0f} °C", "GPU temperature.", gpu=True),
    Figure("gpu_sm_clock_mhz", "SM clock", lambda v: f"{v:,.0f} MHz", "GPU streaming multiprocessor clock.",
           gpu=True),
    Figure("gpu_throttle_reasons", "Clocks held by", clock_event_words,
           "Why the GPU runs below its top clock now (NVML clock event reasons); 'none' when it does not.",
           gpu=True, sparkline=False),
)
GPU_REASON_COLUMN = "gpu_utilization"


def shown_trial(runs: list[RunData], chosen: str | None = None) -> TrialData | None:
    """The trial the strip follows: the one named `chosen` (selected in the trial table) where a run has it, else
    the first run's running trial (the last of them when several train at once), else its last trial with
    telemetry; None when there is none."""
    if not runs:
        return None
    named = [trial for run in runs for trial in run.trials if trial.name == chosen]
    if named:
        return named[0]
    measured = [trial for trial in runs[0].trials if len(trial.telemetry["time_s"])]
    running = [trial for trial in measured if trial.status == schema.RUNNING]
    return (running or measured or [None])[-1]


class _Cell(QWidget):
    """A figure's label, current value and sparkline."""

    def __init__(self, figure: Figure):
        super().__init__()
        self.figure = figure
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        texts = QVBoxLayout()
        texts.setSpacing(0)
        self.name = QLabel(figure.label)
        self.name.setObjectName("hint")
        self.value = QLabel(MISSING)
        self.value.setStyleSheet("font-weight: 600;")
        texts.addWidget(self.name)
        texts.addWidget(self.value)
        layout.addLayout(texts, 1)
        self.plot: pg.PlotWidget | None = None
        self.curve: pg.PlotDataItem | None = None
        if figure.sparkline:
            self.plot = pg.PlotWidget(background=None)
            self.plot.setFixedSize(*SPARKLINE_SIZE)
            self.plot.hideAxis("left")
            self.plot.hideAxis("bottom")
            self.plot.setMouseEnabled(x=False, y=False)
            self.plot.setMenuEnabled(False)
            self.plot.hideButtons()
            self.plot.getPlotItem().setContentsMargins(0, 0, 0, 0)
            self.plot.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            self.curve = self.plot.plot([], [], antialias=True)
            layout.addWidget(self.plot)
        self.setToolTip(figure.help)
        self.setFixedWidth(CELL_WIDTH)


class TelemetryStrip(QFrame):
    """The row of figures. `set_runs` says what is shown, `mark_dirty` that it grew."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("telemetryStrip")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._runs: list[RunData] = []
        self._trial: TrialData | None = None
        self._chosen: str | None = None
        self._drawn: tuple = ()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 2, 8, 2)
        layout.setSpacing(12)
        self._title = QLabel()
        self._title.setObjectName("hint")
        self._title.setWordWrap(True)
        self._title.setFixedWidth(TITLE_WIDTH)
        layout.addWidget(self._title, 0, Qt.AlignmentFlag.AlignTop)
        self._grid = QGridLayout()
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(10)
        self._grid.setVerticalSpacing(2)
        layout.addLayout(self._grid, 1)
        self._cells = {figure.key: _Cell(figure) for figure in FIGURES}
        # One figure for the whole GPU when it was not sampled at all (a CPU machine): a row of dashes says less.
        self._no_gpu = _Cell(Figure("gpu", "GPU", str, "", gpu=True, sparkline=False))
        for cell in self._all_cells():
            cell.setParent(self)          # placed by _reflow
            cell.setVisible(False)
        self._flowed: tuple = ()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self.redraw_now)
        self.setVisible(False)

    def set_runs(self, runs: list[RunData]) -> None:
        self._runs = list(runs)
        self._drawn = ()
        self.redraw_now()

    def mark_dirty(self) -> None:
        """The runs' data grew: drawn within REDRAW_INTERVAL_MS, however often this is called."""
        if not self._timer.isActive():
            self._timer.start()

    def choose_trial(self, name: str | None) -> None:
        """Show this trial's telemetry (None: follow the running trial again)."""
        self._chosen = name
        self._drawn = ()
        self.redraw_now()

    def trial(self) -> TrialData | None:
        """The trial whose telemetry is shown."""
        return self._trial

    def title(self) -> str:
        return self._title.text()

    def figure_text(self, key: str) -> tuple[str, str]:
        """A figure's value as shown and its tooltip ('gpu': the single GPU figure of a machine without one)."""
        cell = self._no_gpu if key == "gpu" else self._cells[key]
        return cell.value.text(), cell.toolTip()

    def shown_figures(self) -> list[str]:
        return [key for key, cell in [*self._cells.items(), ("gpu", self._no_gpu)] if not cell.isHidden()]

    def sparkline(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """The points of a figure's sparkline (seconds since the trial started, values)."""
        x, y = self._cells[key].curve.getData()
        return (np.empty(0), np.empty(0)) if x is None else (x, y)

    def _all_cells(self) -> list[_Cell]:
        return [*self._cells.values(), self._no_gpu]

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._reflow()

    def _reflow(self) -> None:
        """As many figures in a row as the width holds, the rest on the next rows."""
        shown = [cell for cell in self._all_cells() if not cell.isHidden()]
        room = self.width() - TITLE_WIDTH - 40
        per_row = max(1, room // (CELL_WIDTH + self._grid.horizontalSpacing()))
        flowed = (per_row, tuple(id(cell) for cell in shown))
        if flowed == self._flowed:
            return
        self._flowed = flowed
        for cell in self._all_cells():
            self._grid.removeWidget(cell)
        for index, cell in enumerate(shown):
            self._grid.addWidget(cell, index // per_row, index % per_row)
        for column in range(len(self._all_cells()) + 1):
            self._grid.setColumnStretch(column, 1 if column == per_row else 0)

    def redraw_now(self) -> None:
        self._timer.stop()
        trial = shown_trial(self._runs, self._chosen)
        state = (id(trial), len(trial.telemetry["time_s"]) if trial else 0, trial.status if trial else "")
        if state == self._drawn and trial is self._trial:
            return
        self._trial, self._drawn = trial, state
        if trial is None:
            self._title.setText("Telemetry: none recorded in this run" if self._runs else "")
            for cell in self._all_cells():
                cell.setVisible(False)
        else:
            self._draw(trial)
        self._reflow()
        self.setVisible(bool(self._runs))

    def _draw(self, trial: TrialData) -> None:
        telemetry = trial.telemetry
        state = "" if trial.status == schema.RUNNING else f" · {schema.STATUS_LABELS.get(trial.status, trial.status)}"
        self._title.setText(f"<b>Telemetry</b>{state}<br>batch size {trial.batch_size} · seed {trial.seed}")
        self._title.setToolTip("Telemetry of this trial, sampled about ten times a second; the lines show its "
                               "last minute.")
        time_s = telemetry["time_s"]
        recent = time_s >= time_s[-1] - WINDOW_S
        gpu_reason = unavailable_reason(GPU_REASON_COLUMN, trial.telemetry_unavailable)
        sizes = sorted({t.batch_size for t in self._runs[0].trials})
        colors = PlotColors.from_palette(self.palette())
        pen = make_pen(batch_size_color(trial.batch_size, sizes, dark=colors.dark), 1.5)
        for key, cell in self._cells.items():
            figure = cell.figure
            cell.setVisible(not (figure.gpu and gpu_reason))
            if figure.gpu and gpu_reason:
                continue
            values = energy_column(telemetry) if key == "energy_j" else telemetry[key]
            finite = np.flatnonzero(np.isfinite(values))
            if len(finite):
                cell.value.setText(self._text(figure, trial, float(values[finite[-1]])))
                shown = values[recent]
                shown = shown[np.isfinite(shown)]
                spread = (f"\nLast minute: {figure.text(float(shown.min()))} to {figure.text(float(shown.max()))}"
                          if figure.sparkline and len(shown) else "")
                cell.setToolTip(figure.help + spread)
            else:
                reason = self._reason(key, trial)
                cell.value.setText(MISSING)
                cell.setToolTip(f"{figure.help}\nNot measured: {reason}")
            if cell.curve is not None:
                cell.curve.setPen(pen)
                cell.curve.setData(time_s[recent], values[recent], connect="finite")
        self._no_gpu.setVisible(bool(gpu_reason))
        self._no_gpu.value.setText(MISSING)
        self._no_gpu.setToolTip(f"GPU figures not measured: {gpu_reason}")

    def _text(self, figure: Figure, trial: TrialData, value: float) -> str:
        text = figure.text(value)
        total = self._runs[0].environment.get("device_memory_bytes") if self._runs else None
        if figure.key == "gpu_memory_used_bytes" and isinstance(total, (int, float)) and math.isfinite(total) \
                and total > 0:
            text = f"{value / 2**30:.1f}/{total / 2**30:.0f} GiB"
        return text

    @staticmethod
    def _reason(key: str, trial: TrialData) -> str:
        if key == "energy_j":
            reasons = [unavailable_reason(column, trial.telemetry_unavailable)
                       for column in ("cpu_energy_j", "gpu_energy_j")]
            return "; ".join(reason for reason in reasons if reason) or "no energy counter answered"
        return unavailable_reason(key, trial.telemetry_unavailable) or "no value sampled yet"
