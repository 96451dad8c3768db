"""The training worker: real sweeps in a real QThread, signals received on the GUI thread."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QObject, Qt, Signal, Slot

from engine import schema
from engine.config import parse_config
from engine.events import (EpochEnded, Message, StepsLogged, SweepEnded, SweepStarted, TrialEnded, TrialSpec,
                           TrialStarted)
from engine.runfile import read_run
from gui.worker import STEP_INTERVAL_S, WORKER_NICENESS, StepCoalescer, WorkerThread


def tiny_config(**overrides):
    table = {
        "name": "worker-test",
        "data": {"dataset": "synthetic", "num_samples": 400, "num_features": 8, "num_classes": 3},
        "model": {"kind": "mlp", "width": 16, "depth": 1},
        "train": {"lr": 0.05, "epochs": 2, "seeds": [0]},
        "sweep": {"batch_sizes": [16, 32, 64], "device": "cpu"},
    }
    for section, values in overrides.items():
        table[section].update(values)
    return parse_config(table)


class Recorder(QObject):
    """Collects every worker signal, with its arrival time, on the GUI thread.

    A QObject living on the GUI thread, so the worker's signals reach its slots queued, as they reach the
    main window's; `finished` is re-emitted from here for tests to wait on. (A plain function connected to
    the worker would run on the worker's thread.)"""

    finished_here = Signal(str)
    steps_here = Signal()

    def __init__(self, worker):
        super().__init__()
        self.step_batches: list[tuple[float, list[StepsLogged]]] = []
        self.events: list = []
        self.failures: list[str] = []
        self.finished: list[str] = []
        self.threads: set[int] = set()
        worker.steps_logged.connect(self._steps)
        worker.event_received.connect(self._event)
        worker.failed.connect(self._failed)
        worker.finished.connect(self._finished)

    @Slot(str)
    def _failed(self, message):
        self.failures.append(message)

    @Slot(str)
    def _finished(self, path):
        self.threads.add(threading.get_ident())
        self.finished.append(path)
        self.finished_here.emit(path)

    @Slot(object)
    def _steps(self, batch):
        self.threads.add(threading.get_ident())
        self.step_batches.append((time.monotonic(), batch))
        self.events.append(("steps", batch))
        self.steps_here.emit()

    @Slot(object)
    def _event(self, event):
        self.threads.add(threading.get_ident())
        self.events.append(("event", event))


@pytest.fixture
def worker_thread():
    worker_thread = WorkerThread()
    yield worker_thread
    assert worker_thread.shutdown()


def test_sweep_signals_arrive_on_gui_thread_in_order_without_losing_epochs(qtbot, worker_thread, tmp_path):
    worker = worker_thread.worker
    recorder = Recorder(worker)
    config = tiny_config(sweep={"batch_sizes": [4, 8, 16]}, train={"epochs": 3})
    with qtbot.waitSignal(recorder.finished_here, timeout=60_000) as finished:
        worker.start_sweep(config, tmp_path)
    path = finished.args[0]
    assert path and recorder.failures == []
    assert recorder.finished == [path]
    assert recorder.threads == {threading.get_ident()}      # delivered on the GUI thread, never the worker's
    assert not worker.is_busy()

    kinds = [type(item[1]).__name__ if item[0] == "event" else "steps" for item in recorder.events]
    assert kinds[kinds.index("SweepStarted") - 1] == "Message"
    assert kinds[-1] == "SweepEnded"

    # Every epoch the run file holds arrived as an event; steps arrived before the epoch that ends them.
    run = read_run(path)
    epochs = [item[1] for item in recorder.events if isinstance(item[1], EpochEnded)]
    assert len(epochs) == sum(trial.epochs_done for trial in run.trials) == 9
    steps_seen: dict[str, int] = {}
    for kind, payload in recorder.events:
        if kind == "steps":
            for event in payload:
                steps_seen[event.trial.name] = int(event.step[-1])
        elif isinstance(payload, EpochEnded):
            assert steps_seen[payload.trial.name] == payload.metrics["step"]
    step_counts = {t.name: len(t.step["step"]) for t in run.trials}
    received = {}
    for _, batch in recorder.step_batches:
        for event in batch:
            received[event.trial.name] = received.get(event.trial.name, 0) + len(event.step)
    assert received == step_counts

    # Per trial: started, its epochs in order (with its other facts: evaluations, memory, telemetry), ended.
    for trial in run.trials:
        mine = [p for k, p in recorder.events if k == "event" and getattr(getattr(p, "trial", None), "name", None)
                == trial.name]
        assert isinstance(mine[0], TrialStarted) and isinstance(mine[-1], TrialEnded)
        middle = mine[1:-1]
        assert not any(isinstance(e, (TrialStarted, TrialEnded)) for e in middle)
        epochs = [e.metrics["epoch"] for e in middle if isinstance(e, EpochEnded)]
        assert epochs == list(range(1, trial.epochs_done + 1))


def test_step_signals_stay_at_most_about_twenty_per_second(qtbot, worker_thread, tmp_path):
    worker = worker_thread.worker
    recorder = Recorder(worker)
    emitted: list[float] = []
    # A direct connection runs in the worker thread at the moment of emission: the rate is measured where
    # it is made, not where a busy GUI thread may receive several queued signals at once.
    worker.steps_logged.connect(lambda _batch: emitted.append(time.monotonic()), Qt.ConnectionType.DirectConnection)
    # Batch size 1 on a small model: thousands of optimizer steps a second, logged by the engine in bursts.
    config = tiny_config(data={"num_samples": 1500}, sweep={"batch_sizes": [1, 2]}, train={"epochs": 1})
    with qtbot.waitSignal(recorder.finished_here, timeout=60_000):
        worker.start_sweep(config, tmp_path)
    times = np.array(emitted)
    assert len(times) >= 3 and len(times) == len(recorder.step_batches)
    # In any one-second window at most 20 timed emissions, plus one flush per epoch or trial event (2 trials).
    per_second = max(int(np.sum((times >= t) & (times < t + 1.0))) for t in times)
    assert per_second <= 1.0 / STEP_INTERVAL_S + 4, per_second
    assert not any(isinstance(p, Message) and p.level == "error" for _, p in recorder.events)


def test_user_error_is_reported_as_failed_then_finished(qtbot, worker_thread, tmp_path):
    data_file = tmp_path / "no-labels.csv"
    data_file.write_text("a,b,c\n1,2,3\n4,5,6\n" * 20, encoding="utf-8")
    worker = worker_thread.worker
    recorder = Recorder(worker)
    config = tiny_config(data={"dataset": str(data_file)}, sweep={"batch_sizes": [4]})
    with qtbot.waitSignal(recorder.finished_here, timeout=30_000) as finished:
        worker.start_sweep(config, tmp_path / "out")
    assert finished.args == [""]
    assert len(recorder.failures) == 1
    assert "no-labels.csv" in recorder.failures[0]
    assert "Traceback" not in recorder.failures[0]
    # The worker is ready for the next sweep.
    assert not worker.is_busy()
    with qtbot.waitSignal(recorder.finished_here, timeout=60_000) as finished:
        worker.start_sweep(tiny_config(train={"epochs": 1}, sweep={"batch_sizes": [32]}), tmp_path / "out")
    assert finished.args[0].endswith(".h5")


def test_stop_cancels_the_running_trial_within_a_second(qtbot, worker_thread, tmp_path):
    worker = worker_thread.worker
    recorder = Recorder(worker)
    config = tiny_config(data={"num_samples": 4000}, sweep={"batch_sizes": [2, 64]}, train={"epochs": 50})
    with qtbot.waitSignal(recorder.steps_here, timeout=60_000):
        worker.start_sweep(config, tmp_path)
    started = time.monotonic()
    with qtbot.waitSignal(recorder.finished_here, timeout=10_000) as finished:
        worker.stop()
    assert time.monotonic() - started < 2.5          # "within about a second", with slack for a busy CI
    run = read_run(finished.args[0])
    assert [t.status for t in run.trials] == [schema.CANCELLED]
    assert run.header.status == schema.CANCELLED
    sweep_end = [p for k, p in recorder.events if isinstance(p, SweepEnded)]
    assert sweep_end and sweep_end[0].status == schema.CANCELLED


def test_shutdown_ends_the_thread_even_mid_sweep(qtbot, tmp_path):
    worker_thread = WorkerThread()
    worker = worker_thread.worker
    recorder = Recorder(worker)
    config = tiny_config(data={"num_samples": 4000}, sweep={"batch_sizes": [2]}, train={"epochs": 50})
    with qtbot.waitSignal(recorder.steps_here, timeout=60_000):
        worker.start_sweep(config, tmp_path)
    assert worker_thread.shutdown(timeout_ms=10_000)
    assert worker_thread.thread.isFinished()
    assert [t.status for t in read_run(next(tmp_path.glob("*.h5"))).trials] == [schema.CANCELLED]


def _spec(index=0, batch_size=8):
    return TrialSpec(index=index, name=schema.trial_name(batch_size, 0), batch_size=batch_size, seed=0,
                     base_lr=0.1, lr=0.1)


def _steps(spec, first_step, count=1):
    step = np.arange(first_step, first_step + count, dtype=np.int64)
    return StepsLogged(trial=spec, step=step, samples=step * spec.batch_size, wall_time_s=step * 1e-3,
                       loss=np.ones(count, np.float32), lr=np.full(count, 0.1, np.float32),
                       grad_norm=np.ones(count, np.float32), epoch_fraction=float(first_step) / 100)


def test_coalescer_batches_fast_steps_and_keeps_every_other_event_in_order():
    """5,000 step records a second for two seconds, an epoch every 500 steps: steps are batched to at most
    one emission per 50 ms (plus the flush each epoch event forces, to keep order), and each epoch event
    comes out once, after every step logged before it."""
    clock = [0.0]
    out: list[tuple[str, float, object]] = []
    coalescer = StepCoalescer(lambda batch: out.append(("steps", clock[0], batch)),
                              lambda event: out.append(("event", clock[0], event)), clock=lambda: clock[0])
    spec = _spec()
    epochs = []
    for step in range(1, 10_001):
        clock[0] = step * 0.0002
        coalescer(_steps(spec, step))
        if step % 500 == 0:
            epoch = EpochEnded(trial=spec, metrics={"step": step})
            epochs.append(epoch)
            coalescer(epoch)
    coalescer(TrialEnded(trial=spec, status=schema.COMPLETED))
    coalescer.flush()

    emitted_epochs = [payload for kind, _, payload in out if kind == "event" and isinstance(payload, EpochEnded)]
    assert emitted_epochs == epochs
    assert isinstance(out[-1][2], TrialEnded)
    last_step = 0
    for kind, _, payload in out:
        if kind == "steps":
            steps = [int(s) for event in payload for s in event.step]
            assert steps == list(range(last_step + 1, last_step + 1 + len(steps)))
            last_step = steps[-1]
        elif isinstance(payload, EpochEnded):
            assert last_step == payload.metrics["step"]
    assert last_step == 10_000
    # Rate: 20 timed emissions a second, plus one flush for each of the 10 epoch events a second.
    step_times = [t for kind, t, _ in out if kind == "steps"]
    per_second = max(sum(1 for u in step_times if t <= u < t + 1.0) for t in step_times)
    assert per_second <= 20 + 10 + 1
    assert len(step_times) < 10_000 / 50


def test_coalescer_passes_slow_steps_straight_through():
    clock = [0.0]
    batches = []
    coalescer = StepCoalescer(batches.append, lambda event: None, clock=lambda: clock[0])
    spec = _spec()
    for step in range(1, 6):
        clock[0] = step * 0.1
        coalescer(_steps(spec, step))
    assert [len(batch) for batch in batches] == [1, 1, 1, 1, 1]


def test_sweep_started_reaches_listeners_before_any_steps(qtbot, worker_thread, tmp_path):
    worker = worker_thread.worker
    recorder = Recorder(worker)
    with qtbot.waitSignal(recorder.finished_here, timeout=60_000):
        worker.start_sweep(tiny_config(train={"epochs": 1}, sweep={"batch_sizes": [16]}), tmp_path)
    first_steps = next(i for i, (kind, _) in enumerate(recorder.events) if kind == "steps")
    started = next(i for i, (_, p) in enumerate(recorder.events) if isinstance(p, SweepStarted))
    assert started < first_steps


def test_what_torch_imports_for_the_first_optimizer_is_kept_out_of_the_garbage_collectors_sight():
    """PyTorch imports its compiler (~120,000 objects) when the first optimizer is made, on the worker thread;
    every full collection would then walk them while the window waits. Measured in a fresh interpreter, where
    nothing has made an optimizer yet."""
    script = textwrap.dedent("""
        import gc, torch
        from gui.worker import settle_framework
        settle_framework()
        before = len(gc.get_objects())
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        print(len(gc.get_objects()) - before)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 1000, result.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads have their own nice value on Linux only")
def test_the_training_thread_yields_cores_to_the_window(qtbot, worker_thread, tmp_path):
    """The worker thread runs WORKER_NICENESS steps nicer than the main thread, whose priority is untouched."""
    seen = {}

    def record(_event) -> None:      # a direct connection: runs on the worker thread, as the sweep does
        seen["worker"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    main = os.getpriority(os.PRIO_PROCESS, os.getpid())
    worker = worker_thread.worker
    worker.event_received.connect(record, Qt.ConnectionType.DirectConnection)
    recorder = Recorder(worker)
    with qtbot.waitSignal(recorder.finished_here, timeout=60_000):
        worker.start_sweep(tiny_config(sweep={"batch_sizes": [64]}, train={"epochs": 1}), tmp_path)
    assert seen["worker"] == min(19, main + WORKER_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, os.getpid()) == main


def test_garbage_is_collected_on_the_gui_thread_only_while_a_worker_thread_lives(qtbot):
    """A collection on the training thread ran the window's garbage Qt objects' finalizers there (a deadlock
    and a segfault in the suite): while a worker thread lives, automatic collection is off and the GUI
    thread's timer collects instead; afterwards it is back on."""
    import gc

    from gui.worker import GuiThreadCollection
    assert gc.isenabled()
    first, second = WorkerThread(), WorkerThread()
    try:
        assert not gc.isenabled()

        class Cycle:
            pass
        garbage = Cycle()
        garbage.me = garbage
        alive = weakref.ref(garbage)
        del garbage
        kept = [Cycle() for _ in range(gc.get_threshold()[0] + 1)]   # past the youngest generation's threshold
        qtbot.waitUntil(lambda: alive() is None, timeout=5_000)
        del kept
        assert first.shutdown() and not gc.isenabled()     # the second still runs
    finally:
        assert second.shutdown() and first.shutdown()
    assert gc.isenabled()
    GuiThreadCollection().release()      # a release without a hold changes nothing
    assert gc.isenabled()
