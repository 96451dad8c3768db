"""Real run files built by hand for the science tests: trials whose scheduled evaluations reach a target after a
chosen number of steps, with optional noise-scale rows, written by the real RunWriter (no training)."""
from __future__ import annotations

import numpy as np

from engine import schema
from engine.runfile import RunWriter

ENVIRONMENT = {"device": "cpu", "device_name": "Test CPU", "num_classes": 10, "val_majority_fraction": 0.1}


def steps_law(batch_size: float, s_min: float = 200.0, e_min: float = 20_000.0) -> float:
    return s_min + e_min / batch_size


def write_science_run(path, trials, *, config_extra: str = "", train_size: int = 100_000):
    """trials: dicts with batch_size, seed, base_lr, reach_step (None: never), and optional keys: final (accuracy
    after reaching, default 0.9), train_accuracy (final, default final + 0.02), b_simple (noise rows with this
    ratio), peak_memory_bytes, samples_per_s, batch_norm_reason. Accuracy is 0.1 before reach_step."""
    sizes = sorted({t["batch_size"] for t in trials})
    rates = sorted({t["base_lr"] for t in trials})
    grid = f"learning_rates = {rates}\n" if len(rates) > 1 else ""
    config = (f'name = "science"\n[data]\ndataset = "mnist1d"\n[model]\nkind = "mlp"\n[train]\nlr = {rates[0]}\n'
              f'{config_extra}[sweep]\nbatch_sizes = {sizes}\n{grid}')
    writer = RunWriter(path, config, ENVIRONMENT)
    for spec in trials:
        batch_size, seed, base_lr = spec["batch_size"], spec["seed"], spec["base_lr"]
        name = schema.trial_name(batch_size, seed, base_lr if len(rates) > 1 else None)
        steps_per_epoch = max(1, train_size // batch_size)
        writer.start_trial(name, {"batch_size": batch_size, "seed": seed, "lr": base_lr, "base_lr": base_lr,
                                  "parameter_count": 100, "steps_per_epoch": steps_per_epoch,
                                  schema.NOISE_UNAVAILABLE_ATTR: spec.get("batch_norm_reason", "")})
        reach, final = spec.get("reach_step"), spec.get("final", 0.9)
        steps = np.unique(np.geomspace(1, 20_000, 50).astype(np.int64))
        accuracy = np.where(steps >= reach, final, 0.1) if reach is not None else np.full(len(steps), 0.1)
        seconds = steps * 1e-3 * (1 + batch_size / 256)
        writer.add_rows(name, schema.EVAL_GROUP, {"step": steps, "samples": steps * batch_size,
                                                  "wall_time_s": seconds, "val_loss": 2.3 - accuracy,
                                                  "val_accuracy": accuracy})
        if "b_simple" in spec:
            measured = steps[::5]
            grad_sq = np.ones(len(measured))
            writer.add_rows(name, schema.NOISE_GROUP, {
                "step": measured, "samples": measured * batch_size, "wall_time_s": measured * 1e-3,
                "micro_batch": np.full(len(measured), batch_size / 4), "grad_sq": grad_sq,
                "trace_sigma": grad_sq * spec["b_simple"], "b_simple": np.full(len(measured), spec["b_simple"])})
        writer.add_steps(name, {"step": steps[-1:], "samples": steps[-1:] * batch_size, "wall_time_s": seconds[-1:],
                                "loss": np.array([1.0], np.float32), "lr": np.array([base_lr], np.float32),
                                "grad_norm": np.array([1.0], np.float32)})
        last = steps[-1]
        writer.add_epoch(name, {
            "epoch": 1, "step": last, "samples": last * batch_size, "wall_time_s": seconds[-1],
            "train_loss": 1.0, "train_accuracy": spec.get("train_accuracy", accuracy[-1] + 0.02), "val_loss": 1.1,
            "val_accuracy": accuracy[-1], "samples_per_s": spec.get("samples_per_s", last * batch_size / seconds[-1]),
            "peak_memory_bytes": spec.get("peak_memory_bytes", 2**20 * (50 + batch_size))})
        writer.end_trial(name, spec.get("status", schema.COMPLETED))
    writer.close(schema.COMPLETED)
    return path
