"""GUI event-loop latency while a sweep trains at batch size 8 in the real main window.

A 10 ms timer on the GUI thread records how late each tick fires; a late tick is time the window could not
react to the user (resize, tab switch, scrolling a plot). The Live tab stays in view the whole time (the
costly case: its plots repaint as data arrives), and once a second the benchmark switches the x axis as a
user would, which redraws every curve. Target: 99th percentile below 30 ms.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_latency.py [--seconds 20]

The sweep is stopped after --seconds of training (it is planned longer), so the figures cover steady
training, the first trial's start-up included.

Each tick later than LATE_MS is attributed: the GUI thread's own CPU time since the previous tick (handling
events, redrawing), Python's garbage collections in that interval (a collection on either thread holds the
interpreter lock, so it stalls both), the time the GUI thread was ready but waited for a core (Linux's
/proc schedstat; other programs on a busy machine), and the rest: mostly waiting for the interpreter lock,
which the training thread holds while it runs Python. The machine's load average is printed with the figures.

Nothing of the user's settings or workspace is touched: both live in a temporary folder.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TICK_MS = 10
LATE_MS = 30       # the target: a tick later than this is one the user could feel, and is attributed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Collections:
    """Python's garbage collections as (start, end, generation, on the GUI thread), in perf_counter seconds."""

    def __init__(self, gui_thread: int):
        self.gui_thread = gui_thread
        self.pauses: list[tuple[float, float, int, bool]] = []
        self._started: dict[int, float] = {}

    def __call__(self, phase: str, info: dict) -> None:
        thread = threading.get_ident()
        if phase == "start":
            self._started[thread] = time.perf_counter()
        elif thread in self._started:
            self.pauses.append((self._started.pop(thread), time.perf_counter(), info["generation"],
                                thread == self.gui_thread))

    def within(self, start: float, end: float) -> float:
        """Seconds of collection overlapping [start, end]."""
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b, _, _ in self.pauses)


def run_queue_wait_s() -> float:
    """Seconds this thread has been ready to run but waited for a core (Linux); NaN where unknown."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as handle:
            return int(handle.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="stop the sweep after this much training (default 20)")
    parser.add_argument("--epochs", type=int, default=200, help="more than --seconds can train (default 200)")
    parser.add_argument("--num-samples", type=int, default=4000)
    parser.add_argument("--no-interaction", action="store_true", help="do not switch the x axis")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bsl-latency-"))
    os.environ["BATCH_SIZE_LAB_WORKSPACE"] = str(scratch / "workspace")
    os.environ.setdefault("BATCH_SIZE_LAB_CACHE", str(scratch / "cache"))
    from PySide6.QtCore import QElapsedTimer, Qt, QTimer

    from gui.app import create_application, keep_settings_in, settle_after_startup
    keep_settings_in(scratch / "settings")
    app = create_application([sys.argv[0]])
    from gui.main_window import X_AXES, MainWindow

    window = MainWindow()
    window.resize(1400, 900)
    window.show()
    settle_after_startup()                  # as gui.app.main does
    window.setup.set_config({
        "name": "latency",
        "data": {"dataset": "mnist1d", "num_samples": args.num_samples},
        "model": {"kind": "mlp", "width": 128, "depth": 2},
        "train": {"epochs": args.epochs, "lr": 0.05, "lr_scaling": "none"},
        "sweep": {"batch_sizes": [8], "device": "cpu"},
    })
    if window.setup.problems():
        print("config problems:", window.setup.problems(), file=sys.stderr)
        return 2

    lateness_ms: list[float] = []
    late: list[tuple[float, float, float, float]] = []  # (lateness, GUI-thread CPU, collections, core wait) in ms
    collections = Collections(threading.get_ident())
    gc.callbacks.append(collections)
    clock = QElapsedTimer()
    state = {"measuring": False, "last": 0, "steps": 0, "started": 0.0, "interactions": 0,
             "cpu": time.thread_time(), "wall": time.perf_counter(), "queued": run_queue_wait_s()}

    def tick() -> None:
        now = clock.elapsed()
        cpu, wall, queued = time.thread_time(), time.perf_counter(), run_queue_wait_s()
        if state["measuring"]:
            lateness = max(0.0, now - state["last"] - TICK_MS)
            lateness_ms.append(lateness)
            if lateness > LATE_MS:
                late.append((lateness, (cpu - state["cpu"]) * 1000, collections.within(state["wall"], wall) * 1000,
                             (queued - state["queued"]) * 1000))
        state["last"], state["cpu"], state["wall"], state["queued"] = now, cpu, wall, queued

    probe = QTimer()
    probe.setTimerType(Qt.TimerType.PreciseTimer)
    probe.setInterval(TICK_MS)
    probe.timeout.connect(tick)

    def interact() -> None:
        if not state["measuring"] or args.no_interaction:
            return
        state["interactions"] += 1
        window.set_x_axis(X_AXES[state["interactions"] % len(X_AXES)])

    user = QTimer()
    user.setInterval(1000)
    user.timeout.connect(interact)

    def started(_event) -> None:
        state["load"] = os.getloadavg()[0]
        collections.pauses.clear()
        state["measuring"] = True
        state["started"] = time.monotonic()
        state["last"] = clock.elapsed()
        QTimer.singleShot(int(args.seconds * 1000), window.stop_sweep)

    def finished(_path: str) -> None:
        state["measuring"] = False
        state["duration"] = time.monotonic() - state["started"]
        state["load_end"] = os.getloadavg()[0]
        runs = window.shown_runs()
        steps = runs[0].trials[0].step["step"] if runs and runs[0].trials else []
        state["steps"] = int(steps[-1]) if len(steps) else 0
        probe.stop()
        user.stop()
        window.close()

    window.sweep_started.connect(started)
    window.sweep_finished.connect(finished)
    clock.start()
    probe.start()
    user.start()
    QTimer.singleShot(0, window.start_sweep)
    app.exec()

    if not lateness_ms:
        print("no measurements: the sweep did not start", file=sys.stderr)
        return 1
    duration = state.get("duration", 0.0)
    print(f"GUI event-loop latency during a batch-size-8 sweep ({duration:.1f} s, "
          f"{state['steps']} optimizer steps = {state['steps'] / max(duration, 1e-9):.0f} steps/s, "
          f"Live tab in view, {state['interactions']} x-axis switches, {len(lateness_ms)} ticks of {TICK_MS} ms):")
    print(f"  p50 {percentile(lateness_ms, 50):6.1f} ms")
    print(f"  p90 {percentile(lateness_ms, 90):6.1f} ms")
    p99 = percentile(lateness_ms, 99)
    print(f"  p99 {p99:6.1f} ms   (target < {LATE_MS} ms: {'met' if p99 < LATE_MS else 'NOT met'})")
    print(f"  max {max(lateness_ms):6.1f} ms   mean {statistics.fmean(lateness_ms):.1f} ms")
    print(f"  load average {state['load']:.1f} at the start, {state['load_end']:.1f} at the end "
          f"({os.cpu_count()} cores)")
    full = [(b - a) * 1000 for a, b, generation, _ in collections.pauses if generation == 2]
    print(f"  garbage collections: {len(collections.pauses)}, of which {len(full)} full"
          + (f" (longest {max(full):.0f} ms)" if full else ""))
    if late:
        total = sum(lateness for lateness, *_ in late)
        gui = sum(min(cpu, lateness) for lateness, cpu, _, _ in late)
        collected = sum(min(collected, lateness) for lateness, _, collected, _ in late)
        queued = sum(min(queued, lateness) for lateness, _, _, queued in late)
        rest = max(0.0, total - gui - collected - queued)
        print(f"  {len(late)} ticks later than {LATE_MS} ms, {total:.0f} ms late in all: GUI-thread CPU "
              f"{100 * gui / total:.0f}%, garbage collection {100 * collected / total:.0f}%, waiting for a core "
              f"{100 * queued / total:.0f}%, the rest (mostly the interpreter lock) {100 * rest / total:.0f}%")
        print("  the five latest: " + "; ".join(
            f"{lateness:.0f} ms (GUI CPU {cpu:.0f}, collection {collected:.0f}, core wait {queued:.0f})"
            for lateness, cpu, collected, queued in sorted(late, reverse=True)[:5]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
