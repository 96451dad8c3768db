"""Several trials at once, and one trial on several ranks: wall times as ratios, all measured in this process.

The sweep: 8 trials of a small model (MLP 40-256-256-10 on 3,200 synthetic examples, batch sizes 8 and 32 × 4
seeds, 8 epochs), run four ways, each timed from the call to the finished run file, every trial on one
thread (so that the comparison is of processes, not of thread pools, which a busy machine slows many times
over: the README's busy-machine figures):
  plain       a hand-written PyTorch loop training the 8 trials one after another (the yardstick, = 1.00)
  sequential  run_sweep, sweep.parallel = 1, --threads 1: trials in turn in this process
  parallel    run_sweep, sweep.parallel = cores, --threads 1: one worker process per core (includes starting
              the workers: each imports torch, seconds on a loaded machine)
  ensembled   run_sweep, sweep.ensemble = "auto", --threads 1: the 4 seeds of each batch size trained together
              as one vectorized model (engine/execution/ensemble.py), with the largest relative difference of
              its logged losses from the sequential sweep's (float32 rounding: the sums run in another order)
For the ways that train in this process the CPU seconds of the process are printed too: on a machine that other
processes load they vary less than wall time.
Then data parallelism: one trial at batch 256 (4 epochs) on 1 and 2 ranks (sweep.data_parallel), the run files'
training throughput (samples/s, start-up excluded), scaling efficiency = throughput(2) / (2 × throughput(1)),
and the share of training time the gradient all-reduces were in flight (one thread per rank). Last, Stop with
workers: the time from setting the stop flag to the last trial's `cancelled`, and to run_sweep's return.
Run: `.venv/bin/python benchmarks/scaling.py [--rounds N]` (a few minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.config import parse_config  # noqa: E402
from engine.data import load_dataset  # noqa: E402
from engine.events import StepsLogged, TrialEnded, TrialStarted  # noqa: E402
from engine.hardware.threads import ThreadPolicy, available_cores, set_thread_policy  # noqa: E402
from engine.models import build_model  # noqa: E402
from engine.runfile import read_run  # noqa: E402
from engine.sweep import run_sweep  # noqa: E402

TABLE = {
    "name": "scaling",
    "data": {"dataset": "synthetic", "num_samples": 4000, "num_features": 40, "num_classes": 10},
    "model": {"kind": "mlp", "width": 256, "depth": 2},
    "train": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.0, "lr_scaling": "none", "epochs": 1,
              "seeds": [0, 1, 2, 3], "eval_batch_size": 1024},
    "sweep": {"batch_sizes": [8, 32], "device": "cpu"},
}


EPOCHS = 8


def config(epochs: int = EPOCHS, **sweep):
    return parse_config({**TABLE, "train": {**TABLE["train"], "epochs": epochs},
                         "sweep": {**TABLE["sweep"], **sweep}})


def timed_sweep(threads: int, epochs: int = EPOCHS, **sweep):
    """Seconds from the call to the finished run file, the run, and the seconds until the first trial started
    (for workers: their start-up); `threads` per trial."""
    set_thread_policy(ThreadPolicy(requested=threads))
    first_start: list[float] = []

    def on_event(event):
        if isinstance(event, TrialStarted) and not first_start:
            first_start.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        path = run_sweep(config(epochs, **sweep), out, on_event=on_event)
        seconds = time.perf_counter() - started
        return seconds, read_run(path), first_start[0] - started


def plain_loop(cfg, dataset) -> float:
    """The 8 trials one after another, the plainest PyTorch: the yardstick."""
    started = time.perf_counter()
    for batch_size in cfg.sweep.batch_sizes:
        for seed in cfg.train.seeds:
            torch.manual_seed(seed)
            model = build_model(cfg.model, dataset.input_shape, dataset.kind, dataset.num_classes)
            optimizer = torch.optim.SGD(model.parameters(), lr=cfg.train.lr)
            for _ in range(cfg.train.epochs):
                order = torch.randperm(dataset.train_size)
                for start in range(0, dataset.train_size - batch_size + 1, batch_size):
                    index = order[start:start + batch_size]
                    loss = F.cross_entropy(model(dataset.x_train[index]), dataset.y_train[index])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
    return time.perf_counter() - started


def loss_difference(sequential, ensembled, steps: int = 1000) -> tuple[float, float]:
    """The largest relative difference between the two runs' logged losses over each trial's first `steps`
    steps, and between their final validation losses (training amplifies last-bit differences over many steps,
    as a different thread count's would)."""
    early = final = 0.0
    for alone, member in zip(sequential.trials, ensembled.trials):
        assert alone.name == member.name and member.execution.startswith("ensemble"), member.execution
        a, b = alone.step["loss"][:steps], member.step["loss"][:steps]
        early = max(early, float(np.max(np.abs(b - a) / np.maximum(np.abs(a), 1e-12))))
        final = max(final, abs(float(member.epoch["val_loss"][-1]) / float(alone.epoch["val_loss"][-1]) - 1))
    return early, final


def stop_latency(cores: int) -> tuple[float, float]:
    """Seconds from Stop to the last trial's cancelled, and to run_sweep's return, with `cores` workers
    mid-trial."""
    stop, stopped_at, running, cancelled_at = threading.Event(), [], set(), []

    def on_event(event):
        if isinstance(event, TrialEnded) and event.status == "cancelled":
            cancelled_at.append(time.perf_counter())
        if isinstance(event, StepsLogged):
            running.add(event.trial.name)
            if len(running) >= cores and not stop.is_set():
                stopped_at.append(time.perf_counter())
                stop.set()

    slow = {**TABLE, "train": {**TABLE["train"], "epochs": 20}, "sweep": {**TABLE["sweep"], "parallel": cores}}
    set_thread_policy(ThreadPolicy(requested=1))
    with tempfile.TemporaryDirectory() as out:
        run_sweep(parse_config(slow), out, on_event=on_event, stop=stop)
        returned = time.perf_counter()
    return cancelled_at[-1] - stopped_at[0], returned - stopped_at[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    rounds = parser.parse_args().rounds
    cores = available_cores()
    cfg = config()
    dataset = load_dataset(cfg.data)
    times: dict[str, list[float]] = {name: [] for name in ("plain", "sequential", "parallel", "ensembled")}
    cpu: dict[str, list[float]] = {name: [] for name in ("plain", "sequential", "ensembled")}
    difference, worker_start = (0.0, 0.0), []
    torch.set_num_threads(1)
    for _ in range(rounds):   # interleaved, so that a change in the machine's load hits every way alike
        before = time.process_time()
        times["plain"].append(plain_loop(cfg, dataset))
        cpu["plain"].append(time.process_time() - before)
        before = time.process_time()
        seconds, sequential, _ = timed_sweep(1)
        times["sequential"].append(seconds)
        cpu["sequential"].append(time.process_time() - before)
        seconds, _, first_start = timed_sweep(1, parallel=cores)
        times["parallel"].append(seconds)
        worker_start.append(first_start)
        before = time.process_time()
        seconds, ensembled, _ = timed_sweep(1, ensemble="auto")
        times["ensembled"].append(seconds)
        cpu["ensembled"].append(time.process_time() - before)
        difference = tuple(map(max, difference, loss_difference(sequential, ensembled)))
    plain = statistics.median(times["plain"])
    print(f"8-trial sweep on {cores} cores, median of {rounds} rounds (plain loop {plain:.1f} s = 1.00):")
    for name, values in times.items():
        print(f"  {name:<11} {statistics.median(values):6.1f} s   {plain / statistics.median(values):5.2f}× "
              "the plain loop's speed")
    print(f"  parallel: {statistics.median(worker_start):.1f} s of it before the first trial started (workers "
          "starting)")
    plain_cpu = statistics.median(cpu["plain"])
    print("  CPU seconds of this process, which other processes' load disturbs less: " + ", ".join(
        f"{name} {statistics.median(values):.1f} s ({plain_cpu / statistics.median(values):.2f}×)"
        for name, values in cpu.items()))
    print(f"  ensembled: logged losses differ from the sequential sweep's by at most {difference[0]:.1e} (relative) "
          f"over the first 1,000 steps; final validation losses by at most {difference[1]:.1%}")

    throughput = {}
    for ranks in (1, 2):
        _, run, _ = timed_sweep(1, epochs=4, batch_sizes=[256], data_parallel=ranks)
        trial = run.trials[0]
        throughput[ranks] = (statistics.median(trial.epoch["samples_per_s"]), trial.communication_s,
                             float(trial.epoch["wall_time_s"][-1]))
    one, two = throughput[1][0], throughput[2][0]
    print(f"data parallelism, batch 256: 1 rank {one:,.0f} samples/s; 2 ranks {two:,.0f} samples/s "
          f"({two / 2:,.0f} per rank); scaling efficiency {two / (2 * one):.2f}; all-reduces in flight "
          f"{throughput[2][1] / throughput[2][2]:.0%} of training time")
    cancelled, returned = stop_latency(cores)
    print(f"Stop with {cores} workers mid-trial: every trial cancelled after {cancelled:.2f} s, run_sweep "
          f"returned after {returned:.2f} s")
    print(f"load average over the last 15 minutes: {os.getloadavg()[2]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
