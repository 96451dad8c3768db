"""LivePlots with real run files and real engine events (tests/gui/runfactory.py)."""
from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage, QPainter

from engine import schema
from engine.errors import UserError
from engine.events import EpochEnded, StepsLogged
from engine.runfile import read_run
from gui.colors import batch_size_color
from gui.plots import (GROWTH_HEADROOM, MAX_REDRAW_INTERVAL_MS, MIN_PLOT_HEIGHT, MIN_PLOT_WIDTH, PLOTS, REDRAW_INTERVAL_MS, X_AXES,
                       LivePlots)
from gui.smoothing import ema
from tests.gui.runfactory import live_run, write_run

BATCH_SIZES = (16, 32, 64, 128)


@pytest.fixture
def plots(qtbot):
    widget = LivePlots()
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    return widget


@pytest.fixture
def run(tmp_path):
    return read_run(write_run(tmp_path / "run.h5", batch_sizes=BATCH_SIZES, seeds=(0, 1), epochs=3, train_size=1024))


def test_every_trial_has_a_curve_in_every_plot_with_all_its_data(plots, run):
    plots.set_runs([run])
    for spec in PLOTS:
        assert len(plots.curves(spec.name)) == len(run.trials) * len(spec.series)
        for trial in run.trials:
            for series in spec.series:
                columns = trial.epoch if series.group == schema.EPOCH_GROUP else trial.step
                curve = plots.curve(spec.name, trial.name, series.metric)
                x, y = curve.getOriginalDataset()
                assert len(x) == len(y) == len(columns[series.metric]) > 0


def test_x_axis_switch_changes_x_of_every_plot(plots, run, qtbot):
    plots.set_runs([run])
    trial = run.trials[0]
    epoch_x, _ = plots.curve("throughput", trial.name, "samples_per_s").getOriginalDataset()
    assert list(epoch_x) == list(trial.epoch["epoch"])
    with qtbot.waitSignal(plots.x_axis_changed, timeout=1000) as signal:
        plots.set_x_axis("samples")
    assert signal.args == ["samples"]
    for spec in PLOTS:
        for series in spec.series:
            columns = trial.epoch if series.group == schema.EPOCH_GROUP else trial.step
            x, _ = plots.curve(spec.name, trial.name, series.metric).getOriginalDataset()
            np.testing.assert_array_equal(x, columns["samples"])
    assert plots.plot_item("memory").getAxis("bottom").labelText == schema.METRICS["samples"].label


def test_x_axis_buttons_are_one_click_away(plots, run, qtbot):
    plots.set_runs([run])
    trial = run.trials[-1]
    for key in X_AXES[1:] + X_AXES[:1]:        # the current one ("epoch") last
        with qtbot.waitSignal(plots.x_axis_changed, timeout=1000):
            qtbot.mouseClick(plots.toolbar().x_axis_button(key), Qt.MouseButton.LeftButton)
        assert plots.x_axis() == key
        x, _ = plots.curve("grad_norm", trial.name, "grad_norm").getOriginalDataset()
        expected = trial.step["step"] / trial.steps_per_epoch if key == "epoch" else trial.step[key]
        np.testing.assert_allclose(x, expected)
    with pytest.raises(ValueError):
        plots.set_x_axis("minutes")


def _shown_x(plots, plot_name: str) -> tuple[float, float] | None:
    """The x extent of what the curves of a plot put on screen (after pyqtgraph's clipping and downsampling)."""
    lows, highs = [], []
    for item in plots.curves(plot_name):
        x, _ = item.getData()
        if item.isVisible() and x is not None and len(x):
            lows.append(np.nanmin(x))
            highs.append(np.nanmax(x))
    return (min(lows), max(highs)) if lows else None


def _all_data_in_view(plots) -> bool:
    """Every plot draws its curves, and the x range the plots share spans all their data without being mostly
    empty (the plots of per-epoch values start at epoch 1, those of per-step values near 0)."""
    shown = [_shown_x(plots, name) for name in plots.plot_names()]
    if None in shown:
        return False
    first, last = min(low for low, _ in shown), max(high for _, high in shown)
    for name in plots.plot_names():
        low, high = plots.plot_item(name).getViewBox().viewRange()[0]
        if not (low <= first and last <= high and last - first >= 0.8 * (high - low)):
            return False
    return True


SWITCHES = [("samples", "wall_time_s"), ("samples", "epoch"), ("wall_time_s", "samples", "step"),
            ("step", "wall_time_s", "epoch", "samples")]


@pytest.mark.parametrize("switches", SWITCHES, ids=["-".join(keys) for keys in SWITCHES])
def test_every_x_axis_switch_shows_all_the_data_of_a_reopened_run(plots, run, qtbot, switches):
    plots.set_runs([run])
    qtbot.waitUntil(lambda: _all_data_in_view(plots), timeout=2000)
    for key in switches:
        plots.set_x_axis(key)
        qtbot.waitUntil(lambda: _all_data_in_view(plots), timeout=2000)


def test_every_x_axis_switch_shows_all_the_data_of_a_live_run(plots, qtbot):
    live, events = live_run(batch_sizes=(32, 256), epochs=3, train_size=2048, chunk_steps=8)
    plots.set_runs([live.run])
    for event in events[:len(events) * 2 // 3]:          # mid-sweep: one trial done, the next one growing
        plots.mark_dirty(live.apply(event))
    for key in ("samples", "wall_time_s", "epoch", "samples", "step"):
        qtbot.mouseClick(plots.toolbar().x_axis_button(key), Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: _all_data_in_view(plots), timeout=2000)
    for event in events[len(events) * 2 // 3:]:          # the view keeps following the data as it grows
        plots.mark_dirty(live.apply(event))
    last_step = max(trial.step["step"][-1] for trial in live.run.trials)
    qtbot.waitUntil(lambda: plots.x_range()[1] >= last_step and _all_data_in_view(plots), timeout=2000)


def test_a_growing_run_moves_the_x_range_in_steps_and_keeps_all_its_data_in_view(plots):
    """Redrawing every axis, grid and clipped curve for a new x range is most of a live redraw's cost: the view
    grows with headroom instead of at every update, and always shows all the data."""
    live, events = live_run(batch_sizes=(8,), epochs=40, train_size=800, chunk_steps=20)
    plots.set_runs([live.run])
    ranges, updates = set(), 0
    for event in events:
        changed = live.apply(event)
        if changed:
            plots.mark_dirty(changed)
            plots.redraw_now()
            updates += 1
            ranges.add(plots.x_range())
            if live.run.trials[0].epochs_done:          # every plot has data
                assert _all_data_in_view(plots), plots.x_range()
    assert updates > 150 and len(ranges) < updates / 5, (len(ranges), updates)
    assert live.run.trials[0].status == schema.COMPLETED       # nothing grows now: the data, without headroom
    low, high = plots.x_range()
    assert 40 <= high < 40 * (1 + GROWTH_HEADROOM / 2)


def test_a_zoom_is_kept_in_the_new_units_and_fit_shows_everything_again(plots, run, qtbot):
    plots.set_runs([run])
    plots.plot_item("accuracy").getViewBox().setXRange(1.0, 2.0, padding=0)   # as a mouse zoom does
    assert plots.is_zoomed()
    plots.set_x_axis("samples")
    # What epochs 1 to 2 were, in samples seen: from the smallest batch's epoch 1 to the largest's epoch 2.
    expected = (min(t.epoch["samples"][0] for t in run.trials), max(t.epoch["samples"][1] for t in run.trials))
    assert plots.is_zoomed()
    np.testing.assert_allclose(plots.x_range(), expected, rtol=0.02)
    for name in plots.plot_names():
        np.testing.assert_allclose(plots.plot_item(name).getViewBox().viewRange()[0], expected, rtol=0.02)
    plots.set_x_axis("epoch")
    np.testing.assert_allclose(plots.x_range(), (1.0, 2.0), rtol=0.02)

    plots.set_log_y("loss", True)                                             # the zoom survives a log scale
    plots.set_log_y("accuracy", True)
    assert plots.is_zoomed()
    qtbot.waitUntil(lambda: plots.plot_item("accuracy").getViewBox().viewRange()[1][1] < 3, timeout=2000)  # log10
    np.testing.assert_allclose(plots.x_range(), (1.0, 2.0), rtol=0.02)
    plots.set_log_y("loss", False)
    plots.set_log_y("accuracy", False)

    plots.plot_item("loss").getViewBox().setXRange(50.0, 60.0, padding=0)    # past the end of every trial
    plots.set_x_axis("step")                                                  # nothing to keep: fitted
    assert not plots.is_zoomed()
    qtbot.waitUntil(lambda: _all_data_in_view(plots), timeout=2000)

    plots.plot_item("loss").getViewBox().setXRange(10.0, 20.0, padding=0)
    qtbot.mouseClick(plots.toolbar().fit_button(), Qt.MouseButton.LeftButton)
    assert not plots.is_zoomed()
    qtbot.waitUntil(lambda: _all_data_in_view(plots), timeout=2000)


def test_a_constant_series_gets_a_narrow_axis_around_its_value(plots, tmp_path, qtbot):
    run = read_run(write_run(tmp_path / "flat.h5", batch_sizes=(32,), epochs=2, train_size=1024))
    trial = run.trials[0]
    trial.step["lr"][:] = 0.05                                  # no warm-up: one learning rate throughout
    plots.set_runs([run])
    view = plots.plot_item("lr").getViewBox()
    qtbot.waitUntil(lambda: view.viewRange()[1][0] > 0, timeout=2000)
    low, high = view.viewRange()[1]
    assert 0.04 <= low < 0.05 < high <= 0.06


def _length(curve) -> int:
    if curve is None:
        return -1
    x, _ = curve.getOriginalDataset()
    return 0 if x is None else len(x)


def test_growing_live_run_is_redrawn_by_the_timer(plots, qtbot):
    live, events = live_run(batch_sizes=(32, 64), epochs=2, train_size=1024, chunk_steps=8)
    plots.set_runs([live.run])
    events = iter(events)
    for event in events:                       # TrialStarted, then the first 8 steps
        plots.mark_dirty(live.apply(event))
        if isinstance(event, StepsLogged):
            break
    name = live.run.trials[0].name
    assert plots.curve("loss", name, "loss") is None          # drawn by the timer, not on the spot
    qtbot.waitUntil(lambda: _length(plots.curve("loss", name, "loss")) == 8, timeout=2000)

    for event in events:                       # the rest of the first epoch
        plots.mark_dirty(live.apply(event))
        if isinstance(event, EpochEnded):
            break
    trial = live.run.trials[0]
    assert len(trial.step["step"]) > 8
    assert _length(plots.curve("loss", name, "loss")) == 8    # still the old data until the next tick
    qtbot.waitUntil(lambda: _length(plots.curve("loss", name, "loss")) == len(trial.step["step"]), timeout=2000)
    assert _length(plots.curve("loss", name, "val_loss")) == 1

    for event in events:                       # the rest of the sweep: a second trial appears and finishes
        plots.mark_dirty(live.apply(event))
    assert len(live.run.trials) == 2
    for trial in live.run.trials:
        qtbot.waitUntil(lambda trial=trial: _length(plots.curve("accuracy", trial.name, "val_accuracy")) == 2,
                        timeout=2000)
        assert _length(plots.curve("lr", trial.name, "lr")) == len(trial.step["lr"])
    assert REDRAW_INTERVAL_MS == 50


def test_curves_are_coloured_by_batch_size_and_runs_told_apart_by_line_style(plots, run, tmp_path):
    other = read_run(write_run(tmp_path / "other.h5", batch_sizes=(16, 256), seeds=(0,), epochs=2, train_size=1024))
    plots.set_runs([run, other])
    sizes = sorted(set(BATCH_SIZES) | {256})
    for run_index, shown in enumerate((run, other)):
        for trial in shown.trials:
            pen = plots.curve("accuracy", trial.name, "val_accuracy", run_index).opts["pen"]
            assert pen.color().rgb() == batch_size_color(trial.batch_size, sizes).rgb()
            assert pen.style() == (Qt.PenStyle.SolidLine if run_index == 0 else Qt.PenStyle.DashLine)
    texts = [entry.text for entry in plots.legend_entries()]
    assert "256" in texts and "<b>Runs</b>" in texts and "<b>Seed</b>" in texts


def test_legend_click_hides_a_batch_size(plots, run):
    plots.set_runs([run])
    plots.set_batch_size_visible(16, False)
    hidden = [t for t in run.trials if t.batch_size == 16]
    assert all(not plots.curve("loss", t.name, "val_loss").isVisible() for t in hidden)
    assert plots.curve("loss", run.trials[-1].name, "val_loss").isVisible()
    plots.click_legend_entry(("batch_size", 16))
    assert all(plots.curve("loss", t.name, "val_loss").isVisible() for t in hidden)


def test_smoothing_log_scale_and_step_loss_toggle(plots, run):
    plots.set_runs([run])
    trial = run.trials[0]
    plots.set_smoothing(0.0)
    plots.redraw_now()
    _, raw = plots.curve("loss", trial.name, "loss").getOriginalDataset()
    np.testing.assert_allclose(raw, trial.step["loss"], rtol=1e-6)
    plots.set_smoothing(0.9)
    plots.redraw_now()
    _, smooth = plots.curve("loss", trial.name, "loss").getOriginalDataset()
    np.testing.assert_allclose(smooth, ema(trial.step["loss"], 0.9))
    assert np.std(np.diff(smooth)) < np.std(np.diff(raw))

    plots.set_log_y("loss", True)
    assert plots.plot_item("loss").ctrl.logYCheck.isChecked() and plots.log_y("loss")
    plots.set_log_x(True)
    assert all(plots.plot_item(name).ctrl.logXCheck.isChecked() for name in plots.plot_names())

    plots.set_step_loss_visible(False)
    assert not plots.curve("loss", trial.name, "loss").isVisible()
    assert plots.curve("loss", trial.name, "val_loss").isVisible()


def test_crosshair_reads_the_nearest_value(plots, run):
    plots.set_runs([run])
    trial = run.trials[2]
    epoch, accuracy = trial.epoch["epoch"][1], trial.epoch["val_accuracy"][1]
    text = plots.show_crosshair("accuracy", float(epoch), float(accuracy * 100))
    assert f"batch size {trial.batch_size}" in text and f"seed {trial.seed}" in text
    assert f"{accuracy * 100:.2f} %" in text and "epoch 2.00" in text
    assert plots.readout() == text


def test_failed_trials_are_plotted_with_what_they_measured(plots, tmp_path):
    run = read_run(write_run(tmp_path / "failed.h5", batch_sizes=(16, 32, 64), epochs=3, train_size=1024,
                             statuses={32: schema.DIVERGED, 64: schema.OUT_OF_MEMORY}))
    plots.set_runs([run])
    diverged, oom = run.trials[1], run.trials[2]
    assert len(plots.curve("loss", diverged.name, "val_loss").getOriginalDataset()[0]) == 1
    assert _length(plots.curve("loss", oom.name, "val_loss")) == 0
    legend = " ".join(entry.text for entry in plots.legend_entries())
    assert "diverged" in legend and "out&nbsp;of&nbsp;memory" in legend


def test_empty_state(plots):
    plots.set_runs([])
    assert plots.is_empty()


def test_mouse_over_a_plot_moves_the_crosshair(plots, run, qtbot):
    plots.set_runs([run])
    trial = run.trials[0]
    view = plots.plot_item("throughput").getViewBox()
    x, y = float(trial.epoch["epoch"][-1]), float(trial.epoch["samples_per_s"][-1])
    qtbot.waitUntil(lambda: view.width() > 100 and view.viewRange()[1][0] < y < view.viewRange()[1][1],
                    timeout=2000)                                   # laid out, and the point in view
    plots.graphics().scene().sigMouseMoved.emit(view.mapViewToScene(QPointF(x, y)))
    qtbot.waitUntil(lambda: "Throughput" in plots.readout(), timeout=2000)
    assert f"batch size {trial.batch_size}" in plots.readout()
    plots.graphics().scene().sigMouseMoved.emit(QPointF(-50, -50))     # outside every plot
    qtbot.waitUntil(lambda: plots.readout() == "", timeout=2000)


def test_follows_the_theme(plots, run, qapp):
    from gui import theme
    plots.set_runs([run])
    trial = run.trials[0]
    light = plots.curve("accuracy", trial.name, "val_accuracy").opts["pen"].color().rgb()
    theme.apply_theme(qapp, "dark")
    try:
        assert plots.graphics().backgroundBrush().color().lightnessF() < 0.5
        dark = plots.curve("accuracy", trial.name, "val_accuracy").opts["pen"].color()
        assert dark.rgb() != light
        assert dark.rgb() == batch_size_color(trial.batch_size, BATCH_SIZES, dark=True).rgb()
    finally:
        theme.apply_theme(qapp, "light")
    assert plots.curve("accuracy", trial.name, "val_accuracy").opts["pen"].color().rgb() == light


def test_only_curves_whose_data_grew_are_redrawn(plots, qtbot):
    live, events = live_run(batch_sizes=(32,), epochs=2, train_size=1024, chunk_steps=8)
    plots.set_runs([live.run])
    events = iter(events)
    for event in events:                       # up to and including the first epoch's end
        plots.mark_dirty(live.apply(event))
        if isinstance(event, EpochEnded):
            break
    plots.redraw_now()
    name = live.run.trials[0].name
    set_data_calls: dict[str, int] = {}
    for metric, plot in (("val_accuracy", "accuracy"), ("loss", "loss")):
        curve = plots.curve(plot, name, metric)
        original = curve.setData
        curve.setData = lambda *args, metric=metric, original=original, **kwargs: (
            set_data_calls.__setitem__(metric, set_data_calls.get(metric, 0) + 1), original(*args, **kwargs))
    for event in events:                       # steps of the second epoch only: epoch curves do not grow
        plots.mark_dirty(live.apply(event))
        if isinstance(event, StepsLogged):
            break
    plots.redraw_now()
    assert set_data_calls == {"loss": 1}


class SteppingClock:
    """A fake clock: each reading is `step` seconds after the previous one, so everything LivePlots times (a
    setData pass, a paint) costs exactly `step`, however fast or busy the machine is."""

    def __init__(self):
        self.now = 0.0
        self.step = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_redraw_interval_adapts_to_the_cost_of_painting(qtbot, run):
    clock = SteppingClock()
    plots = LivePlots(clock=clock)
    qtbot.addWidget(plots)
    plots.resize(1100, 700)
    plots.show()
    plots.set_runs([run])

    def redraw_costing(seconds: float) -> int:
        clock.step = seconds
        plots.graphics().grab()               # a real paint, timed by the fake clock
        assert plots.graphics().last_paint_s == pytest.approx(seconds)
        plots.mark_dirty()
        plots.redraw_now()                    # setData, timed by the fake clock
        return plots.redraw_interval_ms()

    assert redraw_costing(0.001) == REDRAW_INTERVAL_MS            # cheap: the shortest interval
    assert redraw_costing(0.020) == 3 * (20 + 20)                  # setData + paint 40 ms: wait three times as long
    assert redraw_costing(1.0) == MAX_REDRAW_INTERVAL_MS           # never slower than a few redraws a second
    assert redraw_costing(0.001) == REDRAW_INTERVAL_MS            # and back once painting is cheap again


def test_toolbar_wraps_in_a_narrow_window(plots, qtbot):
    assert plots.minimumSizeHint().width() < 500
    plots.resize(520, 600)
    toolbar = plots.toolbar()
    qtbot.waitUntil(toolbar.is_wrapped, timeout=1000)
    qtbot.waitUntil(lambda: toolbar.options_group().geometry().top() > toolbar.x_axis_group().geometry().top(),
                    timeout=1000)
    plots.resize(1100, 700)
    qtbot.waitUntil(lambda: not toolbar.is_wrapped(), timeout=1000)


def test_a_growing_curve_is_smoothed_as_a_whole(plots, qtbot):
    live, events = live_run(batch_sizes=(32,), epochs=2, train_size=1024, chunk_steps=8)
    plots.set_runs([live.run])
    for event in events:                       # redrawn chunk by chunk: smoothing continues where it stopped
        plots.mark_dirty(live.apply(event))
        plots.redraw_now()
    trial = live.run.trials[0]
    _, smoothed = plots.curve("loss", trial.name, "loss").getOriginalDataset()
    np.testing.assert_allclose(smoothed, ema(trial.step["loss"], plots.smoothing()))
    assert ema(np.array([2.0, 4.0]), 0.5, previous=0.0).tolist() == [1.0, 2.5]


def test_epoch_markers_are_left_out_once_they_would_overlap(plots, run, monkeypatch):
    plots.set_runs([run])
    trial = run.trials[0]
    assert plots.curve("accuracy", trial.name, "val_accuracy").opts["symbol"] is not None
    monkeypatch.setattr("gui.plot_curves.MARKERS_MAX_EPOCH_POINTS", len(run.trials) * 3 - 1)   # 3 epochs a trial
    plots.mark_dirty()
    plots.redraw_now()
    assert plots.curve("accuracy", trial.name, "val_accuracy").opts["symbol"] is None
    assert plots.curve("accuracy", trial.name, "train_accuracy").opts["symbol"] is None


def _svg_texts(path) -> list[str]:
    return [text.replace("\xa0", " ").strip() for text in re.findall(r">([^<>]+)</text>", path.read_text())]


def test_an_exported_plot_stands_alone(plots, run, tmp_path):
    other = read_run(write_run(tmp_path / "other.h5", batch_sizes=(16, 256), seeds=(0,), epochs=2, train_size=1024))
    plots.set_runs([run])
    plots.set_x_axis("wall_time_s")
    plots.export_plot("accuracy", tmp_path / "accuracy.svg")
    texts = _svg_texts(tmp_path / "accuracy.svg")
    assert texts[0] == f"Accuracy · {run.path.stem}"                       # title, naming the run
    assert "Training time (s)" in texts and "Accuracy (%)" in texts        # both axes, with units
    assert {"Batch size", "16", "32", "64", "128", "Validation accuracy", "Train accuracy"} <= set(texts)
    assert "Batch loss (smoothed, 0.60)" not in texts                      # only what is in this plot

    plots.set_runs([run, other])                                           # overlaid: the runs in the legend
    plots.export_plot("loss", tmp_path / "loss.svg")
    texts = _svg_texts(tmp_path / "loss.svg")
    assert texts[0] == "Loss" and "Training time (s)" in texts and "Loss (nats)" in texts
    assert {"Runs", run.path.stem, other.path.stem, "256", "Batch loss (smoothed, 0.60)"} <= set(texts)
    plots.export_plot("memory", tmp_path / "memory.png")
    image = QImage(str(tmp_path / "memory.png"))
    assert image.width() >= 960 and image.height() >= 600


def test_a_run_can_be_hidden_from_its_legend_entry(plots, run, tmp_path):
    other = read_run(write_run(tmp_path / "other.h5", batch_sizes=(16, 256), seeds=(0,), epochs=2, train_size=1024))
    plots.set_runs([run, other])
    entry = next(entry for entry in plots.legend_entries() if entry.text == other.path.stem)
    assert entry.key == ("run", 1) and entry.active
    plots.click_legend_entry(entry.key)
    assert not any(plots.curve("loss", trial.name, "val_loss", 1).isVisible() for trial in other.trials)
    assert all(plots.curve("loss", trial.name, "val_loss", 0).isVisible() for trial in run.trials)
    assert not next(entry for entry in plots.legend_entries() if entry.key == ("run", 1)).active
    plots.click_legend_entry(("run", 1))
    assert all(plots.curve("loss", trial.name, "val_loss", 1).isVisible() for trial in other.trials)


def _csv(path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_curve_data_exports_as_csv_with_units_in_the_header(plots, run, tmp_path):
    plots.set_runs([run])
    plots.set_batch_size_visible(128, False)                  # what is shown is what is exported
    shown = [trial for trial in run.trials if trial.batch_size != 128]

    plots.export_data(schema.EPOCH_GROUP, tmp_path / "epochs.csv")
    rows = _csv(tmp_path / "epochs.csv")
    assert list(rows[0])[:5] == ["run", "trial", "batch_size", "seed", "lr"]
    assert {"epoch (epochs)", "wall_time_s (s)", "val_accuracy (fraction)", "peak_memory_bytes (bytes)",
            "samples_per_s (samples/s)"} <= set(rows[0])
    assert len(rows) == sum(len(trial.epoch["epoch"]) for trial in shown)
    first = shown[0]
    mine = [row for row in rows if row["trial"] == first.name]
    assert [float(row["val_accuracy (fraction)"]) for row in mine] == first.epoch["val_accuracy"].tolist()
    assert {row["run"] for row in rows} == {run.path.stem} and "128" not in {row["batch_size"] for row in rows}

    plots.export_data(schema.STEP_GROUP, tmp_path / "steps.csv")
    rows = _csv(tmp_path / "steps.csv")
    assert {"step (optimizer steps)", "samples (samples)", "loss (nats)", "lr", "grad_norm"} <= set(rows[0])
    assert len(rows) == sum(len(trial.step["step"]) for trial in shown)
    mine = [row for row in rows if row["trial"] == first.name]
    np.testing.assert_array_equal(np.array([float(row["loss (nats)"]) for row in mine], dtype=np.float32),
                                  first.step["loss"])
    with pytest.raises(UserError):
        plots.export_data(schema.STEP_GROUP, tmp_path / "missing" / "steps.csv")


def test_keyboard_shortcuts_choose_the_x_axis_and_fit(plots, run, qtbot):
    plots.set_runs([run])
    plots.activateWindow()
    qtbot.waitUntil(plots.isActiveWindow, timeout=2000)
    for number, key in zip((2, 3, 4, 1), ("step", "samples", "wall_time_s", "epoch")):
        assert f"Ctrl+{number}" in plots.toolbar().x_axis_button(key).toolTip()
        qtbot.keyClick(plots, getattr(Qt.Key, f"Key_{number}"), Qt.KeyboardModifier.ControlModifier)
        assert plots.x_axis() == key and plots.toolbar().x_axis_button(key).isChecked()
    plots.plot_item("loss").getViewBox().setXRange(1.0, 1.5, padding=0)
    assert plots.is_zoomed() and "Ctrl+0" in plots.toolbar().fit_button().toolTip()
    qtbot.keyClick(plots, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert not plots.is_zoomed()


def _mean_color(widget) -> tuple[float, float, float]:
    image = widget.grab().toImage()
    colors = [image.pixelColor(x, y) for x in range(2, image.width() - 2, 3) for y in range(2, image.height() - 2, 3)]
    return tuple(sum(getattr(color, part)() for color in colors) / len(colors) for part in ("red", "green", "blue"))


@pytest.mark.parametrize("theme_name", ["light", "dark"])
def test_the_chosen_x_axis_stands_out_in_both_themes(plots, qapp, theme_name):
    from gui import theme
    theme.apply_theme(qapp, theme_name)
    try:
        plots.set_x_axis("samples")
        chosen = _mean_color(plots.toolbar().x_axis_button("samples"))
        other = _mean_color(plots.toolbar().x_axis_button("step"))
        assert sum(abs(a - b) for a, b in zip(chosen, other)) > 120     # filled with the accent, not a faint tint
    finally:
        theme.apply_theme(qapp, "light")


@pytest.mark.parametrize(("width", "columns"), [(1100, 3), (700, 2), (420, 1)])
def test_plots_keep_a_readable_size_in_a_small_window(plots, run, qtbot, width, columns):
    plots.set_runs([run])
    plots.resize(width, 420)                  # the Live tab of a 1024×640 window is about 700×350
    qtbot.waitUntil(lambda: plots.columns() == columns, timeout=2000)
    for name in plots.plot_names():
        qtbot.waitUntil(lambda name=name: plots.plot_item(name).height() >= MIN_PLOT_HEIGHT, timeout=2000)
        assert plots.plot_item(name).width() >= 0.8 * min(MIN_PLOT_WIDTH, width)


@pytest.mark.parametrize("width", [700, 1500])
def test_x_tick_labels_never_touch(qtbot, width, tmp_path):
    """pyqtgraph labels finer ticks wherever coarser ones left room, which ran epoch labels together
    ("10111213") on a narrow plot; a level is labelled only where its labels fit apart."""
    widget = LivePlots()
    qtbot.addWidget(widget)
    widget.resize(width, 560)
    widget.show()
    widget.set_runs([read_run(write_run(tmp_path / "run.h5", batch_sizes=(16,), epochs=15, train_size=512))])
    qtbot.wait(50)
    for name in widget.plot_names():
        axis = widget.plot_item(name).getAxis("bottom")
        image = QImage(axis.boundingRect().size().toSize(), QImage.Format.Format_ARGB32)
        painter = QPainter(image)
        _, _, texts = axis.generateDrawSpecs(painter)
        painter.end()
        rects = sorted((rect for rect, _, text in texts if text), key=lambda rect: rect.left())
        assert len(rects) >= 3, name
        for left, right in zip(rects, rects[1:]):
            assert right.left() - left.right() >= 4, (name, width, [(text, rect.left(), rect.right()) for rect, _, text in texts])
