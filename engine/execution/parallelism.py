"""How many trials train at once (sweep.parallel), on which devices, with how many CPU threads each.

A number is taken as asked (never more workers than trials). "auto" gives each GPU its own trial on a machine
with several. On the CPU it measures: a few training steps of the sweep's own model at its smallest batch size,
once with one thread and once with all the free cores. Independent trials in separate processes share nothing,
so N of them on N cores finish close to N times sooner than one after another; one trial on N threads gains
only the measured speed-up. When that speed-up is below SPLIT_WHEN_BELOW of the core count, the cores are
split among trials (one thread each); otherwise trials run one at a time with every core, as before.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.config import ExperimentConfig
from engine.events import Message, TrialSpec
from engine.execution.ranks import RankGroup
from engine.execution.ray_backend import cluster as ray_cluster
from engine.execution.ray_backend import run_on_cluster
from engine.execution.torchrun import LaunchedRanks, launched_ranks
from engine.execution.workers import WorkerPool
from engine.hardware.threads import SweepThreads, ThreadChoice, available_cores, split_among_workers
from engine.models import build_model
from engine.train import TrialContext, make_optimizer

# Splitting the cores wins unless threads already give this share of perfect scaling; the rest of perfect is
# what worker processes lose to memory bandwidth and their start (each imports torch, seconds).
SPLIT_WHEN_BELOW = 0.75
MEASURE_STEPS = 20


@dataclass(frozen=True)
class Parallelism:
    workers: int          # 1: in this process, as a sequential sweep
    devices: tuple[str, ...]
    reason: str


def decide_cpu_workers(cores: int, trials: int, thread_speedup: float) -> Parallelism:
    """sweep.parallel = "auto" on the CPU, from the measured speed-up of one trial on `cores` threads over one
    thread. Pure: tests give the speed-up."""
    if cores < 2 or trials < 2:
        return Parallelism(1, ("cpu",), f"auto: {cores} core{'s' if cores != 1 else ''}, {trials} "
                           f"trial{'s' if trials != 1 else ''}: one at a time")
    measured = f"one trial on {cores} threads ran {thread_speedup:.2f}× as fast as on 1"
    if thread_speedup < SPLIT_WHEN_BELOW * cores:
        workers = min(cores, trials)
        return Parallelism(workers, ("cpu",) * workers, f"auto: {measured}, so {workers} trials at once, one "
                           "core each")
    return Parallelism(1, ("cpu",), f"auto: {measured}, so one trial at a time on every core")


def measure_thread_speedup(config: ExperimentConfig, context: TrialContext, batch_size: int, cores: int,
                           clock: Callable[[], float] = time.perf_counter) -> float:
    """Time per training step of the sweep's model at `batch_size` on 1 thread over that on `cores` threads."""
    data = context.dataset
    before = torch.get_num_threads()
    seconds = {}
    try:
        for threads in (1, cores):
            torch.set_num_threads(threads)
            torch.manual_seed(0)
            model = build_model(config.model, data.input_shape, data.kind, data.num_classes).to(context.device)
            optimizer = make_optimizer(config.train, model.parameters(), config.train.lr)
            inputs, targets = data.x_train[:batch_size], data.y_train[:batch_size]
            for step in range(MEASURE_STEPS + 2):
                if step == 2:   # the first steps allocate and warm caches
                    started = clock()
                loss = F.cross_entropy(model(inputs), targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            seconds[threads] = clock() - started
    finally:
        torch.set_num_threads(before)
    return seconds[1] / max(seconds[cores], 1e-9)


def plan_parallel(config: ExperimentConfig, context: TrialContext, trials: list[TrialSpec], cores: int,
                  measure: Callable[..., float] = measure_thread_speedup) -> Parallelism:
    """The workers for a sweep's `trials` on the context's device, `cores` CPU cores being free for it."""
    setting, device = config.sweep.parallel, context.device
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if setting == "auto":
        if device.type == "cuda":
            workers = max(1, min(gpus, len(trials)))
            return Parallelism(workers, tuple(f"cuda:{index}" for index in range(workers)),
                               f"auto: {gpus} GPU{'s' if gpus != 1 else ''}, one trial on each")
        if cores < 2 or len(trials) < 2:
            return decide_cpu_workers(cores, len(trials), 1.0)
        smallest = min(spec.batch_size for spec in trials)
        return decide_cpu_workers(cores, len(trials), measure(config, context, smallest, cores))
    workers = max(1, min(int(setting), len(trials)))
    if device.type == "cuda":
        # Several GPUs: one trial on each in turn; one GPU: the trials share it.
        return Parallelism(workers, tuple(f"cuda:{index % max(gpus, 1)}" for index in range(workers)),
                           f"sweep.parallel = {setting}")
    return Parallelism(workers, ("cpu",) * workers, f"sweep.parallel = {setting}")


def trains_elsewhere(config: ExperimentConfig) -> bool:
    """Whether the sweep's trials train outside this process (run_parallel), not one at a time in it."""
    return config.sweep.parallel != 1 or config.sweep.data_parallel != 1 or launched_ranks() is not None \
        or ray_cluster() is not None


def run_parallel(config: ExperimentConfig, context: TrialContext, trials: list[TrialSpec], threads: SweepThreads,
                 propose: Callable[[], TrialSpec | None], use_threads: Callable[[TrialSpec, ThreadChoice], None],
                 tell: Callable[[TrialSpec, str], None]) -> str | None:
    """Train the sweep's trials in worker processes (sweep.parallel) or each on several ranks
    (sweep.data_parallel); returns the sweep's status, or None when they are to train one at a time in this
    process after all. `tell` hears of each trial that ended, with its status, after its events."""
    if (cluster := ray_cluster()) is not None:
        return run_on_cluster(cluster, context, threads.policy.requested, propose, use_threads, tell)
    choice = threads.choose()
    if (launched := launched_ranks()) is not None:
        context.emit(Message(f"each trial on the {launched.world} ranks torchrun started"))
        return LaunchedRanks(context, launched).run(_with_threads(propose, use_threads, choice), tell)
    ranks = config.sweep.data_parallel
    if ranks > 1:
        each = split_among_workers(choice, ranks, threads.policy)
        devices = [f"cuda:{rank % max(torch.cuda.device_count(), 1)}" for rank in range(ranks)] \
            if context.device.type == "cuda" else ["cpu"]
        plural = "s" if each.threads != 1 else ""
        context.emit(Message(f"each trial on {ranks} data-parallel ranks (sweep.data_parallel), {each.threads} CPU "
                             f"thread{plural} each"))
        return RankGroup(ranks, context, each.threads, devices).run(_with_threads(propose, use_threads, each), tell)
    cores = choice.threads if threads.policy.requested is None else available_cores()
    parallel = plan_parallel(config, context, trials, cores)
    if parallel.workers <= 1:
        context.emit(Message(f"one trial at a time ({parallel.reason})"))
        return None
    each = split_among_workers(choice, parallel.workers, threads.policy)
    plural = "s" if each.threads != 1 else ""
    context.emit(Message(f"{parallel.workers} trials at once in worker processes ({parallel.reason}), "
                         f"{each.threads} CPU thread{plural} each"))
    return WorkerPool(parallel.workers, context, each.threads, list(parallel.devices)).run(
        _with_threads(propose, use_threads, each), tell)


def _with_threads(propose: Callable[[], TrialSpec | None], use_threads: Callable[[TrialSpec, ThreadChoice], None],
                  choice: ThreadChoice) -> Callable[[], TrialSpec | None]:
    """propose, with each proposed trial's thread choice told to the recorder."""
    def proposed() -> TrialSpec | None:
        spec = propose()
        if spec is not None:
            use_threads(spec, choice)
        return spec
    return proposed
