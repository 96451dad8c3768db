"""The smoothing of per-step curves (gui/smoothing.py): Qt-free, checked against the textbook recurrence."""
from __future__ import annotations

import numpy as np
import pytest

from gui.smoothing import EMA_BLOCK, ema


def _recurrence(values: np.ndarray, weight: float) -> np.ndarray:
    smoothed, previous = [], values[0]
    for value in values:
        previous = weight * previous + (1 - weight) * value
        smoothed.append(previous)
    return np.array(smoothed)


@pytest.mark.parametrize("length", [2, EMA_BLOCK - 1, EMA_BLOCK, 3 * EMA_BLOCK + 5])
@pytest.mark.parametrize("weight", [0.3, 0.9, 0.99])
def test_ema_is_the_exponential_moving_average_that_starts_at_the_first_value(length, weight):
    values = np.random.default_rng(length).normal(size=length)
    np.testing.assert_allclose(ema(values, weight), _recurrence(values, weight), rtol=1e-10, atol=1e-12)


def test_weight_zero_and_a_single_value_are_left_as_they_are():
    values = np.array([3.0, 1.0, 2.0])
    np.testing.assert_array_equal(ema(values, 0.0), values)
    np.testing.assert_array_equal(ema(values[:1], 0.9), values[:1])
    assert len(ema(np.array([]), 0.9)) == 0


def test_a_curve_smoothed_in_pieces_equals_it_smoothed_at_once():
    values = np.random.default_rng(0).normal(size=500)
    first = ema(values[:137], 0.95)
    rest = ema(values[137:], 0.95, previous=first[-1])
    np.testing.assert_allclose(np.concatenate([first, rest]), ema(values, 0.95), rtol=1e-12)
    assert ema(np.array([2.0, 4.0]), 0.5, previous=0.0).tolist() == [1.0, 2.5]
