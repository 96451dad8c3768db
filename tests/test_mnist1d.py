"""engine/mnist1d.py against datasets made by the original mnist1d package (scripts/mnist1d_reference.py)."""
import random
from pathlib import Path

import numpy as np
import pytest

from engine.mnist1d import Mnist1dArgs, make_dataset

REFERENCE = Path(__file__).parent / "data" / "mnist1d_reference.npz"


@pytest.mark.parametrize("num_samples, seed", [(200, 0), (333, 42)])
def test_the_port_makes_the_packages_dataset(num_samples, seed):
    with np.load(REFERENCE) as reference:
        expected = {key: reference[f"n{num_samples}_seed{seed}_{key}"] for key in ("x", "y", "x_test", "y_test")}
    made = make_dataset(Mnist1dArgs(num_samples=num_samples, seed=seed))
    for key in ("y", "y_test"):
        np.testing.assert_array_equal(made[key], expected[key], err_msg=key)
    for key in ("x", "x_test"):
        assert made[key].shape == expected[key].shape and made[key].dtype == np.float64
        # Identical on the machine the reference was made on; the tolerance allows for numpy's exp rounding the
        # last bit differently on another CPU's SIMD code path.
        np.testing.assert_allclose(made[key], expected[key], rtol=0, atol=1e-12, err_msg=key)


def test_sizes_follow_the_package():
    made = make_dataset(Mnist1dArgs(num_samples=333, seed=1))
    # 33 per class (the rest is dropped), 80 % of 330 for training.
    assert made["x"].shape == (264, 40) and made["x_test"].shape == (66, 40)
    assert np.bincount(np.concatenate([made["y"], made["y_test"]])).tolist() == [33] * 10


def test_the_global_random_generators_are_left_alone():
    np.random.seed(5)
    random.seed(5)
    expected = np.random.rand(), random.random()
    np.random.seed(5)
    random.seed(5)
    make_dataset(Mnist1dArgs(num_samples=100, seed=0))
    assert (np.random.rand(), random.random()) == expected
