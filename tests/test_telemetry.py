"""Telemetry: the sampler against injected sources and a fake clock, the RAPL and NVML readers against fake
counters, and a real sweep on this machine (no GPU, no RAPL here): sampled where it can be, NaN with the reason
where it cannot, never zero."""
import math
import threading
from types import SimpleNamespace

import h5py
import numpy as np

from engine import schema
from engine.analysis import summarize_run
from engine.events import TrialSpec
from engine.hardware.telemetry import TelemetrySampler, _NvmlSource, energy_j, energy_text, rapl_source
from engine.runfile import read_run
from engine.sweep import run_sweep

TRIAL = TrialSpec(index=0, name="bs00016_seed0", batch_size=16, seed=0, base_lr=0.1, lr=0.1)


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Counter:
    name = "counter"

    def __init__(self, clock, fail_after=None):
        self.clock, self.reads, self.fail_after = clock, 0, fail_after
        self.sampled = threading.Event()

    def read(self, elapsed):
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise OSError("device went away")
        self.clock.now += 1.0
        self.sampled.set()
        return {"cpu_percent": 50.0 + self.reads, "gpu_power_w": 200.0}


def test_the_sampler_keeps_a_first_and_last_row_and_every_missing_column_is_nan_with_its_reason():
    clock = FakeClock()
    source = Counter(clock)
    sampler = TelemetrySampler([source], {"gpu energy": "no counter"}, interval=3600, clock=clock).start()
    event = sampler.finish(TRIAL)     # shorter than one interval: the first and the last sample only
    columns = event.columns
    assert set(columns) == {m.name for m in schema.TELEMETRY_METRICS}
    assert list(columns["time_s"]) == [0.0, 1.0] and list(columns["cpu_percent"]) == [51.0, 52.0]
    assert np.isnan(columns["gpu_energy_j"]).all() and np.isnan(columns["process_rss_bytes"]).all()
    assert event.unavailable == "gpu energy: no counter"


def test_a_source_that_stops_answering_leaves_nan_from_then_on_and_says_so():
    clock = FakeClock()
    sampler = TelemetrySampler([Counter(clock, fail_after=1)], {}, interval=3600, clock=clock).start()
    event = sampler.finish(TRIAL)
    assert list(event.columns["cpu_percent"][:1]) == [51.0] and np.isnan(event.columns["cpu_percent"][1])
    assert event.unavailable == "counter: stopped answering (OSError: device went away)"


def test_the_thread_samples_between_the_first_and_the_last_row():
    clock = FakeClock()
    source = Counter(clock)
    sampler = TelemetrySampler([source], {}, interval=0.001, clock=clock).start()
    source.sampled.clear()
    assert source.sampled.wait(10)      # a sample taken by the thread, not by start()
    assert len(sampler.finish(TRIAL).columns["time_s"]) >= 3


def test_rapl_energy_counts_from_the_start_across_a_counter_wrap(tmp_path):
    package = tmp_path / "intel-rapl:0"
    package.mkdir()
    (package / "max_energy_range_uj").write_text("1000000\n")
    (package / "energy_uj").write_text("900000\n")
    (tmp_path / "intel-rapl:0:0").mkdir()        # a sub-domain, counted inside its package already
    source = rapl_source(str(tmp_path / "intel-rapl:*"))
    (package / "energy_uj").write_text("950000\n")
    assert source.read(1.0) == {"cpu_energy_j": 0.05}
    (package / "energy_uj").write_text("100000\n")     # wrapped: 50,000 to the top, then 100,000
    assert math.isclose(source.read(2.0)["cpu_energy_j"], 0.2)
    assert rapl_source(str(tmp_path / "nothing-*")).startswith("no RAPL powercap counters")


def test_nvml_energy_from_the_board_counter_or_power_integrated_over_time():
    class NVMLError(Exception):
        pass

    energy = {"mJ": 5_000}

    def total_energy(handle):
        if handle == "old board":
            raise NVMLError("not supported")
        return energy["mJ"]

    nvml = SimpleNamespace(
        NVMLError=NVMLError, NVML_TEMPERATURE_GPU=0, NVML_CLOCK_SM=1,
        nvmlDeviceGetTotalEnergyConsumption=total_energy,
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=97, memory=40),
        nvmlDeviceGetPowerUsage=lambda h: 250_000, nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=2**30),
        nvmlDeviceGetTemperature=lambda h, sensor: 61, nvmlDeviceGetClockInfo=lambda h, clock: 1980,
        nvmlDeviceGetCurrentClocksEventReasons=lambda h: 4)
    board = _NvmlSource(nvml, "new board")
    energy["mJ"] = 8_000
    row = board.read(1.0)
    assert row["gpu_energy_j"] == 3.0 and row["gpu_power_w"] == 250.0 and row["gpu_utilization"] == 97
    assert row["gpu_memory_used_bytes"] == 2**30 and row["gpu_throttle_reasons"] == 4
    old = _NvmlSource(nvml, "old board")
    assert old.read(0.0)["gpu_energy_j"] == 0.0 and old.read(2.0)["gpu_energy_j"] == 500.0   # 250 W × 2 s


def test_a_sweep_on_this_machine_samples_the_process_and_says_why_the_rest_is_missing(tiny_config, tmp_path):
    path = run_sweep(tiny_config(sweep={"batch_sizes": [16]}), tmp_path)
    trial = read_run(path).trials[0]
    telemetry = trial.telemetry
    assert len(telemetry["time_s"]) >= 2 and np.all(np.diff(telemetry["time_s"]) > 0)
    assert np.all(telemetry["process_rss_bytes"] > 0)
    assert np.isnan(telemetry["cpu_percent"][0]) and np.isfinite(telemetry["cpu_percent"][1:]).all()
    for name in ("gpu_utilization", "gpu_power_w", "gpu_energy_j"):
        assert np.isnan(telemetry[name]).all(), name        # no GPU here: not measured, not zero
    assert "gpu: training on the CPU" in trial.telemetry_unavailable
    with h5py.File(path) as handle:
        group = handle[f"trials/{trial.name}/{schema.TELEMETRY_GROUP}"]
        assert {name: group[name].attrs["units"] for name in group} == {m.name: m.units
                                                                        for m in schema.TELEMETRY_METRICS}
    summary = summarize_run(read_run(path))[0]
    if np.isfinite(telemetry["cpu_energy_j"]).any():     # a machine whose RAPL counters are readable
        assert summary.energy_j == energy_j(telemetry) > 0
    else:
        assert math.isnan(summary.energy_j) and math.isnan(summary.energy_per_example_j)
        assert energy_text(read_run(path).trials).startswith("Energy: unavailable (cpu energy: ")
