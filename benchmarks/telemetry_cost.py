"""What does the telemetry sampler cost a training loop? Throughput ratios, same process, same data.

For each batch size a plain PyTorch loop (MLP 40-256-256-10, tensor-indexed batches of a per-epoch permutation,
no logging) trains from the same initial weights twice: alone, and with engine.hardware.telemetry's sampler
running beside it at its ten samples a second, every source readable here. The two are interleaved over several
rounds and the median throughput of each is compared, so drift in machine load hits both alike.
Run: `.venv/bin/python benchmarks/telemetry_cost.py [--quick]`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.events import TrialSpec  # noqa: E402
from engine.hardware.telemetry import start_telemetry  # noqa: E402

BATCH_SIZES = (8, 32, 128, 512)
FEATURES, CLASSES = 40, 10


def train(x: torch.Tensor, y: torch.Tensor, batch_size: int, epochs: int, initial: dict) -> float:
    """Examples per second of a plain loop."""
    model = nn.Sequential(nn.Linear(FEATURES, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, CLASSES))
    model.load_state_dict(initial)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    steps = len(x) // batch_size
    start = time.perf_counter()
    for _ in range(epochs):
        permutation = torch.randperm(len(x), generator=generator)
        x_epoch, y_epoch = x[permutation], y[permutation]
        for index in range(steps):
            batch = slice(index * batch_size, (index + 1) * batch_size)
            loss = F.cross_entropy(model(x_epoch[batch]), y_epoch[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return epochs * steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer examples and rounds (a smoke run)")
    args = parser.parse_args()
    examples, rounds, epochs = (2048, 2, 1) if args.quick else (16_384, 5, 2)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(examples, FEATURES, generator=generator)
    y = torch.randint(0, CLASSES, (examples,), generator=generator)
    torch.manual_seed(0)
    initial = nn.Sequential(nn.Linear(FEATURES, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                            nn.Linear(256, CLASSES)).state_dict()
    spec = TrialSpec(index=0, name="benchmark", batch_size=0, seed=0, base_lr=0.05, lr=0.05)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {examples} examples, {epochs} epochs, "
          f"median of {rounds} rounds")
    print(f"{'batch size':>10}  {'plain (samples/s)':>18}  {'with telemetry':>15}  {'ratio':>6}  rows/s")
    for batch_size in BATCH_SIZES:
        plain, sampled, rates = [], [], []
        for _ in range(rounds):
            plain.append(train(x, y, batch_size, epochs, initial))
            sampler = start_telemetry(torch.device("cpu"))
            started = time.perf_counter()
            sampled.append(train(x, y, batch_size, epochs, initial))
            rows = len(sampler.finish(spec).columns["time_s"])
            rates.append(rows / (time.perf_counter() - started))
        ratio = statistics.median(sampled) / statistics.median(plain)
        print(f"{batch_size:>10}  {statistics.median(plain):>18,.0f}  {statistics.median(sampled):>15,.0f}  "
              f"{ratio:>6.2f}  {statistics.median(rates):.1f}")


if __name__ == "__main__":
    main()
