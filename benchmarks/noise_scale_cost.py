"""What does measuring the gradient noise scale cost? The target is under 5% of training time at the default
noise_every (M) and noise_microbatches (k); off, it must cost nothing.

A measured step trains on the batch's gradient assembled from its k micro-batches, so it costs no second
backward pass, only the micro-batches' lower efficiency and their norms, once every M steps. That cost is a few
percent, as small as the round-to-round spread of whole trials on a shared machine, so it is measured where
noise cannot hide it:

1. Per step. Measured and ordinary steps on the same model and the same batches, alternated block by block
   (ABBA order, so drift hits both alike), many blocks, the median CPU time per step of each. With one measured
   step in M the training time grows by (t_measured - t_ordinary) / (M * t_ordinary). The ordinary step is a
   bare forward, backward and optimizer step, without the engine's per-step records, so this over-states the
   engine's relative cost a little.
2. End to end, as a cross-check: whole engine trials with the option off, on at the default M, and on at every
   step (M = 1), interleaved rounds, medians of the per-round ratios to off. At M = 1 the cost is M times the
   default's, far above the spread; divided by M it gives the default's cost through the real engine. The
   direct on-against-off ratio at the default M is printed too, with the rounds' range: it is the noisy one.
3. Off: the training loop's only work for the option is one `is not None` test per step (engine/train.py: no
   meter is made); its time is measured against the cheapest ordinary step. How the engine compares with a plain
   PyTorch loop is benchmarks/engine_overhead.py's subject.

Times are CPU time of the training thread (torch on one thread, so all its work runs there): on a shared,
loaded machine wall-clock throughput moved by +-25% between identical runs.
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
from engine.science.noise_scale import NoiseScaleMeter  # noqa: E402
from engine.train import TrialContext, make_optimizer, run_trial  # noqa: E402
# The same data as the engine-overhead benchmark (this script's folder is on sys.path when it runs).
from engine_overhead import make_data  # noqa: E402

BATCH_SIZES = (8, 32, 128, 512)


def step_times(config, data: Dataset, batch_size: int, blocks: int) -> tuple[float, float]:
    """Median CPU seconds of an ordinary and of a measured step, alternated block by block on the same
    batches."""
    torch.manual_seed(0)
    model = build_model(config.model, data.input_shape, data.kind, data.num_classes)
    optimizer = make_optimizer(config.train, model.parameters(), 0.01)
    parameters = [p for p in model.parameters() if p.requires_grad]
    meter = NoiseScaleMeter(parameters, config.science.noise_microbatches, every=1)
    steps = max(8, 2048 // batch_size)
    batches = [(data.x_train[i * batch_size:(i + 1) * batch_size], data.y_train[i * batch_size:(i + 1) * batch_size])
               for i in range(steps)]

    def loss_of(inputs, targets):
        return F.cross_entropy(model(inputs), targets)

    def ordinary(inputs, targets):
        for parameter in parameters:
            parameter.grad = None
        loss_of(inputs, targets).backward()
        optimizer.step()

    def measured(inputs, targets):
        meter.backward(loss_of, inputs, targets, 1, 0.0)
        optimizer.step()

    times = {ordinary: [], measured: []}
    for block in range(blocks + 1):
        for kind in (ordinary, measured) if block % 2 else (measured, ordinary):
            start = time.thread_time()
            for inputs, targets in batches:
                kind(inputs, targets)
            if block:   # the first block of each warms up the allocator
                times[kind].append((time.thread_time() - start) / steps)
        meter.take(batch_size)   # outside the clock, as the engine's flush is a few times a second
    return statistics.median(times[ordinary]), statistics.median(times[measured])


def engine_cost(config, data: Dataset, batch_size: int) -> float:
    """CPU seconds per example trained, over a whole engine trial."""
    rows = []

    def on_event(event):
        if isinstance(event, EpochEnded):
            rows.append(event.metrics)

    spec = TrialSpec(index=0, name="bench", batch_size=batch_size, seed=0, base_lr=0.01, lr=0.01)
    context = TrialContext(config=config, dataset=data, device=torch.device("cpu"),
                           train_eval_index=torch.arange(1024), emit=on_event, stop=threading.Event())
    start = time.thread_time()
    assert run_trial(spec, context) == schema.COMPLETED
    return (time.thread_time() - start) / rows[-1]["samples"]


def off_test_time(steps: int = 1_000_000) -> float:
    """CPU seconds of the training loop's whole per-step work for the option when it is off: the test on the
    step's line in engine/train.py, `if noise is not None and noise.due(step)`, with noise None."""
    noise = None
    start = time.thread_time()
    for step in range(steps):
        if noise is not None and noise.due(step):
            raise AssertionError("off never measures")
    looped = time.thread_time() - start
    start = time.thread_time()
    for step in range(steps):
        pass
    return max(looped - (time.thread_time() - start), 0.0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer blocks, examples and rounds (a smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    blocks, examples, rounds = (6, 4_096, 2) if args.quick else (40, 16_384, 7)
    data = make_data(examples)
    base = parse_config({"data": {"dataset": "synthetic"}, "model": {"kind": "mlp", "width": 128, "depth": 2},
                         "train": {"epochs": 2, "lr": 0.01, "lr_scaling": "none"},
                         "science": {"eval_schedule": "epoch"}})
    defaults = ScienceConfig(eval_schedule="epoch", noise_scale=True)
    every, micro = defaults.noise_every, defaults.noise_microbatches
    on = dataclasses.replace(base, science=defaults)
    always = dataclasses.replace(base, science=dataclasses.replace(defaults, noise_every=1))
    print(f"MLP 40-128-128-10 on CPU (1 thread); noise scale every M = {every} steps in k = {micro} micro-batches")

    print(f"\n1. Per step: median CPU time of {blocks} alternated blocks on the same batches")
    print(f"{'batch':>6} {'ordinary us':>12} {'measured us':>12} {'measured/ordinary':>18} "
          f"{'cost at M=' + str(every):>14}")
    smallest_ordinary = float("inf")
    for batch_size in BATCH_SIZES:
        ordinary, measured = step_times(base, data, batch_size, blocks)
        smallest_ordinary = min(smallest_ordinary, ordinary)
        print(f"{batch_size:>6} {ordinary * 1e6:>12.1f} {measured * 1e6:>12.1f} {measured / ordinary:>18.2f} "
              f"{(measured - ordinary) / (every * ordinary):>+14.2%}", flush=True)

    print(f"\n2. End to end: {examples} examples x {base.train.epochs} epochs per trial, {rounds} interleaved "
          "rounds, median of the per-round ratios to off")
    print(f"{'batch':>6} {'off us/ex':>10} {'M=1 vs off':>11} {'its cost at M=' + str(every):>18} "
          f"{'M=' + str(every) + ' vs off':>13} {'range over rounds':>20}")
    for batch_size in BATCH_SIZES:
        offs, per_every, per_default = [], [], []
        for round_ in range(rounds):
            costs = {}
            order = [("off", base), ("default", on), ("always", always)]
            for name, config in order[round_ % 3:] + order[:round_ % 3]:
                costs[name] = engine_cost(config, data, batch_size)
            offs.append(costs["off"])
            per_every.append(costs["always"] / costs["off"] - 1)
            per_default.append(costs["default"] / costs["off"] - 1)
        always_cost = statistics.median(per_every)
        print(f"{batch_size:>6} {statistics.median(offs) * 1e6:>10.2f} {always_cost:>+11.1%} "
              f"{always_cost / every:>+18.2%} {statistics.median(per_default):>+13.1%} "
              f"{min(per_default):>+9.1%} to {max(per_default):>+7.1%}", flush=True)

    off = statistics.median(off_test_time() for _ in range(5))
    print(f"\n3. Off: one `is not None` test per step, {off * 1e9:.0f} ns: {off / smallest_ordinary:.4%} of the "
          f"cheapest ordinary step above ({smallest_ordinary * 1e6:.0f} us)")

if __name__ == "__main__":
    main()
