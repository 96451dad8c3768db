"""Every CUDA path of engine/hardware, exercised on the GPU this machine has, as one table of what held.

Run on a machine with an NVIDIA GPU: `.venv/bin/python benchmarks/gpu_check.py` (a few minutes at most), and
paste the table into docs/gpu-check.md. Without a GPU every row says "no GPU: skipped": nothing here is
simulated, and a skipped row proves nothing.
"""
from __future__ import annotations

import gc
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.config import parse_config  # noqa: E402
from engine.data import Dataset  # noqa: E402
from engine.events import TrialSpec  # noqa: E402
from engine.hardware.max_batch import find_max_batch  # noqa: E402
from engine.hardware.precision import StepPrecision  # noqa: E402
from engine.hardware.step_memory import measure_step_memory  # noqa: E402
from engine.hardware.telemetry import start_telemetry  # noqa: E402
from engine.models import build_model  # noqa: E402
from engine.runfile import read_run  # noqa: E402
from engine.sweep import run_sweep  # noqa: E402

GPU = torch.device("cuda")


def table(**overrides) -> dict:
    base = {"name": "gpu-check", "data": {"dataset": "synthetic", "num_samples": 4000, "num_features": 64},
            "model": {"kind": "mlp", "width": 256, "depth": 2},
            "train": {"optimizer": "adam", "epochs": 1, "eval_batch_size": 512},
            "sweep": {"batch_sizes": [64], "device": "cuda"}}
    for section, values in overrides.items():
        base[section] = {**base[section], **values}
    return base


def nvml_fields() -> str:
    sampler = start_telemetry(GPU)
    x = torch.randn(8192, 8192, device=GPU)
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        x = torch.tanh(x @ x)
    torch.cuda.synchronize()
    event = sampler.finish(TrialSpec(0, "check", 0, 0, 0.0, 0.0))
    columns = event.columns
    names = ("gpu_utilization", "gpu_memory_used_bytes", "gpu_power_w", "gpu_energy_j", "gpu_temperature_c",
             "gpu_sm_clock_mhz", "gpu_throttle_reasons")
    missing = [name for name in names if not torch.tensor(columns[name]).isfinite().any()]
    assert not missing, f"not sampled: {', '.join(missing)} ({event.unavailable})"
    assert columns["gpu_energy_j"][-1] > 0, "energy did not grow"
    return (f"{len(columns['time_s'])} rows in 2 s; utilisation up to {max(columns['gpu_utilization']):.0f}%, "
            f"{max(columns['gpu_power_w']):.0f} W, {columns['gpu_energy_j'][-1]:.0f} J")


def peak_memory_per_trial(folder: Path) -> str:
    first = read_run(run_sweep(parse_config(table(name="first", sweep={"batch_sizes": [64, 2048]})), folder))
    last = read_run(run_sweep(parse_config(table(name="last", sweep={"batch_sizes": [2048, 64]})), folder))
    sizes = {(run.header.name, t.batch_size): t.step_memory_bytes for run in (first, last) for t in run.trials}
    small_first, small_last = sizes[("first", 64)], sizes[("last", 64)]
    assert abs(small_first - small_last) <= 0.05 * small_first, f"batch 64: {small_first} first, {small_last} last"
    assert sizes[("first", 2048)] > small_first, "does not grow with the batch size"
    return f"batch 64: {small_first / 2**20:.1f} MiB first, {small_last / 2**20:.1f} MiB last; 2048: " \
           f"{sizes[('first', 2048)] / 2**20:.1f} MiB"


def oom_without_leak() -> str:
    # Activations of ~400 KB per example (two layers of 16,384 units) over 600,000 examples: ~240 GB, more than
    # any one GPU; the dataset (2.4 GB) and the model (1.1 GB) fit.
    config = parse_config(table(model={"width": 16384}))
    examples, features = 600_000, 1024
    dataset = Dataset(name="oom", x_train=torch.randn(examples, features, device=GPU),
                      y_train=torch.randint(0, 4, (examples,), device=GPU), x_val=torch.randn(512, features, device=GPU),
                      y_val=torch.randint(0, 4, (512,), device=GPU), num_classes=4, input_shape=(features,),
                      kind="vector", val_source="random", class_names=["0", "1", "2", "3"])
    gc.collect()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    try:
        measure_step_memory(config, dataset, examples, GPU)
    except torch.OutOfMemoryError:
        pass
    else:
        raise AssertionError(f"batch {examples} did not run out of memory")
    after = torch.cuda.memory_allocated()
    assert abs(after - before) <= 0.05 * before, f"{before} bytes before, {after} after"
    return f"batch {examples}: out of memory; allocated {before / 2**20:.0f} MiB before, {after / 2**20:.0f} MiB after"


def max_batch_on_device() -> str:
    config = parse_config(table(data={"num_samples": 60_000}, sweep={"batch_sizes": [16]}))
    result = find_max_batch(config, device="cuda", memory_limit=256 * 2**20)
    assert result.largest_fit and not result.reached_train_size, result.outcome
    fits = [p for p in result.probes if p.fits]
    assert all(p.memory.peak_bytes <= 256 * 2**20 for p in fits)
    return result.outcome


def precision(name: str) -> Callable[[Path], str]:
    def check(folder: Path) -> str:
        trial = read_run(run_sweep(parse_config(table(name=name, train={"precision": name})), folder)).trials[0]
        assert trial.status == "completed", f"{trial.status}: {trial.error}"
        loss = trial.epoch["train_loss"][-1]
        assert loss == loss and loss < 10, f"train loss {loss}"
        return f"completed, train loss {loss:.3f}"
    return check


def accumulation_on_device() -> str:
    config = parse_config(table())
    results = []
    for steps in (1, 4):
        torch.manual_seed(0)
        model = build_model(config.model, (64,), "vector", 4).to(GPU)
        generator = torch.Generator(device=GPU).manual_seed(1)
        inputs = torch.randn(30, 64, device=GPU, generator=generator)
        targets = torch.randint(0, 4, (30,), device=GPU, generator=generator)
        loss = StepPrecision("fp32", steps, GPU).forward_backward(model, inputs, targets)
        results.append((loss, [p.grad for p in model.parameters()]))
    worst = max((a - b).abs().max().item() for a, b in zip(results[0][1], results[1][1]))
    assert worst < 1e-5 and abs(results[0][0] - results[1][0]).item() < 1e-5, f"largest difference {worst:.2e}"
    return f"4 micro-batches vs whole batch: largest gradient difference {worst:.1e}"


def main() -> int:
    checks: list[tuple[str, Callable[..., str], bool]] = [
        ("NVML fields (utilisation, memory, power, temperature, clock, throttle)", nvml_fields, False),
        ("CUDA peak memory per trial (same first or last, grows)", peak_memory_per_trial, True),
        ("out of memory recovered, memory back within 5%", oom_without_leak, False),
        ("find-max-batch on the device (256 MiB limit)", max_batch_on_device, False),
        ("fp16 (autocast and gradient scaler)", precision("fp16"), True),
        ("bf16 (autocast)", precision("bf16"), True),
        ("gradient accumulation equals the whole batch", accumulation_on_device, False),
    ]
    gpu = torch.cuda.is_available()
    print(f"# GPU check: {torch.cuda.get_device_name() if gpu else 'no GPU'}, torch {torch.__version__}\n")
    print("| check | result | detail |\n| --- | --- | --- |")
    failures = 0
    with tempfile.TemporaryDirectory() as folder:
        for title, check, needs_folder in checks:
            if not gpu:
                print(f"| {title} | no GPU: skipped | |")
                continue
            started = time.monotonic()
            try:
                detail = check(Path(folder)) if needs_folder else check()
                result = "held"
            except Exception as error:  # noqa: BLE001 — every row reports, whatever failed
                failures += 1
                result, detail = "FAILED", f"{type(error).__name__}: {error}"
                traceback.print_exc(file=sys.stderr)
            print(f"| {title} | {result} | {detail} ({time.monotonic() - started:.1f} s) |", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
