"""What does measuring the gradient noise scale cost? Training with [science] noise_scale on (the default
noise_every and noise_microbatches) against off, and off against a plain PyTorch loop, same process, same data,
same model and initial weights.

A measured step trains on the batch's gradient assembled from its micro-batches, so it costs no second backward
pass, only the micro-batches' lower efficiency (k small passes instead of one large one) once every noise_every
steps. Off, the loop has one test per step more than before.

Cost is measured in CPU time of the training thread (torch on one thread, so all its work runs there), per
example trained, over the whole trial: on a shared, loaded machine wall-clock throughput moved by +-25% between
identical runs. The engine's trials include their three end-of-epoch evaluations, the same for on and off.
Rounds are interleaved and the median reported.
Run: `.venv/bin/python benchmarks/noise_scale_cost.py [--quick]`.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import schema  # noqa: E402
from engine.config import ScienceConfig, parse_config  # noqa: E402
from engine.data import Dataset  # noqa: E402
from engine.events import EpochEnded, TrialSpec  # noqa: E402
from engine.models import build_model  # noqa: E402
from engine.train import TrialContext, make_optimizer, run_trial  # noqa: E402
# The same data as the engine-overhead benchmark (this script's folder is on sys.path when it runs).
from engine_overhead import make_data  # noqa: E402

BATCH_SIZES = (32, 128, 512)


def engine_cost(config, data: Dataset, batch_size: int) -> float:
    """CPU microseconds per example trained, over the whole trial."""
    rows = []

    def on_event(event):
        if isinstance(event, EpochEnded):
            rows.append(event.metrics)

    spec = TrialSpec(index=0, name="bench", batch_size=batch_size, seed=0, base_lr=0.01, lr=0.01)
    context = TrialContext(config=config, dataset=data, device=torch.device("cpu"),
                           train_eval_index=torch.arange(1024), emit=on_event, stop=threading.Event())
    start = time.thread_time()
    assert run_trial(spec, context) == schema.COMPLETED
    return (time.thread_time() - start) / rows[-1]["samples"] * 1e6


def plain_cost(config, data: Dataset, batch_size: int) -> float:
    torch.manual_seed(0)
    model = build_model(config.model, data.input_shape, data.kind, data.num_classes)
    optimizer = make_optimizer(config.train, model.parameters(), 0.01)
    generator = torch.Generator().manual_seed(0)
    steps = data.train_size // batch_size
    start = time.thread_time()
    for _ in range(config.train.epochs):
        permutation = torch.randperm(data.train_size, generator=generator)
        x, y = data.x_train[permutation], data.y_train[permutation]
        for index in range(steps):
            loss = F.cross_entropy(model(x[index * batch_size:(index + 1) * batch_size]),
                                   y[index * batch_size:(index + 1) * batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return (time.thread_time() - start) / (steps * batch_size * config.train.epochs) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples and rounds (a smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    examples, rounds = (8_192, 2) if args.quick else (32_768, 5)
    data = make_data(examples)
    base = parse_config({"data": {"dataset": "synthetic"}, "model": {"kind": "mlp", "width": 128, "depth": 2},
                         "train": {"epochs": 3, "lr": 0.01, "lr_scaling": "none"},
                         "science": {"eval_schedule": "epoch"}})
    measured = dataclasses.replace(base, science=ScienceConfig(eval_schedule="epoch", noise_scale=True))
    every, micro = measured.science.noise_every, measured.science.noise_microbatches
    print(f"MLP 40-128-128-10 on CPU (1 thread), {examples} examples x {base.train.epochs} epochs, median of "
          f"{rounds} interleaved rounds; noise scale every {every} steps in {micro} micro-batches")
    print("CPU microseconds per example trained (lower is better)")
    print(f"{'batch':>6} {'plain':>8} {'off':>8} {'on':>8} {'off vs plain':>13} {'on vs off':>10}")
    for batch_size in BATCH_SIZES:
        plain, off, on = [], [], []
        for _ in range(rounds):
            plain.append(plain_cost(base, data, batch_size))
            off.append(engine_cost(base, data, batch_size))
            on.append(engine_cost(measured, data, batch_size))
        plain_us, off_us, on_us = (statistics.median(v) for v in (plain, off, on))
        print(f"{batch_size:>6} {plain_us:>8.2f} {off_us:>8.2f} {on_us:>8.2f} "
              f"{off_us / plain_us - 1:>+12.1%} {on_us / off_us - 1:>+9.1%}")


if __name__ == "__main__":
    main()
