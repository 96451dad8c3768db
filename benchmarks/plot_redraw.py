"""Redraw time of the live plots with 20 trials × 100,000 logged steps each.

Every step-level plot (batch loss, gradient norm, learning rate) then holds 20 curves of 100,000 points, and
the epoch-level plots 20 curves of 100 points. Measured, each over several repeats (mean and 95th percentile):

  setData          every curve gets its data again (smoothing included), nothing painted
  one frame        the plots painted once with unchanged data (what a resize or a scroll costs)
  full redraw      setData for every curve, the event loop runs (it paints), and a grab (paints again)
  zoomed frame     one frame with the x axis zoomed to a tenth of the run (clip to view at work)
  x-axis switch    epoch → step → samples seen → training time → epoch (every switch in turn): new x for every
                   curve and the view refitted to it, alone and with the frame that follows
  live update      one trial grows by 250 steps and an epoch (one engine flush), is redrawn as the 50 ms
                   timer tick does it (only that trial's curves get setData), then one frame

Each line gives the wall time and the GUI thread's CPU time (offscreen, Qt paints in that thread): on a machine
that other processes keep busy, the CPU time is the figure that compares.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/plot_redraw.py [--repeats N] [--size WxH]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine import schema  # noqa: E402
from engine.events import EpochEnded, StepsLogged, SweepStarted, TrialSpec, TrialStarted  # noqa: E402
from engine.live import LiveRun  # noqa: E402
from gui.app import create_application  # noqa: E402
from gui.plots import LivePlots  # noqa: E402
from tests.gui.runfactory import big_run_data, trial_curves  # noqa: E402

TRIALS = 20
POINTS = 100_000


def _stats(samples: list[tuple[float, float]]) -> str:
    wall = np.array([sample[0] for sample in samples]) * 1000
    cpu = np.array([sample[1] for sample in samples]) * 1000
    return (f"mean {wall.mean():7.1f} ms   p95 {np.percentile(wall, 95):7.1f} ms   "
            f"CPU mean {cpu.mean():6.1f} ms   (n={len(wall)})")


def _time(action, repeats: int) -> list[tuple[float, float]]:
    """Wall time and the GUI thread's CPU time of each call: on a machine other processes keep busy the CPU
    time is the part that is the plots' own (offscreen, Qt paints in this thread)."""
    samples = []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        action()
        samples.append((time.perf_counter() - start, time.thread_time() - start_cpu))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--size", default="1600x1000", help="window size, WxH")
    args = parser.parse_args()
    width, height = (int(value) for value in args.size.split("x"))

    app = create_application([])   # as the app runs: theme, pyqtgraph options, the binding guard
    started = time.perf_counter()
    run = big_run_data(trials=TRIALS, points=POINTS)
    built = time.perf_counter() - started
    plots = LivePlots()
    plots.resize(width, height)
    plots.show()
    app.processEvents()
    started = time.perf_counter()
    plots.set_runs([run])
    app.processEvents()
    plots.graphics().grab()
    first = time.perf_counter() - started
    view = plots.graphics()
    step_points = sum(len(trial.step["step"]) for trial in run.trials)

    def set_data():
        plots.mark_dirty()
        plots.redraw_now()

    def full_redraw():
        plots.mark_dirty()
        plots.redraw_now()
        app.processEvents()
        view.grab()

    def one_frame():
        view.grab()

    app.processEvents()
    setdata = _time(set_data, args.repeats)
    app.processEvents()
    full = _time(full_redraw, args.repeats)
    paint = _time(one_frame, args.repeats)

    loss = plots.plot_item("loss")
    (low, high), _ = loss.getViewBox().viewRange()
    loss.setXRange(low + 0.45 * (high - low), low + 0.55 * (high - low), padding=0)
    app.processEvents()
    zoomed = _time(one_frame, args.repeats)
    plots.fit_view()

    axes = ("epoch", "step", "samples", "wall_time_s")

    def next_axis() -> str:
        return axes[(axes.index(plots.x_axis()) + 1) % len(axes)]

    def switch_only():
        plots.set_x_axis(next_axis())

    def switch_and_frame():
        plots.set_x_axis(next_axis())
        view.grab()

    switch_repeats = 4 * max(1, args.repeats // 2)          # every switch equally often
    switch = []
    for _ in range(switch_repeats):
        switch += _time(switch_only, 1)                       # timed alone, then painted untimed
        view.grab()
    switch_frame = _time(switch_and_frame, switch_repeats)
    plots.set_x_axis("epoch")

    # A live run overlaid on the big one: its one trial grows while the 20 finished ones stay as they are.
    live = LiveRun()
    spec = TrialSpec(index=TRIALS, name=schema.trial_name(8192, 0), batch_size=8192, seed=0, base_lr=0.05, lr=0.05)
    steps_per_epoch = 250
    epochs = max(args.repeats, 1) + 1
    steps, rows = trial_curves(spec.batch_size, spec.seed, epochs, steps_per_epoch, spec.lr)
    live.apply(SweepStarted(run_path="live.h5", config_text=run.config_text, created="", trials=(spec,),
                            total_samples=0, device="cpu", device_name="", train_size=0, val_size=0))
    live.apply(TrialStarted(trial=spec, steps_per_epoch=steps_per_epoch, total_steps=epochs * steps_per_epoch,
                            total_samples=0, parameter_count=0))
    plots.set_runs([run, live.run])
    app.processEvents()
    epoch_index = [0]

    def live_update():
        index = epoch_index[0]
        chunk = slice(index * steps_per_epoch, (index + 1) * steps_per_epoch)
        changed = live.apply(StepsLogged(trial=spec, epoch_fraction=index + 1.0,
                                         **{key: values[chunk] for key, values in steps.items()}))
        changed |= live.apply(EpochEnded(trial=spec, metrics=rows[index]))
        epoch_index[0] += 1
        plots.mark_dirty(changed)
        plots.redraw_now()          # what the 50 ms timer tick does
        view.grab()

    update = _time(live_update, args.repeats)

    print(f"Live plots: {TRIALS} trials × {POINTS:,} steps ({step_points:,} step points per step-level plot, "
          f"3 step-level plots, 6 plots), window {width}×{height}, Qt platform "
          f"{QApplication.platformName()}, {os.cpu_count()} CPUs")
    print(f"  machine load (1, 5, 15 min):       {', '.join(f'{load:.1f}' for load in os.getloadavg())}")
    print(f"  building the run data (not GUI):    {built * 1000:7.0f} ms")
    print(f"  first show (create 120 curves):     {first * 1000:7.0f} ms")
    print(f"  setData, all 120 curves:            {_stats(setdata)}")
    print(f"  one frame (paint all 6 plots):      {_stats(paint)}")
    print(f"  full redraw (setData + events + grab): {_stats(full)}")
    print(f"  one frame, zoomed to 1/10 of x:     {_stats(zoomed)}")
    print(f"  x-axis switch (new x for all, refit): {_stats(switch)}")
    print(f"  x-axis switch + the frame after it: {_stats(switch_frame)}")
    print(f"  live update (1 trial +250 steps, setData + frame): {_stats(update)}")
    print(f"  timer budget per redraw:            {50:7.1f} ms (redraws are at most 20 a second)")
    plots.deleteLater()
    app.processEvents()


if __name__ == "__main__":
    main()
