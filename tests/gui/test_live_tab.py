"""The Live tab: the B_simple plot beside the loss and the telemetry strip under the plots, from one real tiny sweep
with the noise scale on (batch size 3 cannot be split into 4 micro-batches), read back from its run file (as a run
reopened or followed from a file is) and followed event by event (as the window follows a sweep it trains: the
same LiveRun and the same two calls, set_runs and mark_dirty). Also: the plot is hidden for a run without the noise
scale; the strip says "—" with the reason for what this machine cannot measure, shows every GPU figure of a run
file that has them, and redraws on its timer, not at each piece of data. In the window: a file another process
writes, followed as it grows, and the trial table choosing the strip's trial."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine import schema
from engine.events import (EpochEnded, NoiseMeasured, StepsLogged, SweepStarted, TelemetryMeasured, TrialEnded,
                           TrialSpec, TrialStarted)
from engine.hardware.telemetry import TelemetrySampler
from engine.live import LiveRun
from engine.runfile import RunWriter, read_run
from engine.sweep import run_sweep
from gui.plots import LivePlots
from gui.telemetry_strip import MISSING, TelemetryStrip
from tests.conftest import tiny_table
from tests.gui.runfactory import ENVIRONMENT, write_run

NOISE_SWEEP = {"sweep": {"batch_sizes": [3, 32], "device": "cpu"}, "science": {"noise_scale": True, "noise_every": 2},
               "train": {"epochs": 1}}


@pytest.fixture(scope="module")
def noise_sweep(tmp_path_factory):
    """A real sweep with the noise scale on (batch size 3 cannot be split into 4 micro-batches), its events and
    its file."""
    from engine.config import parse_config

    events = []
    path = run_sweep(parse_config(tiny_table(**NOISE_SWEEP)), tmp_path_factory.mktemp("noise"), on_event=events.append)
    return path, events


@pytest.fixture
def plots(qtbot):
    widget = LivePlots()
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    return widget


def _drawn(plots, trial_name):
    x, y = plots.curve("noise", trial_name, "b_simple").getOriginalDataset()
    return (np.empty(0), np.empty(0)) if x is None else (np.asarray(x), np.asarray(y))


def test_b_simple_beside_the_loss_per_trial_in_its_colour_and_no_plot_without_it(plots, noise_sweep, tmp_path):
    run = read_run(noise_sweep[0])
    plots.set_runs([run])
    plots.set_x_axis("samples")
    plots.redraw_now()
    assert plots.plot_names()[:2] == ("loss", "noise")
    assert plots.plot_item("noise").isVisible() and plots.log_y("noise")
    measured, unsplittable = run.trials[1], run.trials[0]
    assert (unsplittable.batch_size, measured.batch_size) == (3, 32) and len(measured.noise["b_simple"]) >= 3
    x, y = _drawn(plots, measured.name)
    b_simple = measured.noise["b_simple"]
    np.testing.assert_array_equal(x, measured.noise["samples"])
    shown = np.isfinite(b_simple) & (b_simple > 0)
    assert shown.any()
    np.testing.assert_array_equal(y[shown], b_simple[shown])
    assert np.isnan(y[~shown]).all()                       # a negative early estimate is a gap, not a point
    assert len(_drawn(plots, unsplittable.name)[0]) == 0
    noise_pen = plots.curve("noise", measured.name, "b_simple").opts["pen"].color().rgb()
    loss_pen = plots.curve("loss", measured.name, "val_loss").opts["pen"].color().rgb()
    assert noise_pen == loss_pen
    caption = plots.noise_caption()
    assert caption.startswith("B_simple rises as the loss falls; batch sizes well below it scale almost perfectly")
    assert ("Not measured at batch size 3: batch size 3 cannot be split into science.noise_microbatches = 4 "
            "micro-batches") in caption
    plots.set_x_axis("epoch")                              # it follows the x axis chosen, like every live plot
    np.testing.assert_allclose(_drawn(plots, measured.name)[0], measured.noise["step"] / measured.steps_per_epoch)

    without = read_run(write_run(tmp_path / "plain.h5", batch_sizes=(16, 32), epochs=2, train_size=512))
    plots.set_runs([without])
    assert "noise" not in plots.plot_names() and not plots.plot_item("noise").isVisible()
    plots.set_runs([run])
    assert "noise" in plots.plot_names() and plots.plot_item("noise").isVisible()
    plots.set_runs([without])
    assert "noise" not in plots.plot_names() and not plots.plot_item("noise").isVisible()


def test_the_plot_follows_the_events_of_a_live_run_to_what_the_file_holds(plots, noise_sweep):
    path, events = noise_sweep
    live = LiveRun()
    for event in events:
        changed = live.apply(event)
        if isinstance(event, SweepStarted):
            plots.set_runs([live.run])
            assert "noise" in plots.plot_names()         # shown from the start: the config asks for it
        elif changed:
            plots.mark_dirty(changed)
        if isinstance(event, NoiseMeasured):
            plots.redraw_now()
            assert len(_drawn(plots, event.trial.name)[0]) == len(live.run.trials[-1].noise["b_simple"])
    plots.redraw_now()
    for trial in read_run(path).trials:
        np.testing.assert_array_equal(_drawn(plots, trial.name)[1][np.isfinite(_drawn(plots, trial.name)[1])],
                                      trial.noise["b_simple"][np.isfinite(trial.noise["b_simple"])
                                                              & (trial.noise["b_simple"] > 0)])


TRIAL = TrialSpec(index=0, name="bs00016_seed0", batch_size=16, seed=0, base_lr=0.1, lr=0.1)


@pytest.fixture
def strip(qtbot):
    widget = TelemetryStrip()
    qtbot.addWidget(widget)
    widget.resize(1000, 60)
    widget.show()
    return widget


class _Counter:
    name = "counter"

    def __init__(self):
        self.reads = 0

    def read(self, elapsed):
        self.reads += 1
        return {"cpu_percent": float(self.reads)}


def test_telemetry_leaves_a_trial_in_pieces_while_it_trains_and_the_file_holds_every_row(noise_sweep):
    sampler = TelemetrySampler([_Counter()], {}, interval=3600, clock=lambda: 0.0).start()
    first = sampler.take(TRIAL)
    assert list(first.columns["cpu_percent"]) == [1.0]
    assert sampler.take(TRIAL) is None                      # nothing sampled since
    assert list(sampler.finish(TRIAL).columns["cpu_percent"]) == [2.0]
    # While training, a piece at most every `every` seconds of the sampler's clock (the strip redraws twice a second).
    clock = {"now": 0.0}
    paced = TelemetrySampler([_Counter()], {}, interval=3600, clock=lambda: clock["now"]).start()
    assert paced.take(TRIAL, every=0.5) is not None                     # the first at once
    clock["now"] = 0.4
    paced.mark_training_clock(0.3)
    assert paced.take(TRIAL, every=0.5) is None
    clock["now"] = 0.6
    assert paced.take(TRIAL, every=0.5) is not None

    path, events = noise_sweep
    for trial in read_run(path).trials:
        own = [event for event in events if getattr(event, "trial", None) is not None
               and event.trial.name == trial.name]
        kinds = [type(event) for event in own]
        # The first piece follows the first steps (the sample taken at the start is there by then).
        assert kinds.index(TelemetryMeasured) == kinds.index(StepsLogged) + 1
        pieces = [event for event in own if isinstance(event, TelemetryMeasured)]
        assert len(pieces) >= 2 and kinds.index(TelemetryMeasured) < kinds.index(TrialEnded)
        np.testing.assert_array_equal(np.concatenate([piece.columns["time_s"] for piece in pieces]),
                                      trial.telemetry["time_s"])


def _size(value: float) -> str:
    """A process's memory as the strip writes it: MiB, or GiB from 1 GiB on (a test process can pass that)."""
    return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:,.0f} MiB"


def test_the_strip_shows_the_figures_measured_and_a_dash_with_the_reason_for_the_rest(strip, noise_sweep, tmp_path):
    run = read_run(noise_sweep[0])
    strip.set_runs([run])
    trial = strip.trial()
    assert trial.name == run.trials[-1].name
    assert strip.title() == "<b>Telemetry</b> · completed<br>batch size 32 · seed 0"
    cpu = trial.telemetry["cpu_percent"]
    assert strip.figure_text("cpu_percent")[0] == f"{cpu[np.isfinite(cpu)][-1]:,.0f} %"
    assert strip.figure_text("process_rss_bytes")[0] == _size(trial.telemetry["process_rss_bytes"][-1])
    x, y = strip.sparkline("process_rss_bytes")
    np.testing.assert_array_equal(x, trial.telemetry["time_s"])
    text, tooltip = strip.figure_text("energy_j")
    if np.isfinite(trial.telemetry["cpu_energy_j"]).any():         # a machine whose RAPL counters are readable
        assert text != MISSING and "J" in text
    else:
        assert text == MISSING and "Not measured: " in tooltip and ("RAPL" in tooltip or "powercap" in tooltip)
    # No GPU here: one dash for the GPU, with the reason, instead of a row of dashes (and never a 0).
    assert "gpu" in strip.shown_figures() and "gpu_utilization" not in strip.shown_figures()
    assert strip.figure_text("gpu") == (MISSING, "GPU figures not measured: training on the CPU: no GPU to sample")

    # A run file from a GPU: every figure, with its unit.
    strip.set_runs([_gpu_run(tmp_path / "gpu.h5")])
    assert "gpu" not in strip.shown_figures()
    shown = {key: strip.figure_text(key)[0] for key in strip.shown_figures()}
    assert shown == {"cpu_percent": "98 %", "process_rss_bytes": "3.00 GiB", "energy_j": "100 J",
                     "gpu_utilization": "97 %", "gpu_memory_used_bytes": "12.0/80 GiB", "gpu_power_w": "250 W",
                     "gpu_temperature_c": "61 °C", "gpu_sm_clock_mhz": "1,980 MHz",
                     "gpu_throttle_reasons": "power cap"}
    assert "Last minute: 80 % to 97 %" in strip.figure_text("gpu_utilization")[1]


def _gpu_run(path):
    """A run file of one trial with every telemetry figure, as NVML on a GPU gives them, but no energy counter."""
    rows = 5
    columns = {"time_s": np.arange(rows) * 0.1, "cpu_percent": np.full(rows, 98.0),
               "process_rss_bytes": np.full(rows, 3 * 2**30), "cpu_energy_j": np.full(rows, np.nan),
               "gpu_utilization": np.linspace(80, 97, rows), "gpu_memory_utilization": np.full(rows, 40.0),
               "gpu_memory_used_bytes": np.full(rows, 12 * 2**30), "gpu_power_w": np.full(rows, 250.0),
               "gpu_energy_j": np.arange(rows) * 25.0, "gpu_temperature_c": np.full(rows, 61.0),
               "gpu_sm_clock_mhz": np.full(rows, 1980.0), "gpu_throttle_reasons": np.full(rows, 4.0)}
    environment = {**ENVIRONMENT, "device": "cuda", "device_memory_bytes": 80 * 2**30}
    writer = RunWriter(path, 'name = "gpu"\n[data]\ndataset = "mnist1d"\n[model]\nkind = "mlp"\n[sweep]\n'
                             'batch_sizes = [256]\n', environment)
    writer.start_trial("bs00256_seed0", {"batch_size": 256, "seed": 0, "lr": 0.1, "base_lr": 0.1, "parameter_count": 10,
                                         "steps_per_epoch": 10})
    writer.add_rows("bs00256_seed0", schema.TELEMETRY_GROUP, columns)
    writer.set_trial_attrs("bs00256_seed0", {schema.TELEMETRY_UNAVAILABLE_ATTR:
                                             "cpu energy: RAPL counters not readable (Permission denied; reading "
                                             "them needs root)"})
    writer.end_trial("bs00256_seed0", schema.COMPLETED)
    writer.close(schema.COMPLETED)
    return read_run(path)


def test_the_strip_follows_the_running_trial_and_redraws_on_its_timer(strip, noise_sweep, qtbot):
    _, events = noise_sweep
    live = LiveRun()
    started = next(index for index, event in enumerate(events) if isinstance(event, SweepStarted))
    for event in events[:started + 1]:
        live.apply(event)
    strip.set_runs([live.run])
    assert strip.trial() is None and strip.title() == "Telemetry: none recorded in this run"
    second = next(event.trial.name for event in events if isinstance(event, TrialStarted) and event.trial.index == 1)
    pieces = 0
    for event in events[started + 1:]:
        live.apply(event)
        if isinstance(event, TelemetryMeasured) and event.trial.name == second:
            pieces += 1
            if pieces == 2:
                break
    strip.mark_dirty()
    assert strip.trial() is None                       # drawn by the timer, not at each piece of data
    qtbot.waitUntil(lambda: strip.trial() is not None and strip.trial().name == second, timeout=2000)
    assert strip.trial().status == schema.RUNNING and strip.title() == "<b>Telemetry</b><br>batch size 32 · seed 0"
    rss = strip.trial().telemetry["process_rss_bytes"]
    assert strip.figure_text("process_rss_bytes")[0] == _size(rss[-1]) and not math.isnan(rss[-1])


def _record(writer, event):
    """What engine.sweep writes for each event of a trial (its _Recorder, less the threads and the search)."""
    name = getattr(getattr(event, "trial", None), "name", None)
    if isinstance(event, TrialStarted):
        writer.start_trial(name, {"batch_size": event.trial.batch_size, "seed": event.trial.seed, "lr": event.trial.lr,
                                  "base_lr": event.trial.base_lr, "parameter_count": event.parameter_count,
                                  "steps_per_epoch": event.steps_per_epoch,
                                  schema.NOISE_UNAVAILABLE_ATTR: event.noise_scale_unavailable})
    elif isinstance(event, StepsLogged):
        writer.add_steps(name, {m.name: getattr(event, m.name) for m in schema.STEP_METRICS})
    elif isinstance(event, EpochEnded):
        writer.add_epoch(name, event.metrics)
    elif isinstance(event, NoiseMeasured):
        writer.add_rows(name, schema.NOISE_GROUP, event.columns)
    elif isinstance(event, TelemetryMeasured):
        writer.add_rows(name, schema.TELEMETRY_GROUP, event.columns)
        writer.set_trial_attrs(name, {schema.TELEMETRY_UNAVAILABLE_ATTR: event.unavailable})
    elif isinstance(event, TrialEnded):
        writer.end_trial(name, event.status, event.error)


def test_in_the_window_a_followed_file_grows_in_both_and_the_table_chooses_the_strips_trial(qtbot, main_window,
                                                                                          noise_sweep, tmp_path):
    _, events = noise_sweep
    started = next(event for event in events if isinstance(event, SweepStarted))
    second = [event for event in events if getattr(event, "trial", None) is not None and event.trial.index == 1]
    first_epoch = next(index for index, event in enumerate(second) if isinstance(event, EpochEnded))
    writer = RunWriter(tmp_path / "followed.h5", started.config_text, ENVIRONMENT)   # held open: "being written"
    for event in events[:events.index(second[0])]:
        _record(writer, event)
    window = main_window
    window.open_runs([writer.path])
    assert window.run_follower.followed() == [writer.path] and "noise" in window.plots.plot_names()
    strip = window.plots.telemetry_strip()
    assert strip.trial().batch_size == 3 and "completed" in strip.title()
    for event in second[:first_epoch + 1]:         # the second trial's epoch is flushed: the follower sees it
        _record(writer, event)
    window.run_follower.check()
    window.plots.redraw_now()
    followed = window.shown_runs()[0].trials[1]
    assert followed.status == schema.RUNNING and len(followed.noise["b_simple"]) > 0
    _, y = window.plots.curve("noise", followed.name, "b_simple").getOriginalDataset()
    assert len(y) == len(followed.noise["b_simple"])
    assert strip.trial().name == followed.name and strip.title() == "<b>Telemetry</b><br>batch size 32 · seed 0"
    for event in second[first_epoch + 1:]:
        _record(writer, event)
    writer.close(schema.COMPLETED)
    window.run_follower.check()
    assert window.run_follower.followed() == [] and "completed" in strip.title()

    table = window.trial_table
    rows = table.table_model.rows()
    table.selectRow(next(row for row in range(table.proxy.rowCount())
                         if rows[table.proxy.mapToSource(table.proxy.index(row, 0)).row()].batch_size == 3))
    assert strip.trial().batch_size == 3 and "batch size 3 · seed 0" in strip.title()
    table.clearSelection()
    assert strip.trial().batch_size == 32                        # none selected: the last trial that ran
