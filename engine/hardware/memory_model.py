"""memory = fixed + per example × batch size, fitted to measured (batch size, bytes) pairs, and what it says about
the largest batch size a memory limit allows: for find-max-batch's tries, and for a sweep's trials against the
device's memory."""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import psutil
import torch

if TYPE_CHECKING:
    from engine.runfile import RunData


@dataclass(frozen=True)
class MemoryModel:
    fixed_bytes: float           # what the step needs at any batch size: the model, its gradients, optimizer state
    per_example_bytes: float     # what each example of a batch adds: its activations and temporaries
    points: int                  # how many batch sizes it was fitted to

    def bytes_at(self, batch_size: int) -> float:
        return self.fixed_bytes + self.per_example_bytes * batch_size

    def largest_batch_within(self, limit_bytes: float) -> int | None:
        """The largest batch size the model puts at or below limit_bytes; None when examples cost nothing
        measurable (no limit follows) or when even the fixed part does not fit (0)."""
        if self.per_example_bytes <= 0:
            return None
        return max(0, math.floor((limit_bytes - self.fixed_bytes) / self.per_example_bytes))

    def describe(self) -> str:
        return (f"{format_bytes(self.fixed_bytes)} + {format_bytes(self.per_example_bytes)} per example "
                f"(fitted to {self.points} batch sizes)")


def fit_memory_model(batch_sizes: Sequence[int], memory_bytes: Sequence[float]) -> MemoryModel | None:
    """Least-squares line through the points; None with fewer than two distinct batch sizes.

    At small batch sizes a step's peak is often set by something that does not grow with the batch (the
    optimizer's temporaries), so the line is fitted to the larger half of the batch sizes, where examples
    dominate; with two or three points, to all of them."""
    pairs = sorted(zip(batch_sizes, memory_bytes))
    if len({b for b, _ in pairs}) < 2:
        return None
    if len(pairs) > 3:
        pairs = pairs[len(pairs) // 2:]
        if len({b for b, _ in pairs}) < 2:
            pairs = sorted(zip(batch_sizes, memory_bytes))[-2:]
    sizes = np.asarray([b for b, _ in pairs], dtype=np.float64)
    used = np.asarray([m for _, m in pairs], dtype=np.float64)
    slope, intercept = np.polyfit(sizes, used, 1)
    return MemoryModel(fixed_bytes=float(intercept), per_example_bytes=float(slope), points=len(pairs))


_UNITS = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def format_bytes(count: float) -> str:
    for name, size in _UNITS:
        if abs(count) >= size:
            return f"{count / size:.3g} {name}"
    return f"{count:.0f} B"


def device_memory_bytes(device: torch.device) -> int:
    """The memory of the device a sweep trains on: the GPU's total, or the machine's RAM."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return int(psutil.virtual_memory().total)


@dataclass(frozen=True)
class SweepMemory:
    """What a run's per-trial step memory says: the fitted model, and the batch size beyond which a step would
    not fit in the device's memory. `unavailable` says why a part is missing ('' when nothing is)."""
    model: MemoryModel | None
    method: str
    device_bytes: int | None
    largest_batch: int | None
    unavailable: str
    # With trials of several precisions, the one whose trials the line is fitted to; "" with one precision.
    precision: str = ""

    def text(self) -> str:
        if self.model is None:
            return f"Memory model: unavailable ({self.unavailable})"
        fitted = f" ({self.precision} trials, the most per example of the sweep's precisions)" \
            if self.precision else ""
        text = f"Memory per training step{fitted}: {self.model.describe()}; {self.method}."
        if self.largest_batch is not None:
            text += (f" Batch sizes above ~{self.largest_batch:,} will not fit in the device's "
                     f"{format_bytes(self.device_bytes)}.")
        elif self.unavailable:
            text += f" Largest batch size that fits: unavailable ({self.unavailable})."
        return text

    def document(self) -> dict:
        """For the JSON report: numbers in bytes, None where unavailable."""
        return {"fixed_bytes": self.model.fixed_bytes if self.model else None,
                "per_example_bytes": self.model.per_example_bytes if self.model else None,
                "batch_sizes_fitted": self.model.points if self.model else 0,
                "method": self.method or None, "precision": self.precision or None,
                "device_memory_bytes": self.device_bytes,
                "largest_batch_that_fits": self.largest_batch, "unavailable": self.unavailable or None}


def sweep_memory(run: "RunData") -> SweepMemory:
    """Fit memory = fixed + per example × batch size to the step memory of a run's trials (schema.TRIAL_MEMORY_ATTRS)
    and extrapolate it to the device's memory (the environment attribute device_memory_bytes)."""
    measured = [t for t in run.trials if math.isfinite(t.step_memory_bytes)]
    methods = sorted({t.step_memory_method for t in measured})
    device = run.environment.get("device_memory_bytes")
    device = int(device) if isinstance(device, (int, float)) and device > 0 else None
    if not measured:
        reason = ("no trial measured its step memory: the file was written before it was recorded"
                  if run.trials else "no trials")
        return SweepMemory(None, "", device, None, reason)
    # A step in bf16 holds activations of half the size of fp32's: one line through both fits neither. Each
    # precision gets its own line, and the one costing most per example is kept, so that "above N will not fit"
    # holds for every precision the sweep trained.
    by_precision: dict[str, list] = defaultdict(list)
    for trial in measured:
        by_precision[trial.precision].append(trial)
    models = {precision: fit_memory_model([t.batch_size for t in trials], [t.step_memory_bytes for t in trials])
              for precision, trials in by_precision.items()}
    fitted = {precision: model for precision, model in models.items() if model is not None}
    if not fitted:
        return SweepMemory(None, "; ".join(methods), device, None,
                           "one batch size measured: a line needs two")
    precision, model = max(sorted(fitted.items()), key=lambda item: item[1].per_example_bytes)
    precision = precision if len(models) > 1 else ""
    if device is None:
        return SweepMemory(model, "; ".join(methods), None, None,
                           "the run file does not record the device's memory", precision)
    largest = model.largest_batch_within(device)
    reason = "" if largest is not None else "memory does not grow with the batch size here"
    return SweepMemory(model, "; ".join(methods), device, largest, reason, precision)
