"""One trial on several processes: data parallelism with torch.distributed (sweep.data_parallel = N ranks).

Every rank builds the same model from the trial's seed and draws the same batch order, then trains on its own
share of each batch: rank r takes examples [r·B/N, (r+1)·B/N) of the global batch of B. DistributedDataParallel
averages the gradients over the ranks, which for equal shares is the gradient of the whole batch, so N ranks
train as one process with batch B does, up to the order of floating-point sums. The backend is gloo on the CPU
and NCCL on GPUs (one GPU per rank).

Rank 0 sends the trial's events to the parent, which writes the run file as for any trial; the other ranks
send nothing. What a rank records is the whole batch's: the logged loss is averaged over the ranks, and the
gradient norm is the all-reduced gradient's. Stop must end every rank at the same step (a rank that left would
leave the others waiting in an all-reduce), so the ranks agree on it with one small all-reduce per step.
"""
from __future__ import annotations

import datetime
import multiprocessing
import os
import queue
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from engine import schema
from engine.events import Event, RanksMeasured, TrialEnded, TrialSpec, TrialStarted
from engine.execution.workers import POLL_S, PruneAsked, _ending
from engine.train import TrialContext, run_trial, total_steps

if TYPE_CHECKING:
    from engine.data import Dataset

_STOP = "stop"
# How long ranks wait for one another in a collective before giving up: a rank that died leaves the others
# waiting, and the parent ends them sooner than this (it watches every rank's process).
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)


class Ranks:
    """What a trial needs to know on one rank; engine.train calls it at the three places ranks differ."""

    def __init__(self, rank: int, world: int, sync_batch_norm: bool, device: torch.device):
        self.rank, self.world, self.sync_batch_norm, self.device = rank, world, sync_batch_norm, device
        self.communication_s = 0.0   # time the gradient all-reduces were in flight (they overlap backward)

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.sync_batch_norm:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ddp = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        ddp.register_comm_hook(None, self._timed_allreduce)
        self.communication_s = 0.0
        return ddp

    def share(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of a global batch. A search may propose a batch size that the config's list check
        never saw: unequal shares would train another batch than the one recorded, so that trial fails."""
        if len(inputs) % self.world:
            raise ValueError(f"batch size {len(inputs)} does not divide among {self.world} ranks")
        size = len(inputs) // self.world
        start = self.rank * size
        return inputs[start:start + size], targets[start:start + size]

    def mean(self, loss: torch.Tensor) -> torch.Tensor:
        """The whole batch's loss from each rank's (equal shares: the mean of the means)."""
        total = loss.detach().clone()
        dist.all_reduce(total)
        return total / self.world

    # No annotations: with postponed annotations they are text, which register_comm_hook's check refuses.
    def _timed_allreduce(self, state, bucket):
        started = time.perf_counter()
        tensor = bucket.buffer().div_(self.world)
        future = dist.all_reduce(tensor, async_op=True).get_future()

        def done(finished: torch.futures.Future) -> torch.Tensor:
            self.communication_s += time.perf_counter() - started
            return finished.value()[0]

        return future.then(done)


class RankStop:
    """The stop flag as every rank sees it: set on all of them at the same step once set on any."""

    def __init__(self, local: threading.Event, device: torch.device):
        self.local, self.device = local, device   # NCCL reduces tensors on the rank's GPU only
        self._agreed = False

    def is_set(self) -> bool:
        if not self._agreed:
            flag = torch.tensor([1 if self.local.is_set() else 0], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self._agreed = bool(flag.item())
        return self._agreed


def _serve_rank(rank: int, world: int, store: str, tasks: Any, events: Any, config: Any, dataset: "Dataset",
                probe: torch.Tensor, device: str, threads: int, pruning: bool) -> None:
    """One rank's life: train each trial the parent sends, in step with the other ranks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is for the parent, which stops the ranks
    torch.set_num_threads(threads)
    torch_device = torch.device(device)
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)
    dist.init_process_group("nccl" if torch_device.type == "cuda" else "gloo", init_method=store, rank=rank,
                            world_size=world, timeout=COLLECTIVE_TIMEOUT)
    local_stop = threading.Event()
    specs: queue.Queue[TrialSpec | None] = queue.Queue()
    verdicts: queue.Queue[str] = queue.Queue()

    def listen() -> None:
        while True:
            try:
                message = tasks.recv()
            except (EOFError, OSError):
                local_stop.set()
                specs.put(None)
                verdicts.put("")   # a rank 0 waiting for the pruner's answer goes on, to the stop
                return
            if message == _STOP:
                local_stop.set()
            elif isinstance(message, PruneAnswer):
                verdicts.put(message.reason)
            else:
                specs.put(message)

    threading.Thread(target=listen, name="rank-tasks", daemon=True).start()
    ranks = Ranks(rank, world, config.sweep.rank_batch_norm == "sync", torch_device)
    emit: Callable[[Event], None] = events.send if rank == 0 else (lambda event: None)
    dataset, probe = dataset.to(torch_device), probe.to(torch_device)
    judge = rank_pruner(rank, emit, verdicts) if pruning else None
    try:
        while (spec := specs.get()) is not None:
            context = TrialContext(config=config, dataset=dataset, device=torch_device, train_eval_index=probe,
                                   emit=measured(emit, ranks), stop=RankStop(local_stop, torch_device), ranks=ranks,
                                   after_evaluation=judge)
            run_trial(spec, context)
    except (BrokenPipeError, EOFError, ConnectionResetError):
        pass
    finally:
        dist.destroy_process_group()


@dataclass(frozen=True)
class PruneAnswer:
    """The parent's answer to rank 0's PruneAsked: why the pruner stops the trial, or '' to go on."""
    reason: str


def rank_pruner(rank: int, emit: Callable[[Event], None], verdicts: "queue.Queue[str]"
                ) -> Callable[[TrialSpec, dict[str, float]], str]:
    """A search's pruner as the ranks see it: rank 0 asks the parent, which owns the search, after each
    evaluation, and every rank takes its answer, so all of them stop at the same evaluation (a rank that went on
    alone would wait for the others in its next all-reduce)."""
    def judged(spec: TrialSpec, metrics: dict[str, float]) -> str:
        answer = [""]
        if rank == 0:
            emit(PruneAsked(spec, dict(metrics)))
            answer[0] = verdicts.get()
        dist.broadcast_object_list(answer, src=0)
        return answer[0]
    return judged


def measured(emit: Callable[[Event], None], ranks: Ranks) -> Callable[[Event], None]:
    """emit, with the trial's rank measurements sent just before its end."""
    def send(event: Event) -> None:
        if isinstance(event, TrialEnded):
            emit(RanksMeasured(trial=event.trial, ranks=ranks.world, communication_s=ranks.communication_s))
        emit(event)
    return send


class RankGroup:
    """`ranks` processes that train the sweep's trials one at a time, together; the same interface as
    workers.WorkerPool."""

    def __init__(self, ranks: int, context: TrialContext, threads: int, devices: list[str]):
        self.ranks, self.context, self.threads, self.devices = ranks, context, threads, devices
        self._spawn = multiprocessing.get_context("spawn")
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._tasks: list[Any] = []
        self._events: Any = None
        self._folder: tempfile.TemporaryDirectory | None = None

    def run(self, propose: Callable[[], TrialSpec | None], tell: Callable[[TrialSpec, str], None]) -> str:
        stop = self.context.stop
        try:
            while not stop.is_set() and (spec := propose()) is not None:
                if not self._processes:
                    self._start()
                tell(spec, self._train(spec))
        finally:
            self.close()
        return schema.CANCELLED if stop.is_set() else schema.COMPLETED

    def close(self) -> None:
        # Idle ranks hold nothing to save (as workers.WorkerPool.close): ended at once, not waited for.
        for connection in self._tasks:
            connection.close()
        for process in self._processes:
            process.kill()
        for process in self._processes:
            process.join()
        if self._events is not None:
            self._events.close()
        self._processes, self._tasks, self._events = [], [], None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def _start(self) -> None:
        # A file store: no port to find free, and it lives as long as this group.
        self._folder = tempfile.TemporaryDirectory(prefix="batch-size-lab-ranks-")
        store = Path(self._folder.name, "store").as_uri()
        dataset, probe = self.context.dataset.to("cpu"), self.context.train_eval_index.to("cpu")
        events_in, events_out = self._spawn.Pipe(duplex=False)
        for rank in range(self.ranks):
            tasks_in, tasks_out = self._spawn.Pipe(duplex=False)
            device = self.devices[rank % len(self.devices)]
            process = self._spawn.Process(
                target=_serve_rank, name=f"trial-rank-{rank}", daemon=True,
                args=(rank, self.ranks, store, tasks_in, events_out if rank == 0 else None, self.context.config,
                      dataset, probe, device, self.threads, self.context.after_evaluation is not None))
            process.start()
            tasks_in.close()
            self._processes.append(process)
            self._tasks.append(tasks_out)
        events_out.close()
        self._events = events_in

    def _train(self, spec: TrialSpec) -> str:
        """The trial's status once it ended."""
        for connection in self._tasks:
            connection.send(spec)
        started, stop_sent = False, False
        while True:
            if self.context.stop.is_set() and not stop_sent:
                for connection in self._tasks:
                    connection.send(_STOP)
                stop_sent = True
            try:
                while self._events.poll(POLL_S):
                    event = self._events.recv()
                    if isinstance(event, PruneAsked):
                        self._tasks[0].send(PruneAnswer(self.context.after_evaluation(event.spec, event.metrics)))
                        continue
                    started = started or isinstance(event, TrialStarted)
                    self.context.emit(event)
                    if isinstance(event, TrialEnded):
                        return event.status
            except (EOFError, OSError):
                pass
            dead = [process for process in self._processes if not process.is_alive()]
            if dead:
                self._lost(spec, started, dead[0])
                return schema.FAILED

    def _lost(self, spec: TrialSpec, started: bool, dead: multiprocessing.process.BaseProcess) -> None:
        """A rank died: the others wait for it forever, so all go, and the trial is failed with the reason."""
        dead.join()
        reason = _ending(dead.exitcode)
        for process in self._processes:
            process.kill()
        self.close()
        if not started:
            steps_per_epoch = self.context.dataset.train_size // spec.batch_size
            steps = total_steps(self.context.config.train, steps_per_epoch, spec.batch_size)
            self.context.emit(TrialStarted(trial=spec, steps_per_epoch=steps_per_epoch, total_steps=steps,
                                           total_samples=steps * spec.batch_size, parameter_count=0))
        self.context.emit(TrialEnded(trial=spec, status=schema.FAILED,
                                     error=f"rank {dead.name.rsplit('-', 1)[-1]} of this trial ended: {reason}"))
