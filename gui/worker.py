"""The training worker: a QObject that lives in its own QThread, runs one sweep at a time through the engine,
and turns engine events into Qt signals (queued to the GUI thread).

Step events are coalesced: the engine may log steps many times a second per trial, the GUI wants at most
~20 updates a second, so StepsLogged records are buffered and handed over as one list at most every 50 ms.
Every other event (trial and epoch ends, messages) is emitted at once and in order, after any steps buffered
before it, so nothing the table or the run file depends on is ever dropped or reordered.
"""
from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from pathlib import Path

import torch
from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal, Slot

from engine.config import ExperimentConfig
from engine.errors import UserError
from engine.events import Event, StepsLogged
from engine.hardware.threads import ThreadPolicy, set_thread_policy
from engine.resume import plan_resume, resume_sweep
from engine.sweep import run_sweep

STEP_INTERVAL_S = 0.05   # at most one batch of step records per 50 ms reaches the GUI


# With every core busy in PyTorch's thread pool, the GUI thread preempts a pool thread, the others spin at the
# pool's barrier, and small-batch training slowed 25-250 times in the window (11-92 against 2,400-2,800 steps/s
# at batch size 8 on 2 cores; benchmarks/gui_latency.py). The engine's thread policy keeps that core free.
WINDOW_THREAD_POLICY = ThreadPolicy(reserve=1)


# The training thread's nice value above the window's (Linux). With both at the same priority, a batch-size-8
# sweep on 2 cores at load average 2-3 left the window waiting for a core: 99th-percentile latency 33-87 ms over
# six runs; with the training thread at 10, 25-32 ms, and training no slower (1,130-1,770 steps/s against
# 1,030-1,670; benchmarks/gui_latency.py, interleaved runs).
WORKER_NICENESS = 10


def lower_thread_priority(niceness: int = WORKER_NICENESS) -> None:
    """Make the calling thread `niceness` steps nicer than the process's main thread, so that the window's thread
    gets a core first when they compete; threads it starts later (PyTorch's pool) inherit it. Linux only, where
    each thread has its own nice value; elsewhere the thread keeps its priority."""
    if not sys.platform.startswith("linux"):
        return
    try:
        wanted = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + niceness)
        thread = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, thread) != wanted:
            os.setpriority(os.PRIO_PROCESS, thread, wanted)
    except OSError:
        pass        # not permitted here (a sandbox): training then competes with the window as before


def settle_framework() -> None:
    """Have PyTorch import what it imports lazily on the first optimizer (its compiler, sympy: ~800 modules,
    ~120,000 objects), then move everything alive out of the garbage collector's sight, as gui.app does after
    start-up. Otherwise every full collection during the sweep walks those objects while holding the
    interpreter lock, a pause of 80-190 ms for the window (benchmarks/gui_latency.py). Objects of later
    trials are not frozen and are collected as usual.

    Garbage is collected first only on the main thread. On the worker thread a collection would run the
    finalizers of the window's garbage Qt objects on the wrong thread (one deadlocked in a test), so what
    little garbage exists then is frozen with the rest; the window collected its own at start-up."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    if threading.current_thread() is threading.main_thread():
        gc.collect()
    gc.freeze()


def report_unexpected(error: Exception) -> str:
    """A bug met on a background thread: its traceback to the terminal, and the line the window shows."""
    traceback.print_exc(file=sys.stderr)
    return (f"Unexpected error ({type(error).__name__}): {error}. Details were written to the terminal; please "
            "report this.")


class StepCoalescer:
    """Orders and batches a stream of engine events for a slow consumer. Pure Python, one producer thread.

    `emit_steps(list)` gets buffered StepsLogged records, at most once per `interval` seconds, except that
    every other event first flushes what is buffered and then goes to `emit_event(event)`, so order is kept.
    """

    def __init__(self, emit_steps: Callable[[list[StepsLogged]], None], emit_event: Callable[[Event], None],
                 interval: float = STEP_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self._emit_steps, self._emit_event = emit_steps, emit_event
        self._interval, self._clock = interval, clock
        self._buffer: list[StepsLogged] = []
        self._last_emit = -float("inf")

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepsLogged):
            self._buffer.append(event)
            if self._clock() - self._last_emit >= self._interval:
                self.flush()
            return
        self.flush()
        self._emit_event(event)

    def flush(self) -> None:
        if self._buffer:
            steps, self._buffer = self._buffer, []
            self._last_emit = self._clock()
            self._emit_steps(steps)


class SweepWorker(QObject):
    """Runs sweeps on the thread it was moved to. Use `start_sweep`, `resume_sweep` and `stop` from the GUI thread.

    Signals, all emitted on the worker thread and delivered queued to receivers on the GUI thread:
    - steps_logged(list[StepsLogged]): coalesced step records, at most ~20 per second.
    - event_received(Event): every other engine event, in order (SweepStarted, TrialStarted, EpochEnded,
      TrialEnded, SweepEnded, Message).
    - failed(str): the sweep could not run or broke off; the message is for the user (no traceback).
    - finished(str): always last; the run file's path, or "" when no file was written.
    """

    steps_logged = Signal(object)
    event_received = Signal(object)
    failed = Signal(str)
    finished = Signal(str)
    _start_requested = Signal(object, str)
    _resume_requested = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self._busy = threading.Event()
        # Queued because the worker lives on another thread: the sweep runs there, not in the caller.
        self._start_requested.connect(self._run)
        self._resume_requested.connect(self._resume)

    def is_busy(self) -> bool:
        return self._busy.is_set()

    def start_sweep(self, config: ExperimentConfig, out_dir: str | Path) -> None:
        """Ask the worker thread to run a sweep. Callable from any thread; returns at once."""
        self._claim()
        self._start_requested.emit(config, str(out_dir))

    def resume_sweep(self, run_file: str | Path) -> None:
        """Ask the worker thread to go on with an interrupted or stopped run in its own file (engine/resume.py).
        Callable from any thread; returns at once."""
        self._claim()
        self._resume_requested.emit(str(run_file))

    def _claim(self) -> None:
        if self._busy.is_set():
            raise RuntimeError("a sweep is already running")
        self._stop.clear()
        self._busy.set()

    def stop(self) -> None:
        """Ask the running sweep to stop; the engine ends the running trial as cancelled within one step."""
        self._stop.set()

    @Slot(object, str)
    def _run(self, config: ExperimentConfig, out_dir: str) -> None:
        self._sweep(lambda on_event: run_sweep(config, out_dir, on_event=on_event, stop=self._stop))

    @Slot(str)
    def _resume(self, run_file: str) -> None:
        self._sweep(lambda on_event: resume_sweep(plan_resume(run_file), on_event=on_event, stop=self._stop))

    def _sweep(self, train: Callable[[Callable[[Event], None]], Path]) -> None:
        coalescer = StepCoalescer(self.steps_logged.emit, self.event_received.emit)
        path = ""
        try:
            set_thread_policy(WINDOW_THREAD_POLICY)
            lower_thread_priority()
            settle_framework()
            path = str(train(coalescer))
        except UserError as error:
            self.failed.emit(str(error))
        except Exception as error:  # noqa: BLE001 — a bug must not kill the thread or freeze the window
            self.failed.emit(report_unexpected(error))
        finally:
            coalescer.flush()
            self._busy.clear()
            self.finished.emit(path)


class GuiThreadCollection:
    """Python's automatic garbage collection, moved onto the GUI thread while background threads live.

    A collection runs the finalizers of whatever garbage it finds on the thread that triggered it. When that is
    a training or search thread and the garbage holds Qt objects of the window (closed dialogs, old widgets),
    Qt deletes them off their thread: the suite saw a deadlock and a segmentation fault that way, while the
    first optimizer's imports allocated on the worker. So while any background thread is held, automatic
    collection is off and a timer on the GUI thread collects in its place, by the same thresholds (the
    pattern of pyqtgraph's GarbageCollector). hold() and release() are called on the GUI thread."""

    INTERVAL_MS = 250

    def __init__(self) -> None:
        self._holders = 0
        self._enabled_before = True
        self._timer: QTimer | None = None

    def hold(self) -> None:
        if self._holders == 0:
            self._enabled_before = gc.isenabled()
            gc.disable()
            self._timer = QTimer()
            self._timer.setInterval(self.INTERVAL_MS)
            self._timer.timeout.connect(self.collect)
            self._timer.start()
        self._holders += 1

    def release(self) -> None:
        if self._holders == 0:
            return
        self._holders -= 1
        if self._holders == 0:
            self._timer.stop()
            self._timer = None
            if self._enabled_before:
                gc.enable()

    @staticmethod
    def collect() -> None:
        """What the interpreter would have collected since the last tick, youngest generations first."""
        threshold = gc.get_threshold()
        young, middle, old = gc.get_count()
        if young > threshold[0]:
            gc.collect(0)
            if middle > threshold[1]:
                gc.collect(1)
                if old > threshold[2]:
                    gc.collect(2)


gui_thread_collection = GuiThreadCollection()


class WorkerThread:
    """A SweepWorker and the QThread it lives in, started together and shut down together."""

    def __init__(self) -> None:
        self.thread = QThread()
        self.thread.setObjectName("sweep-worker")
        self.worker = SweepWorker()
        self.worker.moveToThread(self.thread)
        gui_thread_collection.hold()
        self._holding = True
        self.thread.start()
        # However the application ends, the thread is stopped and joined before Qt tears objects down.
        _running_threads.add(self)
        app = QCoreApplication.instance()
        if app is not None and not app.property("sweepWorkersJoinedAtQuit"):
            app.setProperty("sweepWorkersJoinedAtQuit", True)
            app.aboutToQuit.connect(_shutdown_all)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Stop any sweep, end the thread's event loop and wait for it. True when the thread has ended."""
        if not self.thread.isFinished():
            self.worker.stop()
            self.thread.quit()
            if not self.thread.wait(timeout_ms):
                return False
        if self._holding:
            self._holding = False
            gui_thread_collection.release()
        return True


_running_threads: weakref.WeakSet[WorkerThread] = weakref.WeakSet()


def _shutdown_all() -> None:
    for worker_thread in list(_running_threads):
        worker_thread.shutdown()


atexit.register(_shutdown_all)
