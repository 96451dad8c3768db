"""Sweeps on a Ray cluster (`run --ray ADDRESS|auto|local`): each trial a Ray task, the run file written here.

This process (the driver) keeps everything a sequential sweep keeps: the config, the search strategy, the recorder
and the one run file. It puts the dataset into Ray's object store once and sends each trial the strategy proposes
to the cluster as a task asking for its CPU threads (and one GPU when the sweep's device is cuda): a grid's trials
as many at once as the cluster has room for, a search's one at a time, since it chooses each point from the results
before it. The task trains the trial with engine.train.run_trial, the function every other executor calls, and
streams its events back as a Ray generator (ObjectRefGenerator); the driver hands them to the recorder, so the
file, the live views and resume see what a sequential sweep would show them. A search's pruner stays here too:
after each evaluation the task asks it and waits for the answer on a Ray queue.

Stop cancels the running tasks (`ray.cancel(force=True)`: a task does not look at the driver's stop flag) and
records their trials `cancelled`, every event they sent before being kept. A task whose worker process or node
dies leaves its trial `failed` with Ray's reason; the sweep goes on, and `run --resume RUN.h5 --ray …` trains it
again. Ray is an optional extra (requirements-ray.txt): nothing here imports it before `--ray` asks for it.
"""
from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from engine import schema
from engine.errors import ConfigError, UserError
from engine.events import Event, Message, TrialEnded, TrialSpec, TrialStarted
from engine.execution.workers import PruneAsked, record_lost_trial, trial_context_here
from engine.hardware.threads import ThreadChoice
from engine.train import run_trial

if TYPE_CHECKING:
    import torch

    from engine.config import ExperimentConfig
    from engine.data import Dataset
    from engine.train import TrialContext

INSTALL_HINT = "Ray is not installed: pip install -r requirements-ray.txt"
# How long the driver waits for a cluster's address to answer before calling it unreachable: Ray itself
# retries a silent address for minutes.
CONNECT_TIMEOUT_S = 5.0
# How often the driver looks at the stop flag while no event arrives.
POLL_S = 0.05
# A task sends its events in batches at most this far apart, instead of one Ray object per event.
BATCH_S = 0.2

TASK_PREFIX = "trial-"
_cluster: "Cluster | None" = None


@dataclass(frozen=True)
class Cluster:
    address: str
    cpus: int
    gpus: int
    nodes: int

    def describe(self) -> str:
        gpus = f", {self.gpus} GPU{'s' if self.gpus != 1 else ''}" if self.gpus else ""
        return (f"the Ray cluster at {self.address}: {self.nodes} node{'s' if self.nodes != 1 else ''}, "
                f"{self.cpus} CPU{'s' if self.cpus != 1 else ''}{gpus}")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return ray


def check_config(config: "ExperimentConfig") -> None:
    """What a sweep on Ray cannot do, as config errors before any file is written."""
    problems = []
    if config.sweep.data_parallel != 1:
        problems.append(f"sweep.data_parallel = {config.sweep.data_parallel} with --ray: a trial on the cluster "
                        "trains in one process; set it to 1 (or use torchrun, docs/scaling.md)")
    if problems:
        raise ConfigError(problems)


def _head_address(address: str) -> str | None:
    """The HOST:PORT that `address` means ('auto': RAY_ADDRESS, else the cluster `ray start` last started on this
    machine), checked to answer; None for 'local' (a new instance here). One line now for what Ray itself would
    retry for minutes: an address that does not answer, or 'auto' pointing at a cluster that has stopped."""
    # Ray's own reading of the address (a private function of the pinned Ray: requirements-ray.txt).
    from ray._private.services import canonicalize_bootstrap_address
    try:
        resolved = canonicalize_bootstrap_address(address)
    except (ConnectionError, ValueError) as error:
        raise UserError(f"--ray {address}: {_first_line(error)}") from None
    if resolved is None:
        return None
    host, _, port = resolved.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        shown = address if address == resolved else f"{address} ({resolved})"
        raise UserError(f"--ray {shown}: no Ray cluster answers there ({reason})") from None
    return resolved


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


@contextlib.contextmanager
def on_cluster(address: str) -> Iterator[Cluster]:
    """Connect this process to the Ray cluster at `address` (HOST:PORT; 'auto': RAY_ADDRESS, or one started on
    this machine with `ray start --head`; 'local': a new instance on this machine, for this sweep only) for the
    sweeps run inside; disconnected after. A process already connected (a test's own local instance) keeps its
    connection."""
    global _cluster
    ray = _ray()
    head = _head_address(address)
    connected_here = not ray.is_initialized()
    if connected_here:
        try:
            ray.init(address=head or "local", include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as error:
            first = _first_line(error)
            if isinstance(error, ConnectionError) and "RAY_AUTH_MODE" not in os.environ:
                first += (" (a cluster with token authentication, which `ray start` of Ray 2.60 turns on, "
                          "needs RAY_AUTH_MODE=token here and its token: see `ray get-auth-token`)")
            raise UserError(f"--ray {address}: {first}") from None
    resources = ray.cluster_resources()
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    _cluster = Cluster(address=address, cpus=int(resources.get("CPU", 0)), gpus=int(resources.get("GPU", 0)),
                       nodes=nodes)
    try:
        yield _cluster
    finally:
        _cluster = None
        if connected_here:
            ray.shutdown()


def cluster() -> Cluster | None:
    """The Ray cluster this process's sweeps send their trials to, if `on_cluster` connected one."""
    return _cluster


def _train_in_task(spec: TrialSpec, config: "ExperimentConfig", dataset: "Dataset", probe: "torch.Tensor",
                   device: str, threads: int, verdicts: Any) -> Iterator[list[Event | PruneAsked]]:
    """A Ray task's body: train one trial, yielding its events in batches as they come. With a search's pruner,
    each evaluation's question goes at once and training waits for the driver's answer on `verdicts` (a Ray
    queue): the pruner and its study live in the driver."""

    events: queue.Queue[Event | PruneAsked | None] = queue.Queue()
    context = trial_context_here(config, dataset, probe, device, threads, events.put, threading.Event())
    if verdicts is not None:
        def ask(asked: TrialSpec, metrics: dict[str, float]) -> str:
            events.put(PruneAsked(asked, dict(metrics)))
            while True:
                # An answer to another question is one that a task killed while it waited left in the queue.
                name, step, reason = verdicts.get()
                if (name, step) == (asked.name, metrics["step"]):
                    return reason

        context = replace(context, after_evaluation=ask)

    def train() -> None:
        try:
            run_trial(spec, context)
        finally:
            events.put(None)

    threading.Thread(target=train, name=f"trial-{spec.name}", daemon=True).start()
    while True:
        batch = [events.get()]
        deadline = time.monotonic() + BATCH_S
        with contextlib.suppress(queue.Empty):
            while batch[-1] is not None and not isinstance(batch[-1], PruneAsked) and \
                    (left := deadline - time.monotonic()) > 0:
                batch.append(events.get(timeout=left))
        if sent := [event for event in batch if event is not None]:
            yield sent
        if batch[-1] is None:
            return


def _lost(error: Exception) -> tuple[str, str]:
    """The status and reason of a trial whose task ended in `error`, in words."""
    exceptions = _ray().exceptions
    if isinstance(error, exceptions.TaskCancelledError):
        return schema.CANCELLED, "stopped: its Ray task was cancelled"
    if isinstance(error, exceptions.NodeDiedError):
        return schema.FAILED, "the Ray node training this trial died"
    if isinstance(error, exceptions.OutOfMemoryError):
        return schema.FAILED, "Ray ended the task training this trial: its node was running out of memory"
    if isinstance(error, exceptions.WorkerCrashedError):
        return schema.FAILED, ("the Ray worker process training this trial died (killed, crashed, or out of "
                               "memory)")
    if isinstance(error, exceptions.RayTaskError) and error.cause is not None:
        return schema.FAILED, f"its Ray task raised {type(error.cause).__name__}: {error.cause}"
    first = (str(error).strip().splitlines() or [""])[0]
    return schema.FAILED, f"its Ray task failed: {type(error).__name__}{': ' + first if first else ''}"


@dataclass
class _Task:
    spec: TrialSpec
    started: bool = False


class RayTrials:
    """The sweep's trials as Ray tasks on `cluster`, each with `threads` CPU threads; events to the context's
    emit (the recorder)."""

    def __init__(self, cluster: Cluster, context: "TrialContext", threads: int):
        self.ray = _ray()
        self.context, self.threads = context, threads
        self.gpu = context.device.type == "cuda"
        # Room for this many trials at once: more would only queue. A search chooses each point from the results
        # before it, so its trials go one at a time, as in a sequential sweep (sweep.parallel is refused for it).
        self.slots = 1 if context.config.sweep.strategy != "grid" else \
            max(1, cluster.gpus if self.gpu else cluster.cpus // threads)
        self.task = self.ray.remote(num_cpus=threads, num_gpus=1 if self.gpu else 0, max_retries=0)(_train_in_task)

    def run(self, propose: Callable[[], TrialSpec | None], tell: Callable[[TrialSpec, str], None]) -> str:
        """Train until `propose` has nothing more and every task has ended, telling `tell` of each trial that
        ended; returns the sweep's status: completed, or cancelled when the context's stop flag ended it."""
        ray, stop = self.ray, self.context.stop
        self._tell = tell
        dataset = ray.put(self.context.dataset.to("cpu"))
        probe = ray.put(self.context.train_eval_index.to("cpu"))
        device = "cuda" if self.gpu else "cpu"   # the GPU Ray gives the task is its only visible one
        # A search's pruner answers its one running trial through this queue (an actor that takes no CPU).
        self.verdicts = None
        if self.context.after_evaluation is not None:
            from ray.util.queue import Queue
            self.verdicts = Queue(actor_options={"num_cpus": 0})
        running: dict[Any, _Task] = {}
        try:
            while True:
                while not stop.is_set() and len(running) < self.slots and (spec := propose()) is not None:
                    # Named after its trial: Ray's task list and the worker's process title say which it trains.
                    task = self.task.options(name=f"{TASK_PREFIX}{spec.name}")
                    running[task.remote(spec, self.context.config, dataset, probe, device, self.threads,
                                        self.verdicts)] = _Task(spec)
                if not running:
                    break
                if stop.is_set():
                    for generator in running:
                        ray.cancel(generator, force=True)
                    for task in running.values():
                        self._end(task, schema.CANCELLED, "stopped: its Ray task was cancelled")
                    running.clear()
                    break
                ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
                for generator in ready:
                    if self._receive(generator, running[generator]):
                        del running[generator]
        finally:
            for generator in running:   # an error here (a second Ctrl-C): the tasks are not left training
                ray.cancel(generator, force=True)
            if self.verdicts is not None:
                self.verdicts.shutdown()
        return schema.CANCELLED if stop.is_set() else schema.COMPLETED

    def _receive(self, generator: Any, task: _Task) -> bool:
        """Hand on every batch of events the task has sent; whether its trial has ended."""
        ray = self.ray
        while ray.wait([generator], timeout=0)[0]:
            try:
                events = ray.get(next(generator))
            except StopIteration:
                self._end(task, schema.FAILED, "its Ray task ended without ending the trial")
                return True
            except ray.exceptions.RayError as error:
                self._end(task, *_lost(error))
                return True
            for event in events:
                if isinstance(event, PruneAsked):
                    self.verdicts.put((event.spec.name, event.metrics["step"],
                                       self.context.after_evaluation(event.spec, event.metrics)))
                    continue
                task.started = task.started or isinstance(event, TrialStarted)
                self.context.emit(event)
                if isinstance(event, TrialEnded):
                    self._tell(event.trial, event.status)
                    return True
        return False

    def _end(self, task: _Task, status: str, error: str) -> None:
        record_lost_trial(self.context, task.spec, task.started, status, error)
        self._tell(task.spec, status)


def run_on_cluster(cluster: Cluster, context: "TrialContext", requested_threads: int | None,
                   propose: Callable[[], TrialSpec | None], use_threads: Callable[[TrialSpec, ThreadChoice], None],
                   tell: Callable[[TrialSpec, str], None]) -> str:
    """The sweep's trials on the cluster; returns the sweep's status."""
    threads = requested_threads or 1
    choice = ThreadChoice(threads, "set with --threads" if requested_threads else
                          "one per Ray task unless --threads says more, so that the cluster runs more trials at once")
    trials = RayTrials(cluster, context, threads)
    context.emit(Message(f"trials on {cluster.describe()}; up to {trials.slots} at once, {threads} CPU "
                         f"thread{'s' if threads != 1 else ''} each"))

    def proposed() -> TrialSpec | None:
        spec = propose()
        if spec is not None:
            use_threads(spec, choice)
        return spec

    return trials.run(proposed, tell)
