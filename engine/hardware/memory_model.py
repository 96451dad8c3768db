"""memory = fixed + per example × batch size, fitted to measured (batch size, bytes) pairs, and what it says about
the largest batch size a memory limit allows."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
