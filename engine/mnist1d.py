"""The MNIST-1D generator, ported from the `mnist1d` package (0.0.2.post1) to numpy alone.

The package's generator needs scipy for two calls (a linear `interp1d`, which scipy hands to numpy.interp, and a
1-D `gaussian_filter`), and its modules import requests and matplotlib: over 70 MB of the installer for about a
hundred lines of maths (see docs/packaging.md). This port makes the same random draws and the same floating-point
operations in the same order, so it produces the package's dataset bit for bit on the same machine:
tests/test_mnist1d.py checks it against datasets the package made (scripts/mnist1d_reference.py writes them).

Derived from mnist1d by Sam Greydanus and Peter Steinbach (https://github.com/greydanus/mnist1d), Apache License
2.0; the licence text is in resources/licenses/mnist1d-LICENSE, which ships with the app. Changes: scipy's
interp1d and gaussian_filter replaced by numpy; a local RandomState instead of the global generators; only what
make_dataset needs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mnist1dArgs:
    """mnist1d.data.get_dataset_args(), less the download URL and shuffle_seq (off there, not offered here)."""
    num_samples: int = 5000
    train_split: float = 0.8
    template_len: int = 12
    padding: tuple[int, int] = (36, 60)
    scale_coeff: float = 0.4
    max_translation: int = 48
    corr_noise_scale: float = 0.25
    iid_noise_scale: float = 2e-2
    shear_scale: float = 0.75
    final_seq_length: int = 40
    seed: int = 42


def templates() -> np.ndarray:
    """The ten digit templates, whitened and starting at 0, shape (10, 12)."""
    x = np.asarray([
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ])
    x -= x.mean(1, keepdims=True)
    x /= x.std(1, keepdims=True)
    x -= x[:, :1]
    return x / 6.


def make_dataset(args: Mnist1dArgs = Mnist1dArgs()) -> dict[str, np.ndarray]:
    """mnist1d.data.make_dataset(args): float64 signals `x`, `x_test` of shape (n, final_seq_length) and int labels
    `y`, `y_test`, split at train_split. The generators of numpy and Python are left alone."""
    rng = np.random.RandomState(args.seed)
    digits = templates()
    per_class = args.num_samples // len(digits)
    xs = [_transform(digits[label], args, rng) for label in range(len(digits)) for _ in range(per_class)]
    ys = [label for label in range(len(digits)) for _ in range(per_class)]
    order = rng.permutation(len(ys))
    x, y = np.stack(xs)[order], np.asarray(ys)[order]
    x = (x - x.mean()) / x.std()
    split = int(len(y) * args.train_split)
    return {"x": x[:split], "x_test": x[split:], "y": y[:split], "y_test": y[split:]}


def _transform(template: np.ndarray, args: Mnist1dArgs, rng: np.random.RandomState) -> np.ndarray:
    """mnist1d.transform.transform for the signal (its second output, the time axis, draws nothing and is
    dropped). Every rng call below matches one of the package's np.random calls, in order."""
    low, high = args.padding
    pad = low + int(rng.rand() * (high - low + 1))
    x = np.concatenate([template + 1e-8, np.zeros(pad)])
    x = _interpolate(x, args.template_len + high)
    x *= 1 + args.scale_coeff * (rng.rand() - 0.5)
    k = rng.choice(args.max_translation)
    x = np.concatenate([x[-k:], x[:-k]])
    mask = x != 0
    x = mask * x + (1 - mask) * _gaussian_filter(args.corr_noise_scale * rng.randn(*x.shape), sigma=2)
    x = x + args.iid_noise_scale * rng.randn(*x.shape)
    x = x - args.shear_scale * (rng.rand() - 0.5) * np.linspace(-0.5, 0.5, len(x))
    return _interpolate(x, args.final_seq_length)


def _interpolate(x: np.ndarray, n: int) -> np.ndarray:
    """scipy.interpolate.interp1d(linspace(0, 1, len(x)), x, kind="linear")(linspace(0, 1, n)), which scipy itself
    hands to numpy.interp for 1-D float64 data."""
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(x)), x)


def _gaussian_filter(x: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage.gaussian_filter of a 1-D signal, mode "reflect", summed in the order of scipy's C loop for
    symmetric kernels (centre first, then the outermost pair of taps inwards), so the result is identical."""
    radius = int(truncate * sigma + 0.5)
    taps = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 / (sigma * sigma) * taps ** 2)
    weights = weights / weights.sum()
    padded = np.pad(x, radius, mode="symmetric")   # scipy's "reflect": d c b a | a b c d | d c b a
    n = len(x)
    out = padded[radius:radius + n] * weights[radius]
    for offset in range(radius, 0, -1):
        out += (padded[radius - offset:radius - offset + n] + padded[radius + offset:radius + offset + n]) \
            * weights[radius - offset]
    return out
