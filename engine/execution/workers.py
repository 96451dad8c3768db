"""Several trials at once, each in its own worker process, with the run file written by the parent alone.

A worker is a spawned process (multiprocessing's spawn context: a fresh interpreter, the same way on Linux,
macOS, Windows and in the packaged app, where main.py's freeze_support hands the worker over). It receives the
dataset once (its tensors travel through shared memory, not copied per trial), then trains the trials the
parent sends it with engine.train.run_trial, the function a sequential sweep calls, and sends every event back
over a pipe. The parent hands each event to the sweep's recorder, which writes the run file and tells the
observer, so the file, the live views and resume see what a sequential sweep would show them.

Stop reaches a worker as a message that a listening thread turns into the trial's stop flag, so the trial ends
`cancelled` within one step, as in a sequential sweep. A worker that dies (killed for memory, a crash in native
code) leaves its trial `failed` with the reason; the next trial gets a fresh worker.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

import torch

from engine import schema
from engine.events import Event, TrialEnded, TrialSpec, TrialStarted
from engine.train import TrialContext, run_trial, total_steps

if TYPE_CHECKING:
    from engine.data import Dataset

# After Stop, a worker that has not ended its trial within this long (busy in an evaluation, which does not
# look at the stop flag, or hung in native code) is ended by the parent and its trial recorded as cancelled.
STOP_GRACE_S = 1.0
# How often the parent looks at the stop flag while no event arrives.
POLL_S = 0.05
_STOP = "stop"


@dataclasses.dataclass(frozen=True)
class PruneAsked:
    """A question from a trial trained in another process, after an evaluation: does the search's pruner stop it
    here? Not an event of the run: the parent, which owns the search, answers it (the evaluation itself came
    just before, as Evaluated)."""
    spec: TrialSpec
    metrics: dict[str, float]


def trial_context_here(config: Any, dataset: "Dataset", probe: torch.Tensor, device: str, threads: int,
                       emit: Callable[[Event], None], stop: threading.Event) -> TrialContext:
    """The context of trials trained in this process for a parent elsewhere (a worker, a Ray task): its
    threads and device set up as the parent's own are for a sequential sweep."""
    torch.set_num_threads(threads)
    torch_device = torch.device(device)
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)
        # As the parent sets for a sequential sweep: the same numbers over the last bit of speed.
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return TrialContext(config=config, dataset=dataset.to(torch_device), device=torch_device,
                        train_eval_index=probe.to(torch_device), emit=emit, stop=stop)


def record_lost_trial(context: TrialContext, spec: TrialSpec, started: bool, status: str, error: str) -> None:
    """End in the run file a trial whose process cannot say so itself (it died, or was ended after Stop);
    one that had not started yet still becomes a trial in the file, with its outcome, as run_trial does."""
    if not started:
        steps_per_epoch = context.dataset.train_size // spec.batch_size
        steps = total_steps(context.config.train, steps_per_epoch, spec.batch_size)
        context.emit(TrialStarted(trial=spec, steps_per_epoch=steps_per_epoch, total_steps=steps,
                                  total_samples=steps * spec.batch_size, parameter_count=0))
    context.emit(TrialEnded(trial=spec, status=status, error=error))


def _serve(tasks: Connection, events: Connection, config: Any, dataset: "Dataset", probe: torch.Tensor,
           device: str, threads: int) -> None:
    """A worker's life: train each trial the parent sends until the parent closes the connection."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is for the parent, which stops the workers
    stop = threading.Event()
    specs: queue.Queue[TrialSpec | None] = queue.Queue()

    def listen() -> None:
        while True:
            try:
                message = tasks.recv()
            except (EOFError, OSError):   # the parent closed the connection, or died
                stop.set()
                specs.put(None)
                return
            if message == _STOP:
                stop.set()
            else:
                specs.put(message)

    threading.Thread(target=listen, name="worker-tasks", daemon=True).start()
    context = trial_context_here(config, dataset, probe, device, threads, events.send, stop)
    try:
        while (spec := specs.get()) is not None:
            run_trial(spec, context)
    except (BrokenPipeError, EOFError, ConnectionResetError):
        pass   # the parent is gone: nobody is left to tell


def _ending(exitcode: int | None) -> str:
    """How a worker process ended, in words."""
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            return f"it was killed ({name}; the system may have run out of memory)"
        return f"it crashed ({name})"
    return f"it exited with status {exitcode}"


@dataclasses.dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    tasks: Connection          # parent -> worker: trial specs and Stop
    events: Connection         # worker -> parent: the trial's events
    trial: TrialSpec | None = None
    started: bool = False      # whether the trial's TrialStarted came back


class WorkerPool:
    """Up to `count` workers training the trials that `propose` gives, events to `emit` (the recorder)."""

    def __init__(self, count: int, context: TrialContext, threads: int, devices: list[str]):
        self.count, self.context, self.threads, self.devices = count, context, threads, devices
        self._spawn = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._started = 0
        # What every worker receives once: on the CPU, the parent's own tensors (shared, not copied); from a
        # GPU, a copy on the CPU that each worker moves to its own device.
        self._dataset = context.dataset.to("cpu")
        self._probe = context.train_eval_index.to("cpu")

    def run(self, propose: Callable[[], TrialSpec | None], tell: Callable[[TrialSpec, str], None]) -> str:
        """Train until `propose` has nothing more and every worker is idle, telling `tell` of each trial that
        ended; returns the sweep's status: completed, or cancelled when the context's stop flag ended it."""
        self._tell = tell
        stop, stopping_since = self.context.stop, None
        try:
            while True:
                if not stop.is_set():
                    self._assign(propose)
                busy = [worker for worker in self._workers if worker.trial is not None]
                if not busy:
                    break
                if stop.is_set():
                    if stopping_since is None:
                        stopping_since = time.monotonic()
                        for worker in busy:
                            self._send(worker, _STOP)
                    elif time.monotonic() - stopping_since > STOP_GRACE_S:
                        for worker in busy:
                            self._end(worker, schema.CANCELLED, "stopped: its worker process did not end the "
                                      f"trial within {STOP_GRACE_S:g} s of Stop and was ended")
                        break
                ready = wait([w.events for w in busy] + [w.process.sentinel for w in busy], timeout=POLL_S)
                for worker in busy:
                    if worker.events in ready or worker.process.sentinel in ready:
                        self._receive(worker)
        finally:
            self.close()
        return schema.CANCELLED if stop.is_set() else schema.COMPLETED

    def close(self) -> None:
        """End every worker at once. A worker holds nothing to save (its events are all here by now, and
        the parent wrote them), so it is killed rather than waited for: an interpreter with torch takes
        tenths of a second to exit, which Stop would otherwise wait for."""
        for worker in self._workers:
            worker.tasks.close()
            worker.process.kill()
        for worker in self._workers:
            worker.process.join()
            worker.events.close()
        self._workers.clear()

    def _assign(self, propose: Callable[[], TrialSpec | None]) -> None:
        while True:
            for gone in [w for w in self._workers if w.trial is None and not w.process.is_alive()]:
                self._forget(gone)
            idle = next((worker for worker in self._workers if worker.trial is None), None)
            if idle is None and len(self._workers) >= self.count:
                return
            spec = propose()
            if spec is None:
                return
            worker = idle or self._start_worker()
            worker.trial, worker.started = spec, False
            self._send(worker, spec)

    def _start_worker(self) -> _Worker:
        tasks_in, tasks_out = self._spawn.Pipe(duplex=False)
        events_in, events_out = self._spawn.Pipe(duplex=False)
        device = self.devices[self._started % len(self.devices)]
        process = self._spawn.Process(
            target=_serve, name=f"trial-worker-{self._started + 1}", daemon=True,
            args=(tasks_in, events_out, self.context.config, self._dataset, self._probe, device, self.threads))
        process.start()
        self._started += 1
        tasks_in.close()
        events_out.close()
        worker = _Worker(process=process, tasks=tasks_out, events=events_in)
        self._workers.append(worker)
        return worker

    def _send(self, worker: _Worker, message: Any) -> None:
        try:
            worker.tasks.send(message)
        except (BrokenPipeError, OSError):
            pass   # it died: its sentinel says so at the next wait

    def _receive(self, worker: _Worker) -> None:
        """Hand on every event the worker has sent; a worker that ended loses its trial as failed."""
        try:
            while worker.events.poll():
                self._handle(worker, worker.events.recv())
        except (EOFError, OSError):
            pass
        if not worker.process.is_alive():
            worker.process.join()   # its exit code, for the reason
            if worker.trial is not None:
                self._end(worker, schema.FAILED, f"the worker process training this trial ended: "
                          f"{_ending(worker.process.exitcode)}")
            self._forget(worker)

    def _forget(self, worker: _Worker) -> None:
        worker.process.join()
        worker.events.close()
        worker.tasks.close()
        self._workers.remove(worker)

    def _handle(self, worker: _Worker, event: Event) -> None:
        worker.started = worker.started or isinstance(event, TrialStarted)
        self.context.emit(event)
        if isinstance(event, TrialEnded):
            worker.trial = None
            self._tell(event.trial, event.status)

    def _end(self, worker: _Worker, status: str, error: str) -> None:
        """Record the worker's trial as ended here, for a worker that cannot say so itself, and end it."""
        spec, worker.trial = worker.trial, None
        if worker.process.is_alive():
            worker.process.kill()
        record_lost_trial(self.context, spec, worker.started, status, error)
        self._tell(spec, status)
