"""Realistic run files and engine event streams for GUI tests and benchmarks, without training anything.

`sweep_events` produces the same event records the engine emits during a sweep (engine.events), with curves
shaped like real ones: loss falls with samples seen, large batch sizes learn less per sample but run
faster, memory grows with the batch size, gradient noise shrinks with it. `write_run` feeds those events
to the real `engine.runfile.RunWriter`, exactly as `engine.sweep` does, so the files are real run files.
"""
from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from engine import schema
from engine.events import (EpochEnded, Event, StepsLogged, SweepEnded, SweepStarted, TrialEnded, TrialSpec,
                           TrialStarted)
from engine.live import LiveRun
from engine.runfile import RunData, RunWriter

ENVIRONMENT = {"python_version": "3.11.9", "torch_version": "2.13.0", "app_version": "0.1.0", "device": "cpu",
               "device_name": "Test CPU", "cpu_count": 2, "platform": "Linux"}


def config_text(name: str, dataset: str, model: str, batch_sizes: Sequence[int], seeds: Sequence[int],
                epochs: int, lr: float) -> str:
    sizes = ", ".join(str(size) for size in batch_sizes)
    seed_list = ", ".join(str(seed) for seed in seeds)
    return (f'name = "{name}"\n\n[data]\ndataset = "{dataset}"\n\n[model]\nkind = "{model}"\nbatch_norm = false\n\n'
            f'[train]\noptimizer = "sgd"\nlr = {lr}\nmomentum = 0.9\nlr_scaling = "sqrt"\nbase_batch_size = 32\n'
            f'epochs = {epochs}\nseeds = [{seed_list}]\n\n[sweep]\nbatch_sizes = [{sizes}]\ndevice = "cpu"\n')


def trial_curves(batch_size: int, seed: int, epochs: int, steps_per_epoch: int, lr: float,
                 log_every: int = 1) -> tuple[dict[str, np.ndarray], list[dict[str, float]]]:
    """Step columns (every `log_every` steps) and epoch rows for one trial."""
    rng = np.random.default_rng(batch_size * 1000 + seed)
    total_steps = epochs * steps_per_epoch
    step = np.arange(log_every, total_steps + 1, log_every, dtype=np.int64)
    samples = step * batch_size
    # Samples needed to learn grow with the batch size beyond a "critical" one (McCandlish et al.).
    efficiency = 1.0 / (1.0 + batch_size / 256)
    progress = samples * efficiency / 6_000
    noise_scale = 0.35 / math.sqrt(batch_size)
    seconds_per_step = 0.002 + batch_size * 2.0e-5
    wall = step * seconds_per_step * (1 + 0.02 * rng.standard_normal(len(step))).clip(0.9, 1.1)
    wall = np.maximum.accumulate(wall)
    loss = 0.25 + 2.05 * np.exp(-progress) + noise_scale * rng.standard_normal(len(step))
    grad_norm = (0.6 + 2.5 * np.exp(-progress) + 4 * noise_scale * np.abs(rng.standard_normal(len(step))))
    warmup = max(1, steps_per_epoch // 2)
    lr_curve = lr * np.minimum(1.0, step / warmup)
    steps = {"step": step, "samples": samples, "wall_time_s": wall, "loss": loss.astype(np.float32),
             "lr": lr_curve.astype(np.float32), "grad_norm": grad_norm.astype(np.float32)}
    ceiling = 0.93 - 0.04 * math.log2(max(batch_size, 16) / 16) + 0.005 * (seed % 3)
    rows = []
    for epoch in range(1, epochs + 1):
        epoch_step = epoch * steps_per_epoch
        epoch_samples = epoch_step * batch_size
        epoch_progress = epoch_samples * efficiency / 6_000
        val_accuracy = ceiling * (1 - math.exp(-1.3 * epoch_progress)) + 0.01 * rng.standard_normal()
        gap = (0.01 + 0.06 * math.sqrt(16 / batch_size)) * epoch / epochs
        train_accuracy = min(0.999, val_accuracy + gap + 0.004 * rng.standard_normal())
        rows.append({
            "epoch": epoch, "step": epoch_step, "samples": epoch_samples,
            "wall_time_s": float(epoch_step * seconds_per_step),
            "train_loss": 0.22 + 2.0 * math.exp(-epoch_progress), "train_accuracy": train_accuracy,
            "val_loss": 0.3 + 2.0 * math.exp(-epoch_progress) + 0.01 * epoch, "val_accuracy": val_accuracy,
            "samples_per_s": batch_size / seconds_per_step * (1 + 0.01 * rng.standard_normal()),
            "peak_memory_bytes": int(40 * 2**20 + batch_size * 0.12 * 2**20)})
    return steps, rows


def sweep_events(*, name: str = "mlp-on-mnist1d", dataset: str = "mnist1d", model: str = "mlp",
                 batch_sizes: Sequence[int] = (16, 32, 64, 128), seeds: Sequence[int] = (0,), epochs: int = 4,
                 train_size: int = 4096, lr: float = 0.05, statuses: dict[int, str] | None = None,
                 run_path: str = "live.h5", chunk_steps: int = 64, log_every: int = 1,
                 stop_after_trials: int | None = None, num_classes: int | None = 10,
                 val_majority_fraction: float | None = 0.104) -> Iterator[Event]:
    """The event stream of a whole sweep, as engine.sweep would emit it.

    `statuses` maps a batch size to how its trials end: `completed` (default), `cancelled` (stops half way),
    `diverged` (loss becomes NaN after one epoch) or `out_of_memory` (fails before the first step).
    `stop_after_trials` ends the sweep there as cancelled (the last trial is left running: a killed writer).
    `num_classes` and `val_majority_fraction` describe the validation set (None: a file from before they were
    recorded).
    """
    statuses = statuses or {}
    plan = []
    for batch_size in batch_sizes:
        for seed in seeds:
            plan.append(TrialSpec(index=len(plan), name=schema.trial_name(batch_size, seed), batch_size=batch_size,
                                  seed=seed, base_lr=lr, lr=lr * math.sqrt(batch_size / 32)))
    text = config_text(name, dataset, model, batch_sizes, seeds, epochs, lr)
    created = _dt.datetime(2025, 3, 14, 9, 26, 53).astimezone().isoformat(timespec="seconds")
    yield SweepStarted(run_path=run_path, config_text=text, created=created, trials=tuple(plan),
                       total_samples=len(plan) * epochs * train_size, device="cpu", device_name="Test CPU",
                       train_size=train_size, val_size=train_size // 4, num_classes=num_classes,
                       val_majority_fraction=val_majority_fraction)
    ended: dict[str, str] = {}
    for index, spec in enumerate(plan):
        if stop_after_trials is not None and index >= stop_after_trials:
            yield SweepEnded(run_path=run_path, status=schema.CANCELLED, trial_statuses=ended)
            return
        status = statuses.get(spec.batch_size, schema.COMPLETED)
        steps_per_epoch = max(1, train_size // spec.batch_size)
        yield TrialStarted(trial=spec, steps_per_epoch=steps_per_epoch, total_steps=epochs * steps_per_epoch,
                           total_samples=epochs * steps_per_epoch * spec.batch_size, parameter_count=25_000)
        if status == schema.OUT_OF_MEMORY:
            ended[spec.name] = status
            yield TrialEnded(trial=spec, status=status,
                             error=f"OutOfMemoryError: CUDA out of memory at batch size {spec.batch_size}")
            continue
        steps, rows = trial_curves(spec.batch_size, spec.seed, epochs, steps_per_epoch, spec.lr, log_every)
        epochs_done = {schema.CANCELLED: max(1, epochs // 2), schema.DIVERGED: 1}.get(status, epochs)
        if status == schema.DIVERGED:
            steps["loss"][(steps["step"] > steps_per_epoch)] = np.nan
        for row in rows[:epochs_done]:
            first = row["step"] - steps_per_epoch
            mask = (steps["step"] > first) & (steps["step"] <= row["step"])
            indices = np.flatnonzero(mask)
            for start in range(0, len(indices), chunk_steps):
                chunk = indices[start:start + chunk_steps]
                yield StepsLogged(trial=spec, epoch_fraction=float(steps["step"][chunk[-1]] / steps_per_epoch),
                                  **{key: values[chunk] for key, values in steps.items()})
            yield EpochEnded(trial=spec, metrics=row)
        if status == schema.DIVERGED:
            after = np.flatnonzero(steps["step"] > steps_per_epoch)[:chunk_steps]
            if len(after):
                yield StepsLogged(trial=spec, epoch_fraction=1.5, **{key: values[after] for key, values in steps.items()})
        error = {schema.DIVERGED: f"the loss became nan at step {steps_per_epoch + 1}"}.get(status, "")
        ended[spec.name] = status
        yield TrialEnded(trial=spec, status=status, error=error)
    overall = schema.CANCELLED if schema.CANCELLED in ended.values() else schema.COMPLETED
    yield SweepEnded(run_path=run_path, status=overall, trial_statuses=ended)


def write_events(path: Path, events: Iterator[Event], created: str | None = None) -> Path:
    """Write an event stream into a run file with the real RunWriter, the way engine.sweep records it.
    `created` (ISO 8601) back-dates the file's creation time, as if it had been written then."""
    writer: RunWriter | None = None
    final = schema.CANCELLED
    for event in events:
        if isinstance(event, SweepStarted):
            balance = {key: getattr(event, key) for key in schema.CLASS_BALANCE_ATTRS
                       if getattr(event, key) is not None}
            writer = RunWriter(Path(path), event.config_text, {**ENVIRONMENT, **balance})
        elif isinstance(event, TrialStarted):
            spec = event.trial
            writer.start_trial(spec.name, {"batch_size": spec.batch_size, "seed": spec.seed, "lr": spec.lr,
                                           "base_lr": spec.base_lr, "parameter_count": event.parameter_count,
                                           "steps_per_epoch": event.steps_per_epoch})
        elif isinstance(event, StepsLogged):
            writer.add_steps(event.trial.name, {m.name: getattr(event, m.name) for m in schema.STEP_METRICS})
        elif isinstance(event, EpochEnded):
            writer.add_epoch(event.trial.name, event.metrics)
        elif isinstance(event, TrialEnded):
            writer.end_trial(event.trial.name, event.status, event.error)
        elif isinstance(event, SweepEnded):
            final = event.status
    writer.close(final)
    if created is not None:
        with h5py.File(path, "r+") as handle:
            handle.attrs["created"] = created
    return Path(path)


def write_run(path: Path, created: str | None = None, **options) -> Path:
    """A real run file (see `sweep_events` for the options; `created` back-dates it)."""
    return write_events(Path(path), sweep_events(run_path=str(path), **options), created)


def live_run(**options) -> tuple[LiveRun, list[Event]]:
    """A LiveRun that has seen only SweepStarted, and the rest of the events to feed it."""
    events = list(sweep_events(**options))
    live = LiveRun()
    live.apply(events[0])
    return live, events[1:]


def big_run_data(trials: int = 20, points: int = 100_000, epochs: int = 100) -> RunData:
    """A run held in memory with `trials` trials of `points` logged steps each (for the redraw benchmark)."""
    batch_sizes = [2 ** (4 + index // 2) for index in range(trials)]
    seeds = [index % 2 for index in range(trials)]
    live = LiveRun()
    text = config_text("benchmark", "mnist1d", "mlp", sorted(set(batch_sizes)), [0, 1], epochs, 0.05)
    plan = tuple(TrialSpec(index=i, name=schema.trial_name(b, s), batch_size=b, seed=s, base_lr=0.05, lr=0.05)
                 for i, (b, s) in enumerate(zip(batch_sizes, seeds)))
    live.apply(SweepStarted(run_path="benchmark.h5", config_text=text, created="2025-03-14T09:26:53+00:00",
                            trials=plan, total_samples=0, device="cpu", device_name="Test CPU", train_size=0,
                            val_size=0))
    steps_per_epoch = points // epochs
    for spec in plan:
        live.apply(TrialStarted(trial=spec, steps_per_epoch=steps_per_epoch, total_steps=points,
                                total_samples=points * spec.batch_size, parameter_count=25_000))
        steps, rows = trial_curves(spec.batch_size, spec.seed, epochs, steps_per_epoch, spec.lr)
        live.apply(StepsLogged(trial=spec, epoch_fraction=float(epochs), **steps))
        for row in rows:
            live.apply(EpochEnded(trial=spec, metrics=row))
        live.apply(TrialEnded(trial=spec, status=schema.COMPLETED))
    return live.run
