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
import math
import os
import pickle
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
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
        arrays = _load_path(path, config)
    except OSError as error:   # e.g. a folder without read permission: the user's to fix, not a bug
        raise DataError(f"{path}: cannot be read ({error})") from None
    return _finish(path.name, arrays, config)


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
        if x.dtype.kind == "f":
            bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
            if bad.any():
                raise DataError(f"{source}: {part} example {int(np.argmax(bad))} (counting from 0) contains a "
                                "missing (NaN) or infinite value; remove or fill it")
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
    for x in (x_train, x_val):
        x -= mean
        x /= std

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

def _load_csv(path: Path, config: DataConfig) -> _Arrays:
    """A header row, one example per row: the label_column holds labels, every other column a number."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            rows = [(line, row) for line, row in enumerate(csv.reader(file), start=1) if any(c.strip() for c in row)]
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
    not_finite = ~np.isfinite(x).all(axis=1)
    if not_finite.any():
        raise DataError(f"{path}: line {body[int(np.argmax(not_finite))][0]} holds a missing (NaN) or infinite "
                        "value; remove or fill it")
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


def _read_npy(path: Path) -> np.ndarray:
    _check_start(path, b"\x93NUMPY", "an .npy array file (as written by numpy.save)")
    try:
        return np.load(path, allow_pickle=False)   # no pickles: an array of plain numbers never needs them
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy array of numbers ({error})") from None


def _load_npz(path: Path, config: DataConfig) -> _Arrays:
    _check_start(path, b"PK", "an .npz archive (as written by numpy.savez)")
    try:
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as archive:   # see _read_cache
            return _named_arrays(str(path), list(archive.files), lambda key: archive[key], config)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
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
            return _named_arrays(str(path), names, lambda key: file[key][()], config)
    except OSError as error:
        raise DataError(f"{path}: not a readable HDF5 file ({error})") from None


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
            data = file.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot be read ({error})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise DataError(f"{path}: not an IDX file (the MNIST format): its header is wrong")
    dims = data[3]
    if len(data) < 4 + 4 * dims:
        raise DataError(f"{path}: the file is cut short inside its header")
    shape = struct.unpack(f">{dims}I", data[4:4 + 4 * dims])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - 4 - 4 * dims
    if found != expected:
        raise DataError(f"{path}: the header announces {expected} bytes of values ({' × '.join(map(str, shape))}) "
                        f"but the file holds {found}; it is {'cut short' if found < expected else 'too long'}")
    return np.frombuffer(data, dtype, offset=4 + 4 * dims).reshape(shape)


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
        pixels = _pixels(images) if images.dtype == np.uint8 else images.astype(np.float32)
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


def _unpickle(path: Path) -> dict:
    # Unpickling can run code hidden in the file. Acceptable here: the user chose this file as their own data,
    # and CIFAR-10's python batches exist only as pickles.
    try:
        with open(path, "rb") as file:
            content = pickle.load(file, encoding="bytes")
    except Exception as error:   # a damaged pickle can fail in many ways; each means "not a CIFAR batch"
        raise DataError(f"{path}: not a readable CIFAR-10 python batch ({type(error).__name__}: {error})") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: not a CIFAR-10 python batch (it holds a {type(content).__name__}, not a dict)")
    return content


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: not a CIFAR-10 python batch (no 'data' and 'labels' entries)")
    data = np.asarray(batch[b"data"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
        raise DataError(f"{path}: CIFAR-10 data should be rows of 3072 bytes, found {data.dtype} of shape {data.shape}")
    labels = _class_numbers(np.asarray(batch[b"labels"]), str(path))
    if len(labels) != len(data):
        raise DataError(f"{path}: holds {len(data)} images but {len(labels)} labels; they must match")
    return _pixels(data).reshape(-1, 3, 32, 32), labels


def _load_cifar(folder: Path, config: DataConfig) -> _Arrays:
    """CIFAR-10 python batches: data_batch_* for training, test_batch as the test split when present."""
    train = [_read_cifar_batch(path) for path in _cifar_batches(folder)]
    arrays = _Arrays(x=np.concatenate([x for x, _ in train]), y=np.concatenate([y for _, y in train]),
                     kind="image", source=str(folder))
    if (folder / "test_batch").is_file():
        arrays.x_test, arrays.y_test = _read_cifar_batch(folder / "test_batch")
    if (folder / "batches.meta").is_file():
        names = _unpickle(folder / "batches.meta").get(b"label_names")
        if names:
            arrays.class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
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
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: cannot be read as an image ({error})") from None


_FILE_LOADERS: dict[str, Callable[[Path, DataConfig], _Arrays]] = {
    ".csv": _load_csv, ".npy": _load_npy, ".npz": _load_npz, ".h5": _load_hdf5, ".hdf5": _load_hdf5}

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
