"""Claim: memory grows linearly with batch size."""
from __future__ import annotations

import numpy as np

from engine.analysis import MEMORY_PER_TRIAL
from engine.hardware.memory_model import format_bytes
from engine.science.findings.evidence import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, Context, Finding, Line, mean,
                                              seeds_plot, untestable)

CLAIM_ID = "memory_linear_in_batch_size"
CLAIM = "Memory grows linearly with batch size."
PRESET = "demo"
# A straight line must explain this share of the variation of peak memory over batch sizes to count as linear.
LINEAR_R2 = 0.95
# Growth from the smallest to the largest batch size below this share of the smallest's memory is no growth.
GROWTH_TOLERANCE = 0.05
CAPTION = ("Each trial's memory: a dot per seed, the line their mean; dashed, the straight line fitted to the means, "
           "curved only by the log axis. Means on the dashed line support the claim.")
MIB = 2**20


def judge(context: Context) -> Finding:
    # A training step's own memory (engine.hardware: the allocator's peak on CUDA, the tensors alive at once on
    # the CPU) where the run measured it; else the peak per epoch, which belongs to the trial only on CUDA.
    key, what = "step_memory_bytes", "Memory of a training step"
    memory = {size: values for size, values in context.by_batch_size(key).items() if values}
    if not memory:
        if context.memory_measure != MEMORY_PER_TRIAL:
            return untestable(CLAIM_ID, CLAIM, "its trials did not measure their own memory and it trained on the "
                              "CPU, where peak memory is the process's, which keeps what earlier trials used; run it "
                              "again with this version", PRESET)
        key, what = "peak_memory_bytes", "Peak memory"
        memory = {size: values for size, values in context.by_batch_size(key).items() if values}
    if len(memory) < 3:
        return untestable(CLAIM_ID, CLAIM, "a line through fewer than three batch sizes tests nothing", PRESET)
    sizes = np.array(sorted(memory), float)
    means = np.array([mean(memory[int(size)]) for size in sizes])
    slope, intercept = np.polyfit(sizes, means, 1)
    fitted = slope * sizes + intercept
    total = float(np.sum((means - means.mean()) ** 2))
    r2 = 1 - float(np.sum((means - fitted) ** 2)) / total if total > 0 else 0.0
    growth = (means[-1] - means[0]) / means[0]
    if growth <= GROWTH_TOLERANCE:
        verdict = CONTRADICTED
    elif r2 >= LINEAR_R2:
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    evidence = (f"{what} {format_bytes(means[0])} at batch size {int(sizes[0])}, {format_bytes(means[-1])} "
                f"at {int(sizes[-1])} ({growth:+.0%}); a straight line explains R² = {r2:.3f} of it "
                f"({format_bytes(slope)} per example, {format_bytes(intercept)} fixed).")
    line = np.geomspace(sizes[0], sizes[-1], 50)
    fit = Line("straight-line fit", line.tolist(), ((slope * line + intercept) / MIB).tolist(), dashed=True)
    return Finding(CLAIM_ID, CLAIM, verdict, evidence,
                   {"batch_sizes": sizes.astype(int).tolist(), key: means.tolist(), "r2": r2,
                    "bytes_per_example": float(slope), "fixed_bytes": float(intercept)}, PRESET,
                   seeds_plot(memory, f"{what.lower()} (MiB)", CAPTION, scale=1 / MIB, lines=(fit,)))
