"""How much does the engine cost over a plain PyTorch loop? Throughput ratios, same process, same data.

For each batch size, three loops train the same model from the same initial weights on the same in-memory
data for the same number of epochs:
  engine      engine.train.run_trial: records per-step loss, lr, gradient norm, samples and wall time
  plain       a hand-written loop over tensor-indexed batches of a per-epoch permutation, no logging
  dataloader  the same loop fed by torch.utils.data.DataLoader over a TensorDataset
Throughput counts training only (the engine's epoch-end evaluation is excluded, as it is in its records).
The three are interleaved over several rounds and the median is reported, so drift in machine load hits
all three alike. Run: `make benchmark` or `.venv/bin/python benchmarks/engine_overhead.py [--quick]`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import schema  # noqa: E402
from engine.config import parse_config  # noqa: E402
from engine.data import Dataset  # noqa: E402
from engine.events import EpochEnded, TrialSpec  # noqa: E402
from engine.models import build_model  # noqa: E402
from engine.train import TrialContext, make_optimizer, run_trial  # noqa: E402

BATCH_SIZES = (8, 32, 128, 512)
FEATURES, CLASSES = 40, 10


def make_data(examples: int) -> Dataset:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(examples, FEATURES, generator=generator)
    y = torch.randint(0, CLASSES, (examples,), generator=generator)
    return Dataset(name="benchmark", x_train=x, y_train=y, x_val=x[:1024], y_val=y[:1024], num_classes=CLASSES,
                   input_shape=(FEATURES,), kind="vector", val_source="train subset",
                   class_names=[str(i) for i in range(CLASSES)])


def engine_throughput(config, data: Dataset, batch_size: int) -> float:
    rates = []

    def on_event(event):
        if isinstance(event, EpochEnded):
            rates.append(event.metrics["samples_per_s"])

    spec = TrialSpec(index=0, name="bench", batch_size=batch_size, seed=0, base_lr=0.01, lr=0.01)
    context = TrialContext(config=config, dataset=data, device=torch.device("cpu"),
                           train_eval_index=torch.arange(1024), emit=on_event, stop=threading.Event())
    assert run_trial(spec, context) == schema.COMPLETED
    return statistics.median(rates)


def plain_throughput(config, data: Dataset, batch_size: int, epochs: int, dataloader: bool) -> float:
    torch.manual_seed(0)
    model = build_model(config.model, data.input_shape, data.kind, data.num_classes)
    optimizer = make_optimizer(config.train, model.parameters(), 0.01)
    generator = torch.Generator().manual_seed(0)
    steps = data.train_size // batch_size
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.x_train, data.y_train),
                                         batch_size=batch_size, shuffle=True, drop_last=True,
                                         generator=generator) if dataloader else None
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        if loader is not None:
            batches = iter(loader)
        else:
            permutation = torch.randperm(data.train_size, generator=generator)
            batches = ((data.x_train[idx], data.y_train[idx])
                       for idx in (permutation[i * batch_size:(i + 1) * batch_size] for i in range(steps)))
        for inputs, targets in batches:
            loss = F.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        rates.append(steps * batch_size / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run, noisier)")
    args = parser.parse_args()
    rounds, epochs, examples = (1, 2, 4096) if args.quick else (5, 3, 16384)
    data = make_data(examples)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, MLP {FEATURES}-256-256-{CLASSES}, "
          f"{examples} examples, {epochs} epochs × {rounds} rounds, CPU")
    print(f"{'batch':>6} {'engine/s':>10} {'plain/s':>10} {'loader/s':>10} {'engine/plain':>13} "
          f"{'engine/loader':>14}")
    for batch_size in BATCH_SIZES:
        config = parse_config({"model": {"kind": "mlp", "width": 256, "depth": 2},
                               "train": {"optimizer": "sgd", "lr": 0.01, "lr_scaling": "none",
                                         "epochs": epochs},
                               "sweep": {"batch_sizes": [batch_size]}})
        engine, plain, loader = [], [], []
        plain_throughput(config, data, batch_size, 1, dataloader=False)  # warm-up: allocator, thread pool
        for _ in range(rounds):
            engine.append(engine_throughput(config, data, batch_size))
            plain.append(plain_throughput(config, data, batch_size, epochs, dataloader=False))
            loader.append(plain_throughput(config, data, batch_size, epochs, dataloader=True))
        e, p, d = (statistics.median(v) for v in (engine, plain, loader))
        print(f"{batch_size:>6} {e:>10.0f} {p:>10.0f} {d:>10.0f} {e / p:>13.3f} {e / d:>14.2f}", flush=True)


if __name__ == "__main__":
    main()
