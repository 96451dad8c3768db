"""Datasets: the built-in generators and importers for the user's own files, all ending as tensors in memory.

`load_dataset(config)` returns a `Dataset` on the CPU: training and validation tensors, standardized with
statistics of the training split only, plus what a model and a person need to know about them (kind, input
shape, class names, where the validation examples came from). Every problem a user's file can have is a
`DataError` whose message names the file and says what is wrong.

Each format has one loader that returns plain numpy arrays (`_Arrays`); `_finish` then does what every format
shares: checks, the validation split, label noise, standardization and the conversion to tensors.

Validation: the dataset's own test split when it has one and use_test_split is true; otherwise val_fraction of
the training part, picked by a permutation seeded by data_seed (the test split then stays unused). Integer labels
keep their numbers (classes 0..largest label); CSV labels, text or numbers, are numbered in sorted order.

Per-example layout of array files (.npy, .npz, HDF5), decided by the shape of one example:
    ()          → vector of 1 feature
    (F,)        → vector (F,)
    (H, W)      → image (1, H, W)
    (C, H, W)   → image as is, when the first dimension is at most 4 (channels first)
    (H, W, C)   → image (C, H, W), channels moved first, when the first dimension is larger than 4
    more dims   → DataError
"""
from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import itertools
import math
import os
import pickle
import pickletools
import re
import struct
import tempfile
import tokenize
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import psutil
import torch
from PIL import Image, ImageOps

from engine import mnist1d
from engine.config import BUILTIN_DATASETS, DataConfig
from engine.errors import DataError
from engine.resources import cache_dir
from engine.schema import FORMAT as RUN_FILE_FORMAT

KINDS = ("vector", "signal", "image", "sequence")

# Which axis of a batch (N, *input_shape) holds features or channels; standardization keeps it and pools the rest.
_CHANNEL_AXIS = {"vector": 1, "signal": 1, "image": 1, "sequence": 2}

# Independent random streams per purpose, so that changing one use of data_seed never shifts another.
_SPLIT_STREAM, _SYNTHETIC_STREAM, _SEQUENCE_STREAM, _LABEL_NOISE_STREAM = range(4)

_SUPPORTED = ("a .csv, .npy, .npz, .h5 or .hdf5 file; a folder of MNIST or Fashion-MNIST IDX files "
              "(train-images-idx3-ubyte and train-labels-idx1-ubyte, optionally .gz); a folder of CIFAR-10 python "
              "batches (data_batch_1 to data_batch_5, test_batch); or an image folder with one sub-folder per "
              "class (optionally inside train/ and test/ sub-folders)")


@dataclass
class Dataset:
    """A classification dataset held in memory, ready to be indexed by batch."""
    name: str
    x_train: torch.Tensor = field(repr=False)   # float32, (N, *input_shape), standardized
    y_train: torch.Tensor = field(repr=False)   # int64 class indices 0..num_classes-1, (N,)
    x_val: torch.Tensor = field(repr=False)
    y_val: torch.Tensor = field(repr=False)
    num_classes: int
    input_shape: tuple[int, ...]
    kind: str          # one of KINDS: vector (F,), signal (C, L), image (C, H, W), sequence (L, F)
    val_source: str    # where the validation examples come from, in words: "test split", "held-out 20%"
    class_names: list[str]

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with all four tensors on `device`."""
        return dataclasses.replace(self, x_train=self.x_train.to(device), y_train=self.y_train.to(device),
                                   x_val=self.x_val.to(device), y_val=self.y_val.to(device))

    @property
    def train_size(self) -> int:
        return len(self.y_train)

    @property
    def val_size(self) -> int:
        return len(self.y_val)


def load_dataset(config: DataConfig) -> Dataset:
    """Generate or import the dataset that `config` names, on the CPU. Raises DataError for unusable data."""
    if config.dataset in BUILTIN_DATASETS:
        return _finish(config.dataset, _BUILTINS[config.dataset](config), config)
    path = Path(config.dataset).expanduser()
    try:
        return _finish(path.name, _load_path(path, config), config)
    except OSError as error:   # e.g. a folder without read permission: the user's to fix, not a bug
        raise DataError(f"{path}: cannot be read ({error})") from None
    except MemoryError:
        raise DataError(f"{path}: too large to load into this computer's memory") from None


def describe(config: DataConfig) -> str:
    """One line for the user, e.g. 'mnist1d: 3200 train / 800 val (test split), 10 classes, signal 1×40'."""
    data = load_dataset(config)
    shape = "×".join(str(size) for size in data.input_shape)
    return (f"{data.name}: {data.train_size} train / {data.val_size} val ({data.val_source}), "
            f"{data.num_classes} classes, {data.kind} {shape}")


@dataclass
class _Arrays:
    """What a loader returns: raw arrays before splitting and standardizing."""
    x: np.ndarray                      # (N, *input_shape), any real numeric dtype
    y: np.ndarray                      # (N,) int64, checked by _class_numbers or made by a generator
    kind: str
    source: str                        # names the file (or generator) in error messages
    class_names: list[str] | None = None   # None: classes are 0..max label, named by their numbers
    x_test: np.ndarray | None = None   # the dataset's own test split, if it has one
    y_test: np.ndarray | None = None
    train_label_noise: float = 0.0     # share of training labels to replace by random classes after the split


def _finish(name: str, arrays: _Arrays, config: DataConfig) -> Dataset:
    """Checks shared by every format, the validation split, label noise, standardization, tensors."""
    source = arrays.source
    parts = [("training", arrays.x, arrays.y)]
    if arrays.x_test is not None:
        parts.append(("test", arrays.x_test, arrays.y_test))
    for part, x, y in parts:
        if len(x) == 0:
            raise DataError(f"{source}: the {part} split holds no examples")
        if len(x) != len(y):
            raise DataError(f"{source}: {len(x)} {part} inputs but {len(y)} labels; every example needs exactly "
                            "one label")
        if x.dtype.kind not in "biuf":
            raise DataError(f"{source}: the {part} inputs are not numbers (their type is {x.dtype})")
        if math.prod(x.shape[1:]) == 0:
            raise DataError(f"{source}: each {part} example has shape {x.shape[1:]}, which holds no values")
        if x.dtype.kind == "f":
            _check_finite_float32(x, source, part)
        if part == "test" and x.shape[1:] != arrays.x.shape[1:]:
            raise DataError(f"{source}: test examples have shape {x.shape[1:]} but training examples have shape "
                            f"{arrays.x.shape[1:]}; both splits must have the same shape")

    if arrays.x_test is not None and config.use_test_split:
        x_train, y_train, x_val, y_val = arrays.x, arrays.y, arrays.x_test, arrays.y_test
        val_source = "test split"
    else:
        # Without use_test_split the test split stays untouched: validation comes out of the training part only.
        train_index, val_index = _split(len(arrays.y), config, source)
        x_train, y_train = arrays.x[train_index], arrays.y[train_index]
        x_val, y_val = arrays.x[val_index], arrays.y[val_index]
        val_source = f"held-out {config.val_fraction * 100:g}%"

    largest = int(max(y_train.max(), y_val.max()))
    class_names = arrays.class_names or [str(label) for label in range(largest + 1)]
    if largest >= len(class_names):
        raise DataError(f"{source}: label {largest} found, but the dataset names only {len(class_names)} classes")
    if len(np.unique(y_train)) < 2:
        raise DataError(f"{source}: every training example has the same label; a classifier needs at least two "
                        "classes")

    y_train = y_train.astype(np.int64)
    if arrays.train_label_noise > 0:
        rng = np.random.default_rng([config.data_seed, _LABEL_NOISE_STREAM])
        noisy = rng.choice(len(y_train), size=round(arrays.train_label_noise * len(y_train)), replace=False)
        y_train[noisy] = rng.integers(0, len(class_names), size=len(noisy))

    # astype copies, so standardizing in place never writes into a loader's (possibly read-only) arrays.
    x_train, x_val = x_train.astype(np.float32), x_val.astype(np.float32)
    mean, std = _statistics(x_train, _CHANNEL_AXIS[arrays.kind])
    with np.errstate(over="ignore", invalid="ignore"):
        for x in (x_train, x_val):
            x -= mean
            x /= std
    # Values each within float32's range can still be too far apart (3e38 and -3e38) for their differences.
    if not (np.isfinite(std).all() and np.isfinite(x_train).all() and np.isfinite(x_val).all()):
        raise DataError(f"{source}: the values span too wide a range to standardize in 32-bit floats; rescale "
                        "the data")

    return Dataset(name=name, x_train=torch.from_numpy(np.ascontiguousarray(x_train)),
                   y_train=torch.from_numpy(y_train), x_val=torch.from_numpy(np.ascontiguousarray(x_val)),
                   y_val=torch.from_numpy(y_val.astype(np.int64)), num_classes=len(class_names),
                   input_shape=tuple(x_train.shape[1:]), kind=arrays.kind, val_source=val_source,
                   class_names=class_names)


def _statistics(x: np.ndarray, channel_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each feature or channel, shaped to broadcast over x.

    Summed in float64 a slice of examples at a time: numpy's std would make a float64 copy of the whole
    training set, gigabytes for an image dataset."""
    pooled = tuple(axis for axis in range(x.ndim) if axis != channel_axis)
    step = max(1, 2**22 // max(1, x[0].size))
    slices = [x[start:start + step] for start in range(0, len(x), step)]
    count = x.size // x.shape[channel_axis]
    mean = sum(part.sum(axis=pooled, keepdims=True, dtype=np.float64) for part in slices) / count
    variance = sum(np.square(part - mean).sum(axis=pooled, keepdims=True) for part in slices) / count
    std = np.sqrt(variance)
    std[std <= 1e-6 * np.abs(mean)] = 1.0   # a constant feature carries no information: centre it, don't blow it up
    return mean.astype(np.float32), std.astype(np.float32)


def _split(count: int, config: DataConfig, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices: a permutation seeded by data_seed, the first val_fraction held out."""
    val_count = round(count * config.val_fraction)
    if not 0 < val_count < count:
        raise DataError(f"{source}: {count} examples are too few to hold out val_fraction = {config.val_fraction:g}; "
                        "both the training and the validation part need at least one example")
    order = np.random.default_rng([config.data_seed, _SPLIT_STREAM]).permutation(count)
    return order[val_count:], order[:val_count]


def _class_numbers(labels: np.ndarray, source: str) -> np.ndarray:
    """Labels as int64 class numbers; they must be whole numbers ≥ 0, one per example."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"{source}: labels must be one class number per example, but they form an array of shape "
                        f"{labels.shape} (one-hot labels? store the class numbers instead)")
    if labels.dtype.kind == "f":
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            raise DataError(f"{source}: label {labels[~whole][0]!r} is not a whole number; labels must be class "
                            "numbers 0, 1, 2, ...")
    elif labels.dtype.kind not in "biu":
        raise DataError(f"{source}: labels must be class numbers 0, 1, 2, ..., not {labels.dtype} values")
    if len(labels) and labels.min() < 0:
        raise DataError(f"{source}: label {labels.min()} is negative; labels must be class numbers 0, 1, 2, ...")
    if len(labels) and labels.max() >= 100_000:
        raise DataError(f"{source}: label {labels.max()} is too large; labels must be class numbers 0, 1, 2, ... "
                        "(not identifiers or measurements)")
    return labels.astype(np.int64)


def _arrange(x: np.ndarray, source: str) -> tuple[np.ndarray, str]:
    """Give an inputs array its per-example layout and kind (the rule is in the module docstring)."""
    x = np.asarray(x)
    if x.ndim == 0:
        raise DataError(f"{source}: the inputs are a single value, not one entry per example")
    example = x.shape[1:]
    if len(example) == 0:
        return x.reshape(len(x), 1), "vector"
    if len(example) == 1:
        return x, "vector"
    if len(example) == 2:
        return x[:, None], "image"
    if len(example) == 3:
        return (x, "image") if example[0] <= 4 else (x.transpose(0, 3, 1, 2), "image")
    raise DataError(f"{source}: each example has shape {example}; Batch Size Lab reads examples of at most three "
                    "dimensions (features, height × width, or an image with channels)")


def _pixels(x: np.ndarray) -> np.ndarray:
    """8-bit pixel values scaled to [0, 1]."""
    return x.astype(np.float32) * np.float32(1 / 255)


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT32_RANGE = "the range of 32-bit floats (±3.4e38) that training uses"


def _check_finite_float32(x: np.ndarray, source: str, part: str) -> None:
    """Every value finite and within float32's range; otherwise a DataError naming the first bad example.

    A float64 value beyond float32's range would become infinite on the way to the model, and every trial
    would then "diverge" for a reason that lies in the file."""
    rows = x.reshape(len(x), -1)
    not_finite = ~np.isfinite(rows).all(axis=1)
    # Two comparisons rather than np.abs: no float64 copy of what may be gigabytes of inputs.
    too_large = np.zeros(len(x), bool) if x.dtype.itemsize <= 4 else \
        ((rows > _FLOAT32_MAX) | (rows < -_FLOAT32_MAX)).any(axis=1)
    for bad, problem in ((not_finite, "a missing (NaN) or infinite value; remove or fill it"),
                         (too_large, f"a value beyond {_FLOAT32_RANGE}; rescale the data")):
        if bad.any():
            raise DataError(f"{source}: {part} example {int(np.argmax(bad))} (counting from 0) contains {problem}")


def _check_fits_in_memory(shape: tuple[int, ...], dtype: np.dtype, where: str) -> None:
    """Refuse before allocating: a header can declare any shape, and a few bytes must not claim terabytes."""
    size = math.prod(shape) * dtype.itemsize
    memory = psutil.virtual_memory().total
    if size > memory:
        raise DataError(f"{where} declares {' × '.join(map(str, shape))} values of {dtype} ({size / 2**30:,.1f} "
                        f"GiB), more than this computer's memory ({memory / 2**30:,.1f} GiB)")


# ----- built-in datasets ------------------------------------------------------------------------------------

def _mnist1d(config: DataConfig) -> _Arrays:
    """MNIST-1D made by the mnist1d package's generator (ported to numpy in engine/mnist1d.py; never downloaded),
    cached so that it is generated once, not on every start."""
    path = cache_dir() / f"mnist1d_n{config.num_samples}_seed{config.data_seed}.npz"
    arrays = _read_cache(path)
    if arrays is None:
        arrays = _generate_mnist1d(config.num_samples, config.data_seed)
        _write_cache(path, arrays)
    return _Arrays(x=arrays["x"][:, None, :], y=arrays["y"], x_test=arrays["x_test"][:, None, :],
                   y_test=arrays["y_test"], kind="signal", source="mnist1d", class_names=[str(d) for d in range(10)])


def _generate_mnist1d(num_samples: int, seed: int) -> dict[str, np.ndarray]:
    data = mnist1d.make_dataset(mnist1d.Mnist1dArgs(num_samples=num_samples, seed=seed))
    return {"x": data["x"].astype(np.float32), "y": data["y"].astype(np.int64),
            "x_test": data["x_test"].astype(np.float32), "y_test": data["y_test"].astype(np.int64)}


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    try:
        # Opened here rather than by np.load, which leaves its file open when the archive is damaged.
        with open(path, "rb") as file, np.load(file) as stored:
            return {key: stored[key] for key in ("x", "y", "x_test", "y_test")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None   # missing or damaged: generate again


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write via a temporary file and a rename, so that a reader never sees half a file."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temporary, path)
    except OSError:
        # The cache only saves time; a read-only or full disk must not stop an experiment.
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)


def _synthetic(config: DataConfig) -> _Arrays:
    """Gaussian clusters, four per class, scattered at random in a 6-dimensional latent space and mixed into
    num_features noisy features. No hyperplane separates a class from the others, so capacity matters: on the
    defaults a linear model reaches 50-60% validation accuracy, a small MLP about 70% within five epochs (the
    exact figures vary with data_seed), and a long-trained MLP fits the training set far better than it
    generalizes."""
    rng = np.random.default_rng([config.data_seed, _SYNTHETIC_STREAM])
    count, features, classes = config.num_samples, config.num_features, config.num_classes
    clusters_per_class, latent_size = 4, min(features, 6)
    # The task itself is drawn first, so it stays the same when only num_samples changes.
    centres = 1.2 * rng.standard_normal((classes * clusters_per_class, latent_size))
    mixing = rng.standard_normal((latent_size, features)) / math.sqrt(latent_size)
    cluster = rng.integers(0, len(centres), count)
    latent = centres[cluster] + 0.8 * rng.standard_normal((count, latent_size))
    x = (latent @ mixing).astype(np.float32) + rng.standard_normal((count, features), dtype=np.float32)
    return _Arrays(x=x, y=cluster % classes, kind="vector", source="synthetic",
                   class_names=[str(c) for c in range(classes)], train_label_noise=config.label_noise)


SEQUENCE_FEATURES = 4


def _sequence(config: DataConfig) -> _Arrays:
    """Noise sequences with one class-specific motif at a random time step, plus motifs of no class as
    distractors. The model has to find the motif wherever it is and carry it to the end of the sequence: a
    small GRU or LSTM trained with Adam reaches about 90% within five epochs on the defaults."""
    rng = np.random.default_rng([config.data_seed, _SEQUENCE_STREAM])
    count, length, classes = config.num_samples, config.sequence_length, config.num_classes
    motif_length = max(2, min(8, length // 5))
    distractor_kinds, distractors_per_example = 4, min(2, length // motif_length - 1)
    motifs = rng.choice([-1.0, 1.0], size=(classes + distractor_kinds, motif_length, SEQUENCE_FEATURES))
    motifs = motifs.astype(np.float32)
    y = rng.integers(0, classes, count)
    x = 0.5 * rng.standard_normal((count, length, SEQUENCE_FEATURES), dtype=np.float32)
    rows, steps = np.arange(count)[:, None], np.arange(motif_length)

    def insert(which: np.ndarray) -> None:
        start = rng.integers(0, length - motif_length + 1, count)
        x[rows, start[:, None] + steps] += 1.5 * motifs[which]

    for _ in range(distractors_per_example):
        insert(rng.integers(classes, classes + distractor_kinds, count))
    insert(y)
    return _Arrays(x=x, y=y, kind="sequence", source="sequence", class_names=[str(c) for c in range(classes)])


_BUILTINS: dict[str, Callable[[DataConfig], _Arrays]] = {
    "mnist1d": _mnist1d, "synthetic": _synthetic, "sequence": _sequence}


# ----- the user's files ---------------------------------------------------------------------------------------

def _load_csv(path: Path, config: DataConfig, max_rows: int | None = None) -> _Arrays:
    """A header row, one example per row: the label_column holds labels, every other column a number.
    max_rows: read only the header and that many rows below it (see check_head)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            rows = list(itertools.islice(((line, row) for line, row in enumerate(csv.reader(file), start=1)
                                          if any(c.strip() for c in row)), None if max_rows is None else 1 + max_rows))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: cannot be read as CSV text ({error})") from None
    if not rows:
        raise DataError(f"{path}: the file is empty")
    header = [name.strip() for name in rows[0][1]]
    if config.label_column not in header:
        raise DataError(f"{path}: no column named {config.label_column!r} (set data.label_column to the column "
                        f"that holds the labels); the columns are: {', '.join(header)}")
    if len(header) < 2:
        raise DataError(f"{path}: besides the label column there are no columns of inputs")
    body = rows[1:]
    if not body:
        raise DataError(f"{path}: there are no rows below the header")
    for line, row in body:
        if len(row) != len(header):
            raise DataError(f"{path}: line {line} has {len(row)} values but the header has {len(header)} columns")
    label_index = header.index(config.label_column)
    feature_index = [i for i in range(len(header)) if i != label_index]
    cells = np.array([row for _, row in body], dtype=str)

    def number(line: int, column: int, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise DataError(f"{path}: line {line}, column {header[column]!r}: {text!r} is not a number; every "
                            f"column except {config.label_column!r} must hold numbers") from None

    try:
        x = cells[:, feature_index].astype(np.float64)
    except ValueError:
        # numpy does not say which cell failed: convert cell by cell to point the user at the first bad one.
        x = np.array([[number(line, i, row[i]) for i in feature_index] for line, row in body])
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(x) | (np.abs(x) > _FLOAT32_MAX)
    if bad.any():
        row, column = (int(index) for index in np.argwhere(bad)[0])
        line, text = body[row][0], body[row][1][feature_index[column]].strip()
        problem = ("a missing (NaN) or infinite value; remove or fill it" if not np.isfinite(x[row, column])
                   else f"{text}, beyond {_FLOAT32_RANGE}; rescale that column")
        raise DataError(f"{path}: line {line}, column {header[feature_index[column]]!r} holds {problem}")
    labels = np.char.strip(cells[:, label_index])
    if (labels == "").any():
        line = body[int(np.argmax(labels == ""))][0]
        raise DataError(f"{path}: line {line} has no label in column {config.label_column!r}")
    try:
        values, y = np.unique(labels.astype(np.int64), return_inverse=True)   # numeric order: 2 before 10
    except ValueError:
        values, y = np.unique(labels, return_inverse=True)
    return _Arrays(x=x, y=y.astype(np.int64), kind="vector", source=str(path),
                   class_names=[str(value) for value in values])


def _load_npy(path: Path, config: DataConfig) -> _Arrays:
    """Inputs in one .npy file, integer labels in the .npy file named by data.labels."""
    if not config.labels:
        raise DataError(f"{path}: an .npy dataset needs its labels in a second .npy file; set data.labels to its path")
    labels_path = Path(config.labels).expanduser()
    x, kind = _arrange(_read_npy(path), str(path))
    y = _class_numbers(_read_npy(labels_path), str(labels_path))
    if len(x) != len(y):
        raise DataError(f"{path} holds {len(x)} examples but {labels_path} holds {len(y)} labels; they must match")
    return _Arrays(x=x, y=y, kind=kind, source=str(path))


def _check_start(path: Path, magic: bytes, what: str) -> None:
    """Numpy's own message for a file of the wrong kind talks about pickles; say plainly what it is not."""
    try:
        with open(path, "rb") as file:
            start = file.read(len(magic))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    if start != magic:
        raise DataError(f"{path}: not {what}")


def _check_npy_header(file: io.BufferedIOBase, stored_bytes: int, where: str) -> None:
    """Read an .npy header and refuse, before numpy allocates anything, an array of Python objects or one whose
    declared size the stored bytes cannot hold or memory cannot take."""
    try:
        version = np.lib.format.read_magic(file)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(file)
    except (ValueError, TypeError, SyntaxError, tokenize.TokenError, EOFError) as error:   # numpy parses it as Python
        raise DataError(f"{where}: not a readable .npy array (its header is damaged: {error})") from None
    if dtype.hasobject:
        raise DataError(f"{where} holds Python objects, not numbers; they are never loaded, because loading "
                        "them could run code from the file")
    declared = math.prod(shape) * dtype.itemsize
    if declared > stored_bytes - file.tell():
        raise DataError(f"{where}: its header announces {' × '.join(map(str, shape))} values of {dtype} but the "
                        "file is shorter; it is cut short or damaged")
    _check_fits_in_memory(shape, dtype, where)


def _read_npy(path: Path) -> np.ndarray:
    _check_start(path, b"\x93NUMPY", "an .npy array file (as written by numpy.save)")
    try:
        with open(path, "rb") as file:
            _check_npy_header(file, os.fstat(file.fileno()).st_size, str(path))
        return np.load(path, allow_pickle=False)   # no pickles: an array of plain numbers never needs them
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy array of numbers ({error})") from None


def _load_npz(path: Path, config: DataConfig) -> _Arrays:
    _check_start(path, b"PK", "an .npz archive (as written by numpy.savez)")

    def read(archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
        member = f"{key}.npy" if f"{key}.npy" in archive.zip.namelist() else key
        with archive.zip.open(member) as stream:
            if stream.read(6) == b"\x93NUMPY":   # other members are raw bytes, refused later as "not numbers"
                stream.seek(0)
                _check_npy_header(stream, archive.zip.getinfo(member).file_size, f"{path}: the array {key!r}")
        return archive[key]

    try:
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as archive:   # see _read_cache
            return _named_arrays(str(path), list(archive.files), lambda key: read(archive, key), config)
    # zipfile says NotImplementedError for an unknown compression method, RuntimeError for an encrypted member
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as error:
        raise DataError(f"{path}: not a readable .npz archive of numbers ({error})") from None


def _load_hdf5(path: Path, config: DataConfig) -> _Arrays:
    try:
        with h5py.File(path, "r") as file:
            file_format = file.attrs.get("format", "")
            if (file_format.decode() if isinstance(file_format, bytes) else file_format) == RUN_FILE_FORMAT:
                raise DataError(f"{path}: this is a Batch Size Lab run file (results of an experiment), not a "
                                "dataset; open it with report, or choose the data file it was trained on")
            names: list[str] = []
            file.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
            return _named_arrays(str(path), names, lambda key: _read_hdf5_dataset(file[key], f"{path}: the "
                                                                                  f"array {key!r}"), config)
    # h5py turns damage deep in a file into any of these
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path}: not a readable HDF5 file ({error})") from None


def _read_hdf5_dataset(dataset: h5py.Dataset, where: str) -> np.ndarray:
    """Check type and declared size before reading: a few bytes of file can declare terabytes of fill value."""
    if dataset.shape is None:
        raise DataError(f"{where} is empty (it has no shape)")
    if dataset.dtype.kind not in "biuf":
        what = {"S": "text", "U": "text", "O": "text or other objects", "V": "records (a compound type)"}
        raise DataError(f"{where} holds {what.get(dataset.dtype.kind, str(dataset.dtype))}, not numbers")
    _check_fits_in_memory(dataset.shape, dataset.dtype, where)
    return dataset[()]


def _named_arrays(source: str, present: list[str], read: Callable[[str], np.ndarray],
                  config: DataConfig) -> _Arrays:
    """NPZ and HDF5: inputs and labels under x_key and y_key, an own test split under <key>_test."""
    for key, setting in ((config.x_key, "data.x_key"), (config.y_key, "data.y_key")):
        if key not in present:
            raise DataError(f"{source}: no array named {key!r} (set {setting}); the file holds: "
                            f"{', '.join(present) or 'no arrays'}")
    test_keys = (f"{config.x_key}_test", f"{config.y_key}_test")
    has_test = [key in present for key in test_keys]
    if any(has_test) and not all(has_test):
        found, missing = test_keys if has_test[0] else test_keys[::-1]
        raise DataError(f"{source}: holds {found!r} but not {missing!r}; a test split needs both")
    x, kind = _arrange(read(config.x_key), source)
    arrays = _Arrays(x=x, y=_class_numbers(read(config.y_key), source), kind=kind, source=source)
    if all(has_test):
        arrays.x_test = _arrange(read(test_keys[0]), source)[0]
        arrays.y_test = _class_numbers(read(test_keys[1]), source)
    return arrays


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_NAME = re.compile(r"(train|t10k)-(images|labels)[.-]idx[13]-ubyte(\.gz)?")


def _idx_file(folder: Path, prefix: str, dims: int) -> Path | None:
    """The file of one IDX part: the usual name, the variant with a dot, each possibly gzipped."""
    for name in (f"{prefix}-idx{dims}-ubyte", f"{prefix}.idx{dims}-ubyte"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _is_idx_folder(folder: Path) -> bool:
    return _idx_file(folder, "train-images", 3) is not None


def _read_idx(path: Path) -> np.ndarray:
    """An IDX array: two zero bytes, a type code, the number of dimensions, each dimension as a big-endian
    32-bit count, then the values."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
            start = file.read(4)
            if len(start) < 4 or start[0] != 0 or start[1] != 0 or start[2] not in _IDX_DTYPES or start[3] == 0:
                raise DataError(f"{path}: not an IDX file (the MNIST format): its header is wrong")
            dims = start[3]
            sizes = file.read(4 * dims)
            if len(sizes) < 4 * dims:
                raise DataError(f"{path}: the file is cut short inside its header")
            shape = struct.unpack(f">{dims}I", sizes)
            dtype = np.dtype(_IDX_DTYPES[start[2]])
            _check_fits_in_memory(shape, dtype, str(path))
            expected = math.prod(shape) * dtype.itemsize
            # One byte more than announced tells "too long" apart, and a gzip bomb is never unpacked further.
            data = file.read(expected + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot be read ({error})") from None
    if len(data) != expected:
        found = "more" if len(data) > expected else str(len(data))
        raise DataError(f"{path}: the header announces {expected} bytes of values ({' × '.join(map(str, shape))}) "
                        f"but the file holds {found}; it is {'cut short' if len(data) < expected else 'too long'}")
    return np.frombuffer(data, dtype).reshape(shape)


def _load_idx(folder: Path, config: DataConfig) -> _Arrays:
    """MNIST and Fashion-MNIST: train-* files, and t10k-* files as the test split when present."""
    splits = []
    for prefix in ("train", "t10k"):
        images_path, labels_path = _idx_file(folder, f"{prefix}-images", 3), _idx_file(folder, f"{prefix}-labels", 1)
        if images_path is None and prefix == "t10k":
            break
        if labels_path is None:
            raise DataError(f"{images_path}: the labels file {prefix}-labels-idx1-ubyte is missing from {folder}")
        images, labels = _read_idx(images_path), _read_idx(labels_path)
        if images.ndim != 3:
            raise DataError(f"{images_path}: expected images (count × height × width), found shape {images.shape}")
        if len(images) != len(labels):
            raise DataError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
                            "labels; they must match")
        pixels = _pixels(images) if images.dtype == np.uint8 else images   # others are checked as numbers
        splits.append((pixels[:, None], _class_numbers(labels, str(labels_path))))
    arrays = _Arrays(x=splits[0][0], y=splits[0][1], kind="image", source=str(folder))
    if len(splits) > 1:
        arrays.x_test, arrays.y_test = splits[1]
    return arrays


_CIFAR_NAME = re.compile(r"data_batch_\d+|test_batch|batches\.meta")


def _cifar_batches(folder: Path) -> list[Path]:
    batches = [p for p in folder.glob("data_batch_*") if re.fullmatch(r"data_batch_\d+", p.name)]
    return sorted(batches, key=lambda p: int(p.name.rsplit("_", 1)[1]))


def _is_cifar_folder(folder: Path) -> bool:
    return bool(_cifar_batches(folder))


class _RefusedPickle(Exception):
    """Something in a pickle that a CIFAR-10 batch never holds; the message says what."""


class _DtypeRecord:
    """Stands in for numpy.dtype while unpickling: only plain numbers, never Python objects. numpy's own
    dtype.__setstate__ would take flags from the file (one of them makes raw bytes count as object pointers)."""

    def __init__(self, spec: object, align: object = False, copy: object = True):
        if not isinstance(spec, (str, bytes)):
            raise _RefusedPickle(f"an array type given as {type(spec).__name__}")
        text = spec.decode("latin-1") if isinstance(spec, bytes) else spec
        try:
            self.dtype = np.dtype(text)
        except TypeError:
            raise _RefusedPickle(f"an unknown array type {text!r}") from None
        if self.dtype.kind not in "biuf":
            raise _RefusedPickle(f"an array of {self.dtype} values")

    def __setstate__(self, state: object) -> None:
        byte_order = state[1] if isinstance(state, tuple) and len(state) > 1 else None
        byte_order = byte_order.decode("latin-1") if isinstance(byte_order, bytes) else byte_order
        if byte_order not in ("<", ">", "|", "="):
            raise _RefusedPickle(f"an array type whose byte order is {byte_order!r}")
        if any(part is not None for part in state[2:5]):   # sub-arrays, field names, fields: records, not pixels
            raise _RefusedPickle("an array of records")
        self.dtype = self.dtype.newbyteorder(byte_order) if byte_order != "|" else self.dtype


class _ArrayRecord:
    """Stands in for numpy.ndarray while unpickling: the array is made from its bytes with np.frombuffer, so
    no state from the file reaches numpy's own __setstate__."""
    array: np.ndarray

    def __setstate__(self, state: object) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise _RefusedPickle("an array in an unknown layout")
        _, shape, dtype, fortran_order, data = state
        self.array = _array_from_bytes(data, dtype, shape, "F" if fortran_order else "C")


_ARRAY_TYPE = object()   # what the pickle's numpy.ndarray becomes: usable only as the first argument of _reconstruct


def _array_from_bytes(data: object, dtype: object, shape: object, order: object) -> np.ndarray:
    if not isinstance(dtype, _DtypeRecord):
        raise _RefusedPickle("an array without a number type")
    if not isinstance(data, (bytes, bytearray)):
        raise _RefusedPickle(f"array values given as {type(data).__name__}")
    if not (isinstance(shape, tuple) and all(isinstance(size, int) and size >= 0 for size in shape)):
        raise _RefusedPickle("an array with a malformed shape")
    order = order.decode("latin-1") if isinstance(order, bytes) else order
    if math.prod(shape) * dtype.dtype.itemsize != len(data) or order not in ("C", "F"):
        raise _RefusedPickle(f"an array of shape {shape} whose values do not fill it")
    return np.frombuffer(data, dtype.dtype).reshape(shape, order=order)


def _reconstruct(array_type: object, shape: object, typecode: object) -> _ArrayRecord:
    if array_type is not _ARRAY_TYPE:
        raise _RefusedPickle("numpy's array constructor applied to something else than an array")
    return _ArrayRecord()


def _scalar(dtype: object, data: object) -> np.generic:
    return _array_from_bytes(data, dtype, (), "C")[()]


def _frombuffer(data: object, dtype: object, shape: object, order: object) -> _ArrayRecord:
    record = _ArrayRecord()
    record.array = _array_from_bytes(bytes(data) if isinstance(data, bytearray) else data, dtype, shape, order)
    return record


def _latin1(text: object, encoding: object = "utf-8") -> bytes:
    """How Python 3 writes bytes into a protocol-2 pickle: _codecs.encode(text, 'latin1')."""
    if not isinstance(text, str) or encoding != "latin1":
        raise _RefusedPickle("a call of _codecs.encode other than the one that spells bytes")
    return text.encode("latin-1")


def _empty_bytes(*args: object) -> bytes:
    if args:   # bytes(n) would allocate n bytes of nothing
        raise _RefusedPickle("bytes() called with arguments")
    return b""


# Every name a CIFAR-10 python batch can refer to: written by Python 2 and numpy 1 (numpy.core) as the
# official batches are, or re-saved by Python 3 and numpy 2 (numpy._core, protocol 5's _frombuffer).
_PICKLE_NAMES: dict[tuple[str, str], object] = {
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _reconstruct for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _scalar for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _frombuffer for core in ("core", "_core")},
    ("numpy", "ndarray"): _ARRAY_TYPE, ("numpy", "dtype"): _DtypeRecord,
    ("_codecs", "encode"): _latin1, ("builtins", "bytes"): _empty_bytes}


class _CifarUnpickler(pickle.Unpickler):
    """Reads only dicts, lists, text, bytes, numbers and numeric arrays; every other name in the pickle (a
    function to call, a class to build) is refused before it is looked up, so nothing in the file runs."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return _PICKLE_NAMES[module, name]
        except KeyError:
            raise _RefusedPickle(f"a reference to {module}.{name}") from None

    def persistent_load(self, pid: object) -> object:
        raise _RefusedPickle("a persistent reference")


def _arrays_in(value: object) -> object:
    """The unpickled value with each array stand-in replaced by its array, in the dict and list of a batch."""
    if isinstance(value, _ArrayRecord):
        if not hasattr(value, "array"):
            raise _RefusedPickle("an array without its values")
        return value.array
    if isinstance(value, dict):
        return {key: _arrays_in(item) for key, item in value.items()}
    if isinstance(value, list):
        return [item.array if isinstance(item, _ArrayRecord) else item for item in value]
    return value


def _unpickle(path: Path) -> dict:
    """A CIFAR-10 python batch as a dict, read without running any code from the file."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    try:
        # Walking the opcodes first checks every length the file declares against its real size, so a few
        # bytes cannot make the unpickler allocate gigabytes; it builds nothing and looks nothing up.
        for _ in pickletools.genops(content):
            pass
        loaded = _arrays_in(_CifarUnpickler(io.BytesIO(content), encoding="bytes").load())
    except _RefusedPickle as refused:
        raise DataError(f"{path}: refused: the pickle holds {refused}, which a CIFAR-10 python batch never does "
                        "(data files are read without running any code from them)") from None
    except Exception as error:   # a damaged pickle can fail in many ways; each means "not a CIFAR batch"
        raise DataError(f"{path}: not a readable CIFAR-10 python batch ({type(error).__name__}: {error})") from None
    if not isinstance(loaded, dict):
        raise DataError(f"{path}: not a CIFAR-10 python batch (it holds a {type(loaded).__name__}, not a dict)")
    return loaded


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: not a CIFAR-10 python batch (no 'data' and 'labels' entries)")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
        found = f"{data.dtype} of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: CIFAR-10 data should be rows of 3072 bytes, found {found}")
    if isinstance(labels, list) and all(isinstance(label, (int, np.integer)) for label in labels):
        huge = next((label for label in labels if not -2**63 <= label < 2**63), None)
        if huge is not None:
            raise DataError(f"{path}: label {huge} is too large; labels must be class numbers 0, 1, 2, ...")
        labels = np.array(labels, dtype=np.int64)
    if not isinstance(labels, np.ndarray):
        raise DataError(f"{path}: CIFAR-10 labels should be a list of class numbers, found {type(labels).__name__}")
    labels = _class_numbers(labels, str(path))
    if len(labels) != len(data):
        raise DataError(f"{path}: holds {len(data)} images but {len(labels)} labels; they must match")
    return _pixels(data).reshape(-1, 3, 32, 32), labels


def _cifar_class_names(path: Path) -> list[str] | None:
    """label_names from batches.meta: a list of texts (bytes in the official file), or None when absent."""
    names = _unpickle(path).get(b"label_names")
    if names is None:
        return None
    if not (isinstance(names, list) and names and all(isinstance(name, (bytes, str)) for name in names)):
        raise DataError(f"{path}: label_names should be a list of class names, found "
                        f"{type(names).__name__} {str(names)[:60]}")
    try:
        return [name.decode() if isinstance(name, bytes) else name for name in names]
    except UnicodeDecodeError:
        raise DataError(f"{path}: a class name in label_names is not UTF-8 text") from None


def _load_cifar(folder: Path, config: DataConfig) -> _Arrays:
    """CIFAR-10 python batches: data_batch_* for training, test_batch as the test split when present."""
    train = [_read_cifar_batch(path) for path in _cifar_batches(folder)]
    arrays = _Arrays(x=np.concatenate([x for x, _ in train]), y=np.concatenate([y for _, y in train]),
                     kind="image", source=str(folder))
    if (folder / "test_batch").is_file():
        arrays.x_test, arrays.y_test = _read_cifar_batch(folder / "test_batch")
    if (folder / "batches.meta").is_file():
        arrays.class_names = _cifar_class_names(folder / "batches.meta")
    return arrays


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_TEST_FOLDERS = ("test", "val", "validation")


def _visible(path: Path) -> bool:
    # Skips .DS_Store, ._resource forks, __MACOSX and the like that archives and file managers leave behind.
    return not path.name.startswith((".", "__"))


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _visible(p) and p.suffix.lower() in _IMAGE_SUFFIXES)


def _has_class_folders(folder: Path) -> bool:
    return folder.is_dir() and any(_image_files(sub) for sub in _class_folders(folder))


def _is_image_folder(folder: Path) -> bool:
    return _has_class_folders(folder) or _has_class_folders(folder / "train")


def _load_image_folder(folder: Path, config: DataConfig) -> _Arrays:
    """One sub-folder per class; or train/ with test/ (or val/) beside it, each laid out that way."""
    train_root, test_root = folder, None
    if _has_class_folders(folder / "train"):
        train_root = folder / "train"
        test_root = next((folder / name for name in _TEST_FOLDERS if (folder / name).is_dir()), None)
    class_names = [sub.name for sub in _class_folders(train_root)]
    if len(class_names) < 2:
        raise DataError(f"{train_root}: an image folder needs at least two class sub-folders, found "
                        f"{', '.join(class_names) or 'none'}")
    x, y = _read_image_classes(train_root, class_names, config)
    arrays = _Arrays(x=x, y=y, kind="image", source=str(folder), class_names=class_names)
    if test_root is not None:
        arrays.x_test, arrays.y_test = _read_image_classes(test_root, class_names, config)
    return arrays


def _read_image_classes(root: Path, class_names: list[str], config: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for sub in _class_folders(root):
        if sub.name not in class_names:
            raise DataError(f"{sub}: class {sub.name!r} is not among the training classes ({', '.join(class_names)})")
        files = _image_files(sub)
        if not files:
            raise DataError(f"{sub}: this class folder holds no images ({', '.join(_IMAGE_SUFFIXES)})")
        images += [_read_image(path, config) for path in files]
        labels += [class_names.index(sub.name)] * len(files)
    if not images:
        raise DataError(f"{root}: holds no class sub-folders with images")
    pixels = np.stack(images)
    pixels = pixels[:, None] if pixels.ndim == 3 else pixels.transpose(0, 3, 1, 2)   # to (N, C, H, W)
    return _pixels(pixels), np.array(labels, dtype=np.int64)


def _read_image(path: Path, config: DataConfig) -> np.ndarray:
    try:
        with Image.open(path) as image:
            # Phone photos store their rotation as a tag; apply it so that the pixels are upright.
            image = ImageOps.exif_transpose(image).convert("L" if config.grayscale else "RGB")
            size = (config.image_size, config.image_size)
            return np.asarray(image.resize(size, Image.Resampling.BILINEAR))
    except Exception as error:   # Pillow reports damage as OSError, SyntaxError, struct.error, IndexError, ...
        raise DataError(f"{path}: cannot be read as an image ({type(error).__name__}: {error})") from None


_FILE_LOADERS: dict[str, Callable[[Path, DataConfig], _Arrays]] = {
    ".csv": _load_csv, ".npy": _load_npy, ".npz": _load_npz, ".h5": _load_hdf5, ".hdf5": _load_hdf5}

# The file types a data file can have (lower case); folders are recognised by what they hold instead.
DATA_FILE_SUFFIXES: tuple[str, ...] = tuple(_FILE_LOADERS)

# Checked in this order: the first layout a folder matches decides how it is read.
_FOLDER_LOADERS: tuple[tuple[Callable[[Path], bool], Callable[[Path, DataConfig], _Arrays]], ...] = (
    (_is_idx_folder, _load_idx), (_is_cifar_folder, _load_cifar), (_is_image_folder, _load_image_folder))


def _load_path(path: Path, config: DataConfig) -> _Arrays:
    """Pick the loader by the file's suffix, or by what a folder contains."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    folder = path
    if path.is_file():
        loader = _FILE_LOADERS.get(path.suffix.lower())
        if loader is not None:
            return loader(path, config)
        # One file of an IDX or CIFAR-10 set stands for the folder that holds the whole set.
        if not (_IDX_NAME.fullmatch(path.name) or _CIFAR_NAME.fullmatch(path.name)):
            raise DataError(f"{path}: not a kind of file Batch Size Lab can read. Supported: {_SUPPORTED}")
        folder = path.parent
    for matches, loader in _FOLDER_LOADERS:
        if matches(folder):
            return loader(folder, config)
    raise DataError(f"{folder}: this folder matches none of the layouts Batch Size Lab can read. Supported: "
                    f"{_SUPPORTED}")


_FORMAT_NAMES = {_load_csv: "CSV", _load_npy: "NumPy array", _load_npz: "NumPy archive", _load_hdf5: "HDF5"}

# What a file dialog offers: each file loader's name for the user and the suffixes it is chosen by.
FILE_FORMATS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (_FORMAT_NAMES[loader], tuple(suffix for suffix, chosen in _FILE_LOADERS.items() if chosen is loader))
    for loader in dict.fromkeys(_FILE_LOADERS.values()))

HEAD_ROWS = 200


def check_head(config: DataConfig) -> None:
    """A quick look at the start of a CSV dataset, as soon as it is chosen, for what would otherwise fail only
    after Run: its label column, and numbers in its first HEAD_ROWS rows. Raises DataError. Anything else,
    and the rest of the file, is checked by load_dataset."""
    path = Path(config.dataset).expanduser()
    if config.dataset not in BUILTIN_DATASETS and path.suffix.lower() == ".csv" and path.is_file():
        _load_csv(path, config, max_rows=HEAD_ROWS)
