"""Telemetry while a trial trains: a thread samples the machine about ten times a second (schema.TELEMETRY_METRICS).

Sources: psutil for this process's CPU utilisation and resident memory; the Linux powercap (RAPL) counters for
the CPU packages' energy; NVML (pynvml) for the GPU a trial trains on: utilisation, memory, power, the board's
energy counter (else power integrated over time), temperature, SM clock and throttle reasons. A source that
cannot be read here (no NVIDIA driver, no permission, no counter) gives NaN in every row and its reason in
TelemetryMeasured.unavailable: never a zero. A machine without NVIDIA drivers samples psutil alone.

The sampler only reads counters and sleeps between samples, so the training thread loses nothing it can see
(benchmarks/telemetry_cost.py measures the ratio against a plain loop). One sample is taken when the trial
starts and one when it ends, so even a trial shorter than the interval has a first and a last row. The rows
leave in pieces: those sampled so far whenever the trial hands over its steps (`take`, what the Live tab's
telemetry strip follows), the rest when it ends (`finish`).
"""
from __future__ import annotations

import glob
import math
import os
import re
import threading
import time
from collections.abc import Callable

import numpy as np
import psutil
import torch

from engine import schema
from engine.events import TelemetryMeasured, TrialSpec

INTERVAL_S = 0.1
# How often a training trial hands its rows over (`take`): the Live tab's strip redraws twice a second, so more
# would only add events (signals to the window, pickles from worker processes) that show nothing new.
LIVE_INTERVAL_S = 0.5
NAN = math.nan
RAPL_PATTERN = "/sys/class/powercap/intel-rapl:*"

Reading = dict[str, float]


class _ProcessSource:
    """This process's CPU utilisation (percent of one core, since the previous sample) and resident memory."""
    name = "process"
    columns = ("cpu_percent", "process_rss_bytes")

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._started = False

    def read(self, elapsed: float) -> Reading:
        # psutil's first call only starts the interval it measures (and answers 0): no figure yet.
        cpu = self._process.cpu_percent(None)
        if not self._started:
            cpu, self._started = NAN, True
        return {"cpu_percent": cpu, "process_rss_bytes": self._process.memory_info().rss}


class _RaplSource:
    """Energy of every CPU package since the trial started, from the powercap counters (which wrap around)."""
    name = "cpu energy"
    columns = ("cpu_energy_j",)

    def __init__(self, paths: list[str]):
        self._paths = paths
        self._range = [int(_read(os.path.join(p, "max_energy_range_uj"))) for p in paths]
        self._last = [int(_read(os.path.join(p, "energy_uj"))) for p in paths]
        self._total_uj = 0

    def read(self, elapsed: float) -> Reading:
        for index, path in enumerate(self._paths):
            now = int(_read(os.path.join(path, "energy_uj")))
            step = now - self._last[index]
            self._total_uj += step if step >= 0 else step + self._range[index]
            self._last[index] = now
        return {"cpu_energy_j": self._total_uj / 1e6}


class _NvmlSource:
    """The training GPU through NVML. Energy: the board's counter where it has one, else power × time."""
    name = "gpu"
    columns = tuple(m.name for m in schema.TELEMETRY_METRICS if m.name.startswith("gpu_"))

    def __init__(self, nvml, handle):
        self._nvml, self._handle = nvml, handle
        try:
            self._energy_start = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)   # mJ since the driver loaded
        except nvml.NVMLError:
            self._energy_start = None
        self._integrated_j, self._last_power, self._last_time = 0.0, None, 0.0

    def read(self, elapsed: float) -> Reading:
        nvml, handle = self._nvml, self._handle
        rates = nvml.nvmlDeviceGetUtilizationRates(handle)
        power_w = nvml.nvmlDeviceGetPowerUsage(handle) / 1000
        if self._energy_start is not None:
            energy_j = (nvml.nvmlDeviceGetTotalEnergyConsumption(handle) - self._energy_start) / 1000
        else:
            if self._last_power is not None:
                self._integrated_j += (power_w + self._last_power) / 2 * (elapsed - self._last_time)
            energy_j = self._integrated_j
        self._last_power, self._last_time = power_w, elapsed
        return {"gpu_utilization": rates.gpu, "gpu_memory_utilization": rates.memory,
                "gpu_memory_used_bytes": nvml.nvmlDeviceGetMemoryInfo(handle).used, "gpu_power_w": power_w,
                "gpu_energy_j": energy_j,
                "gpu_temperature_c": nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
                "gpu_sm_clock_mhz": nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM),
                "gpu_throttle_reasons": nvml.nvmlDeviceGetCurrentClocksEventReasons(handle)}


def _read(path: str) -> str:
    with open(path, encoding="ascii") as file:
        return file.read().strip()


def rapl_source(pattern: str = RAPL_PATTERN):
    """The RAPL source, or the reason there is none."""
    # "intel-rapl:0" is a package; "intel-rapl:0:0" a part of it, whose energy the package counts already.
    paths = [path for path in sorted(glob.glob(pattern)) if os.path.basename(path).count(":") == 1]
    if not paths:
        return "no RAPL powercap counters here (/sys/class/powercap)"
    try:
        return _RaplSource(paths)
    except (OSError, ValueError) as error:
        return f"RAPL counters not readable ({getattr(error, 'strerror', None) or error}; reading them needs root)"


def nvml_source(device: torch.device):
    """The NVML source for a CUDA device, or the reason there is none."""
    if device.type != "cuda":
        return "training on the CPU: no GPU to sample"
    try:
        import pynvml
        pynvml.nvmlInit()
        index = device.index if device.index is not None else torch.cuda.current_device()
        # NVML numbers every GPU of the machine, CUDA only those CUDA_VISIBLE_DEVICES shows.
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
        if all(part.strip().isdigit() for part in visible) and index < len(visible):
            index = int(visible[index])
        return _NvmlSource(pynvml, pynvml.nvmlDeviceGetHandleByIndex(index))
    except Exception as error:  # noqa: BLE001 — any NVML failure (no driver, no library) means: unavailable
        return f"NVML not usable ({type(error).__name__}: {error})"


class TelemetrySampler:
    """Samples its sources on a thread every `interval` seconds from start() until finish(). Sources are objects
    with `name` and `read(elapsed) -> {column: value}`; `unavailable` maps a source's name to why it is
    missing. Tests inject sources and the clock."""

    def __init__(self, sources: list, unavailable: dict[str, str], interval: float = INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self._sources, self.unavailable = sources, dict(unavailable)
        self._interval, self._clock = interval, clock
        self._rows: list[Reading] = []
        self._clock_marks: list[tuple[float, float]] = []    # (telemetry time, training time), schema.TRAINING_CLOCK
        self._rows_lock = threading.Lock()      # the thread appends rows while the trial takes them
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = 0.0
        self._last_take = -math.inf

    def start(self) -> "TelemetrySampler":
        self._start = self._clock()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        elapsed = self._clock() - self._start
        row: Reading = {"time_s": elapsed}
        for source in list(self._sources):
            try:
                row.update(source.read(elapsed))
            except Exception as error:  # noqa: BLE001 — a source that fails mid-trial stops, with its reason
                self._sources.remove(source)
                self.unavailable[source.name] = f"stopped answering ({type(error).__name__}: {error})"
        with self._rows_lock:
            self._rows.append(row)

    def mark_training_clock(self, training_time_s: float) -> None:
        """Note that the trial's training clock stands at `training_time_s` now (schema.TRAINING_CLOCK_GROUP)."""
        elapsed = self._clock() - self._start
        with self._rows_lock:
            self._clock_marks.append((elapsed, training_time_s))

    def take(self, trial: TrialSpec, every: float = 0.0) -> TelemetryMeasured | None:
        """The rows sampled and the clock marks noted since the last take, as one event; None when there are none,
        or when the last take was less than `every` seconds ago."""
        now = self._clock()
        if now - self._last_take < every:
            return None
        with self._rows_lock:
            rows, self._rows = self._rows, []
            marks, self._clock_marks = self._clock_marks, []
        if not (rows or marks):
            return None
        self._last_take = now
        return self._event(trial, rows, marks)

    def finish(self, trial: TrialSpec) -> TelemetryMeasured:
        """Stop sampling, take the last sample, and hand every row not taken yet over as one event."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        return self.take(trial)

    def _event(self, trial: TrialSpec, rows: list[Reading], marks: list[tuple[float, float]]) -> TelemetryMeasured:
        columns = {m.name: np.asarray([row.get(m.name, NAN) for row in rows], dtype=m.dtype)
                   for m in schema.TELEMETRY_METRICS}
        reasons = "; ".join(f"{name}: {reason}" for name, reason in sorted(self.unavailable.items()))
        clock = {m.name: np.asarray([mark[index] for mark in marks], dtype=m.dtype)
                 for index, m in enumerate(schema.TRAINING_CLOCK_METRICS)} if marks else {}
        return TelemetryMeasured(trial=trial, columns=columns, unavailable=reasons, training_clock=clock)


SOURCES = (_ProcessSource, _RaplSource, _NvmlSource)

# NVML's clock event reasons (nvmlClocksEventReason*, formerly "throttle reasons"): the bits of
# gpu_throttle_reasons, in words.
CLOCK_EVENT_REASONS = {0x1: "idle", 0x2: "application clocks", 0x4: "power cap", 0x8: "hardware slowdown",
                       0x10: "sync boost", 0x20: "thermal (software)", 0x40: "thermal (hardware)",
                       0x80: "power brake", 0x100: "display clocks"}


def clock_event_words(mask: float) -> str:
    """gpu_throttle_reasons in words: 'none', or the reasons set ('power cap, thermal (hardware)'); '' for NaN."""
    if not math.isfinite(mask):
        return ""
    bits = int(mask)
    words = [word for bit, word in CLOCK_EVENT_REASONS.items() if bits & bit]
    unknown = bits & ~sum(CLOCK_EVENT_REASONS)
    if unknown:
        words.append(f"other (0x{unknown:x})")
    return ", ".join(words) or "none"


def unavailable_reason(column: str, unavailable: str) -> str:
    """Why a telemetry column was not sampled, from a trial's `unavailable` text (as `finish` joins it): its
    source's reason, or '' when its source was sampled."""
    source = next((source for source in SOURCES if column in source.columns), None)
    if source is None:
        return ""
    names = "|".join(re.escape(other.name) for other in SOURCES)
    parts = re.split(rf"(?:^|; )({names}): ", unavailable)
    reasons = dict(zip(parts[1::2], parts[2::2]))
    return reasons.get(source.name, "")


def start_telemetry(device: torch.device) -> TelemetrySampler:
    """A sampler of every source readable here, started."""
    sources: list = [_ProcessSource()]
    unavailable: dict[str, str] = {}
    for name, source in (("cpu energy", rapl_source()), ("gpu", nvml_source(device))):
        if isinstance(source, str):
            unavailable[name] = source
        else:
            sources.append(source)
    return TelemetrySampler(sources, unavailable).start()


def energy_j(telemetry: dict[str, np.ndarray]) -> float:
    """The energy a trial's sampled sources measured, CPU packages and GPU together: NaN when none did."""
    totals = [float(values[np.isfinite(values)][-1]) for key in ("cpu_energy_j", "gpu_energy_j")
              if len(values := telemetry.get(key, np.empty(0))) and np.isfinite(values).any()]
    return sum(totals) if totals else NAN


def energy_text(trials) -> str:
    """One line on the energy the trials used, for `report`: per trial and per example, or why it is unavailable."""
    measured = [(t, energy) for t in trials if math.isfinite(energy := energy_j(t.telemetry))]
    if not measured:
        reasons = sorted({t.telemetry_unavailable for t in trials if t.telemetry_unavailable})
        why = reasons[0] if len(reasons) == 1 else "; ".join(reasons) or "no telemetry in this run file"
        return f"Energy: unavailable ({why})"
    parts = [f"batch {t.batch_size}: {energy:.3g} J" for t, energy in measured]
    return "Energy per trial (CPU packages and GPU as measured): " + ", ".join(parts)
