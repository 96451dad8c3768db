"""Does the command line keep its speed when another process keeps a core busy? Throughput ratios, same process.

For each batch size of the demo preset (MNIST-1D, MLP 40-128-128-10), four ways to train the same model on the
same data, interleaved over several rounds, first on the machine as it is, then with `--busy` competing
processes that each spin on one core:
  cli        `main.py run` (engine.cli.main, in this process): the engine's thread policy picks the threads
  cli fixed  the same with `--threads` at PyTorch's default count: the command line before the policy
  plain      a hand-written PyTorch loop over tensor-indexed batches, PyTorch's default thread count
  plain 1    the same loop on one thread, as someone who knows the machine is shared would write it
The demo preset is cut to 2,000 examples and one epoch: without the policy, a busy machine slows one
batch-size-8 epoch of the full demo to half a minute. Throughput counts training only: one epoch's samples/s
(the run file's samples_per_s for the command line), median over the rounds. Printed with it: the threads the
policy chose in each round, and the load that other processes put on the machine meanwhile, because a shared
machine is rarely idle.
Run: `.venv/bin/python benchmarks/cli_busy.py [--quick] [--busy N]` (a few minutes).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.cli import main as cli_main  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.data import load_dataset  # noqa: E402
from engine.hardware.threads import LoadMeter, available_cores  # noqa: E402
from engine.models import build_model  # noqa: E402
from engine.resources import presets  # noqa: E402
from engine.train import make_optimizer, scaled_lr  # noqa: E402


def cli_throughput(config_path: Path, threads: int | None) -> dict[int, tuple[float, int]]:
    """Run the command line in this process; per batch size, the median epoch samples/s and the threads it
    trained with, from its run file."""
    with tempfile.TemporaryDirectory() as out:
        argv = ["run", str(config_path), "--out", out] + (["--threads", str(threads)] if threads else [])
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
            assert cli_main(argv) == 0
        with h5py.File(stdout.getvalue().strip().splitlines()[-1], "r") as handle:
            return {int(group.attrs["batch_size"]): (float(statistics.median(group["epoch/samples_per_s"][()])),
                                                     int(group.attrs["torch_threads"]))
                    for group in handle["trials"].values()}


def plain_throughput(config, dataset, batch_size: int, threads: int) -> float:
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _plain_loop(config, dataset, batch_size)
    finally:
        torch.set_num_threads(default_threads)


def _plain_loop(config, dataset, batch_size: int) -> float:
    torch.manual_seed(0)
    model = build_model(config.model, dataset.input_shape, dataset.kind, dataset.num_classes)
    optimizer = make_optimizer(config.train, model.parameters(), scaled_lr(config.train, config.train.lr, batch_size))
    generator = torch.Generator().manual_seed(0)
    steps = dataset.train_size // batch_size
    rates = []
    for _ in range(config.train.epochs):
        start = time.perf_counter()
        permutation = torch.randperm(dataset.train_size, generator=generator)
        for step in range(steps):
            index = permutation[step * batch_size:(step + 1) * batch_size]
            loss = F.cross_entropy(model(dataset.x_train[index]), dataset.y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        rates.append(steps * batch_size / (time.perf_counter() - start))
    return statistics.median(rates)


@contextlib.contextmanager
def competitors(count: int):
    """`count` processes that each keep one core busy until the block ends."""
    # Each spins until this process is gone, even when it is killed without running the cleanup below.
    spin = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(count)]
    try:
        time.sleep(0.5)   # let them get going before anything is measured
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def measure(config_path: Path, config, dataset, rounds: int) -> tuple[dict[str, dict[int, float]], dict[int, str]]:
    """Median samples/s of each way and batch size, and the thread counts the policy chose for each batch size."""
    default_threads = torch.get_num_threads()
    results: dict[str, dict[int, list[float]]] = {"cli": {}, "cli fixed": {}, "plain": {}, "plain 1": {}}
    chosen: dict[int, list[int]] = {}
    for _ in range(rounds):
        for name, threads in (("cli", None), ("cli fixed", default_threads)):
            for batch_size, (rate, used) in cli_throughput(config_path, threads).items():
                results[name].setdefault(batch_size, []).append(rate)
                if threads is None:
                    chosen.setdefault(batch_size, []).append(used)
        for batch_size in config.sweep.batch_sizes:
            for name, threads in (("plain 1", 1), ("plain", default_threads)):
                rate = plain_throughput(config, dataset, batch_size, threads)
                results[name].setdefault(batch_size, []).append(rate)
                # A thread pool goes on spinning for a while after its last operation; let it stop before the
                # next measurement, or that one competes with it.
                time.sleep(0.3)
    medians = {name: {b: statistics.median(r) for b, r in by_batch.items()} for name, by_batch in results.items()}
    return medians, {b: ",".join(map(str, used)) for b, used in chosen.items()}


def report(title: str, busy_elsewhere: float | None, results: dict[str, dict[int, float]],
           chosen: dict[int, str]) -> None:
    load = "unmeasured" if busy_elsewhere is None else f"{busy_elsewhere:.2f} cores"
    print(f"\n{title} (other processes kept {load} busy meanwhile)", flush=True)
    print(f"{'batch':>6} {'cli/s':>8} {'fixed/s':>8} {'plain/s':>8} {'plain1/s':>8} {'cli/plain':>10} "
          f"{'cli/plain1':>11} {'fixed/plain':>12}  cli threads")
    for batch_size in sorted(results["plain"]):
        cli, fixed, plain, plain1 = (results[name][batch_size] for name in ("cli", "cli fixed", "plain", "plain 1"))
        print(f"{batch_size:>6} {cli:>8.0f} {fixed:>8.0f} {plain:>8.0f} {plain1:>8.0f} {cli / plain:>10.2f} "
              f"{cli / plain1:>11.2f} {fixed / plain:>12.2f}  {chosen[batch_size]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round (a smoke run, noisier)")
    parser.add_argument("--busy", type=int, default=1, help="competing processes, one core each (default 1)")
    args = parser.parse_args()
    rounds = 1 if args.quick else 3
    config_path = Path(tempfile.mkdtemp()) / "demo.toml"
    text = presets()["demo"].read_text(encoding="utf-8").replace("epochs = 15", "epochs = 1")
    text = text.replace("num_samples = 4000", "num_samples = 2000")
    config_path.write_text(text.replace('device = "auto"', 'device = "cpu"'), encoding="utf-8")
    config = load_config(config_path)
    dataset = load_dataset(config.data)
    print(f"torch {torch.__version__}, default {torch.get_num_threads()} threads, {available_cores()} cores "
          f"available; demo preset with {dataset.train_size} training examples, 1 epoch × {rounds} rounds, CPU")
    meter = LoadMeter()
    for title, count in (("As the machine is", 0), (f"With {args.busy} competing busy process(es)", args.busy)):
        with competitors(count):
            meter.start()
            results, chosen = measure(config_path, config, dataset, rounds)
            busy = meter.busy_elsewhere()
        report(title, busy, results, chosen)


if __name__ == "__main__":
    main()
