"""Smoothing of noisy per-step curves (batch loss, gradient norm) for the live plots, without Qt.

An exponential moving average, as TensorBoard's smoothing slider does: weight 0 shows every step as measured,
0.99 follows the trend of the last ~100 steps.
"""
from __future__ import annotations

import numpy as np

EMA_BLOCK = 64                    # points per block of the smoothing's matrix product


def ema(values: np.ndarray, weight: float, previous: float | None = None) -> np.ndarray:
    """Exponential moving average that starts at the first value (weight 0 = no smoothing), or continues from
    `previous`, the smoothed value just before `values` (so a growing curve is smoothed only where it grew).

    Computed in blocks with numpy (within a block a matrix product, across blocks the carried value), which is
    what scipy.signal.lfilter would do without scipy (not a dependency: 70 MB of the installer). Only non-negative
    powers of the weight occur, so it is stable.
    """
    values = np.asarray(values, dtype=np.float64)
    if weight <= 0 or len(values) == 0 or (previous is None and len(values) < 2):
        return values
    block = min(EMA_BLOCK, len(values))
    offsets = np.arange(block)
    lags = offsets[:, None] - offsets[None, :]
    within = np.where(lags >= 0, (1.0 - weight) * weight ** np.maximum(lags, 0), 0.0)   # [i, k]: x[k] in y[i]
    carried = weight ** (offsets + 1.0)                                                 # y before the block in y[i]
    blocks = -(-len(values) // block)
    padded = np.zeros(blocks * block)
    padded[:len(values)] = values
    smoothed = padded.reshape(blocks, block) @ within.T
    previous = values[0] if previous is None else previous
    for row in smoothed:
        row += carried * previous
        previous = row[-1]
    return smoothed.reshape(-1)[:len(values)]
