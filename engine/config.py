"""Experiment configs: typed dataclasses loaded from TOML and validated before any training starts.

Every field carries its plain-language help text and its constraints in `metadata`, so the validator, the
README's config reference and the GUI's tooltips all read the same facts. Validation collects every problem
(each names its key and value) instead of stopping at the first.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from engine.errors import ConfigError

BUILTIN_DATASETS = ("mnist1d", "synthetic", "sequence")
MODEL_KINDS = ("mlp", "cnn", "lstm", "gru")
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCALING_RULES = ("none", "linear", "sqrt")
LR_SCHEDULES = ("constant", "cosine")
BUDGETS = ("epochs", "samples")
DEVICES = ("auto", "cpu", "cuda")
STRATEGIES = ("grid",)


def _field(default: Any, help: str, **constraints: Any) -> Any:
    """A dataclass field with its help text and constraints (choices, min, max, min_exclusive, kind)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **constraints})
    return field(default=default, metadata={"help": help, **constraints})


@dataclass
class DataConfig:
    dataset: str = _field("mnist1d", "A built-in dataset (mnist1d, synthetic, sequence) or the path to your own "
                          "data: a CSV, NPY or NPZ file, an HDF5 file, a folder of MNIST/Fashion-MNIST IDX files, "
                          "a folder of CIFAR-10 python batches, or an image folder with one sub-folder per class.",
                          kind="dataset")
    val_fraction: float = _field(0.2, "Share of the examples held out to measure generalization, used when the "
                                 "dataset has no test split of its own (or use_test_split is false).",
                                 min_exclusive=0.0, max_exclusive=1.0)
    use_test_split: bool = _field(True, "Validate on the dataset's own test split where it has one.")
    label_column: str = _field("label", "CSV files: the name of the column that holds the class label.")
    labels: str = _field("", "NPY files: the path of a second .npy file that holds one integer label per example.")
    x_key: str = _field("x", "NPZ and HDF5 files: the name of the inputs array (its test split is <x_key>_test).")
    y_key: str = _field("y", "NPZ and HDF5 files: the name of the labels array (its test split is <y_key>_test).")
    num_samples: int = _field(4000, "Built-in datasets: how many examples to generate (train and validation).",
                              min=20, max=2_000_000)
    num_features: int = _field(32, "synthetic: how many input dimensions each example has.", min=1, max=100_000)
    num_classes: int = _field(4, "synthetic and sequence: how many classes to tell apart.", min=2, max=1000)
    label_noise: float = _field(0.0, "synthetic: share of training labels replaced by a random class, to study "
                                "memorization. Validation labels stay clean.", min=0.0, max=1.0)
    sequence_length: int = _field(40, "sequence: how many time steps each example has.", min=4, max=10_000)
    image_size: int = _field(32, "Image folders: every image is resized to this many pixels square.",
                             min=4, max=1024)
    grayscale: bool = _field(False, "Image folders: convert images to one grey channel.")
    data_seed: int = _field(0, "Seed of the built-in generators and of the validation split; fixed across trials "
                            "so that every batch size sees the same data.", min=0)


@dataclass
class ModelConfig:
    kind: str = _field("mlp", "mlp: fully connected layers. cnn: convolutions (1-D for signals, 2-D for images). "
                       "lstm / gru: recurrent networks that read a sequence step by step.", choices=MODEL_KINDS)
    batch_norm: bool = _field(False, "Add batch normalization after each hidden layer (mlp and cnn). Its "
                              "statistics depend on the batch, so it interacts with batch size.")
    width: int = _field(128, "Units per hidden layer (mlp), channels of the first convolution (cnn) or hidden "
                        "state size (lstm, gru).", min=1, max=100_000)
    depth: int = _field(2, "Number of hidden layers (mlp), convolution blocks (cnn) or stacked recurrent layers.",
                        min=1, max=64)


@dataclass
class TrainConfig:
    optimizer: str = _field("sgd", "sgd: stochastic gradient descent with momentum. adam / adamw: adaptive "
                            "optimizers (adamw decouples weight decay).", choices=OPTIMIZERS)
    lr: float = _field(0.05, "Learning rate at base_batch_size: how big each weight update is.",
                       min_exclusive=0.0, max=100.0)
    momentum: float = _field(0.9, "SGD only: how much of the previous update carries into the next.",
                             min=0.0, max_exclusive=1.0)
    weight_decay: float = _field(0.0, "Pull weights towards zero by this factor each step (regularization).",
                                 min=0.0, max=1.0)
    lr_scaling: str = _field("linear", "How the learning rate changes with batch size, relative to "
                             "base_batch_size. none: the same lr for every batch size. linear: lr grows in "
                             "proportion to batch size. sqrt: lr grows with the square root of batch size.",
                             choices=LR_SCALING_RULES)
    base_batch_size: int = _field(32, "The batch size at which the learning rate is exactly lr.", min=1)
    warmup_epochs: float = _field(0.0, "Raise the learning rate linearly from zero over this many epochs.",
                                  min=0.0)
    schedule: str = _field("constant", "After warm-up: keep the learning rate constant, or decay it along a "
                           "cosine to zero by the end of training.", choices=LR_SCHEDULES)
    budget: str = _field("epochs", "How long each trial trains: a number of passes over the data (epochs), or "
                         "a number of examples seen (samples), the same for every batch size.", choices=BUDGETS)
    epochs: int = _field(5, "Passes over the training data when budget is epochs.", min=1, max=100_000)
    samples: int = _field(100_000, "Training examples to see when budget is samples.", min=1)
    seeds: list[int] = _field([0], "Repeats: one trial per seed and batch size. Same seed, same numbers.",
                              kind="int_list", min=0)
    eval_batch_size: int = _field(1024, "Batch size used to evaluate, the same for every trial so that "
                                  "evaluation cost does not depend on the batch size under study.", min=1)


@dataclass
class SweepConfig:
    batch_sizes: list[int] = _field([16, 32, 64, 128], "Batch sizes to compare: how many examples the model "
                                    "sees before each weight update.", kind="int_list", min=1)
    learning_rates: list[float] = _field([], "Optional: base learning rates to cross with every batch size. "
                                         "Empty means train.lr only.", kind="float_list", min_exclusive=0.0)
    device: str = _field("auto", "Where to train: auto picks the GPU when one is usable, else the CPU.",
                         choices=DEVICES)
    strategy: str = _field("grid", "How trials are chosen: grid tries every combination.", choices=STRATEGIES)


@dataclass
class ExperimentConfig:
    name: str = _field("experiment", "A short name for the experiment; it starts the run file's name.")
    description: str = _field("", "Free text stored in the run file.")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "sweep": SweepConfig}


def field_help(key: str) -> str:
    """The help text of a dotted key such as 'train.lr', for tooltips and the README."""
    section, _, name = key.rpartition(".")
    cls = SECTIONS[section] if section else ExperimentConfig
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}[name]


def iter_fields():
    """(dotted key, dataclass field) for every leaf key, in file order."""
    for f in dataclasses.fields(ExperimentConfig):
        if f.name in SECTIONS:
            for sub in dataclasses.fields(SECTIONS[f.name]):
                yield f"{f.name}.{sub.name}", sub
        else:
            yield f.name, f


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and not isinstance(value, bool)


def _check_bounds(key: str, value: float, meta: dict, problems: list[str]) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{key} = {value!r}: must be a finite number")
        return False
    for bound, test, words in (("min", lambda v, b: v >= b, "at least"),
                               ("max", lambda v, b: v <= b, "at most"),
                               ("min_exclusive", lambda v, b: v > b, "greater than"),
                               ("max_exclusive", lambda v, b: v < b, "less than")):
        if bound in meta and not test(value, meta[bound]):
            problems.append(f"{key} = {value!r}: must be {words} {meta[bound]}")
            return False
    return True


def _coerce(key: str, value: Any, f: dataclasses.Field, problems: list[str]) -> Any:
    """Type- and range-check one value; returns it (ints widened to float where a float is wanted) or None."""
    meta = f.metadata
    kind = meta.get("kind")
    if kind in ("int_list", "float_list"):
        want_int = kind == "int_list"
        # An empty batch-size or seed list would mean no trials; an empty lr list means "use train.lr".
        if not isinstance(value, list) or (want_int and not value):
            wanted = "a non-empty list of whole numbers" if want_int else "a list of numbers"
            problems.append(f"{key} = {value!r}: must be {wanted}")
            return None
        items = []
        for item in value:
            ok_type = _is_int(item) if want_int else _is_number(item)
            if not ok_type:
                problems.append(f"{key} contains {item!r}: must be a {'whole ' if want_int else ''}number")
                return None
            if not _check_bounds(key, item, meta, problems):
                return None
            items.append(item if want_int else float(item))
        if len(set(items)) != len(items):
            problems.append(f"{key} = {value!r}: contains a value twice")
            return None
        return items
    if f.type in ("int", int):
        if not _is_int(value):
            problems.append(f"{key} = {value!r}: must be a whole number")
            return None
        return value if _check_bounds(key, value, meta, problems) else None
    if f.type in ("float", float):
        if not _is_number(value):
            problems.append(f"{key} = {value!r}: must be a number")
            return None
        return float(value) if _check_bounds(key, value, meta, problems) else None
    if f.type in ("bool", bool):
        if not isinstance(value, bool):
            problems.append(f"{key} = {value!r}: must be true or false")
            return None
        return value
    if not isinstance(value, str):
        problems.append(f"{key} = {value!r}: must be text")
        return None
    if "choices" in meta and value not in meta["choices"]:
        problems.append(f"{key} = {value!r}: must be one of {', '.join(meta['choices'])}")
        return None
    return value


def _build(cls: type, table: Any, prefix: str, problems: list[str]) -> Any:
    if not isinstance(table, dict):
        problems.append(f"{prefix.rstrip('.') or 'config'}: must be a table of keys")
        return cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in fields:
            where = f"[{prefix.rstrip('.')}]" if prefix else "the top level"
            problems.append(f"{prefix}{key}: unknown key in {where} (known: {', '.join(fields)})")
            continue
        f = fields[key]
        if key in SECTIONS and not prefix:
            values[key] = _build(SECTIONS[key], value, f"{key}.", problems)
            continue
        coerced = _coerce(prefix + key, value, f, problems)
        if coerced is not None:
            values[key] = coerced
    return cls(**values)


def parse_config(data: dict[str, Any], base_dir: Path | None = None) -> ExperimentConfig:
    """Build and validate a config from a parsed TOML table. Raises ConfigError listing every problem.

    Relative dataset paths are resolved against base_dir (the folder of the config file)."""
    problems: list[str] = []
    config = _build(ExperimentConfig, data, "", problems)
    _check_relations(config, base_dir, problems)
    if problems:
        raise ConfigError(problems)
    return config


def _check_relations(config: ExperimentConfig, base_dir: Path | None, problems: list[str]) -> None:
    """Checks that involve more than one key, or the file system."""
    if not config.name.strip():
        problems.append("name = '': must not be empty")
    elif any(c in config.name for c in '/\\:*?"<>|'):
        problems.append(f"name = {config.name!r}: must not contain any of / \\ : * ? \" < > |")
    dataset = config.data.dataset
    if dataset not in BUILTIN_DATASETS:
        path = Path(dataset).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not dataset.strip():
            problems.append("data.dataset = '': give a built-in name "
                            f"({', '.join(BUILTIN_DATASETS)}) or the path to a file or folder")
        elif not path.exists():
            problems.append(f"data.dataset = {dataset!r}: no such file or folder, and not a built-in dataset "
                            f"({', '.join(BUILTIN_DATASETS)})")
        else:
            config.data.dataset = str(path.resolve())
            if path.suffix.lower() == ".npy" and not config.data.labels:
                problems.append("data.labels = '': an .npy dataset needs the path of an .npy file of labels")
    if config.data.labels:
        labels = Path(config.data.labels).expanduser()
        if not labels.is_absolute() and base_dir is not None:
            labels = base_dir / labels
        if not labels.exists():
            problems.append(f"data.labels = {config.data.labels!r}: no such file")
        else:
            config.data.labels = str(labels.resolve())
    if config.model.batch_norm and config.model.kind in ("lstm", "gru"):
        problems.append(f"model.batch_norm = true: batch normalization does not apply to {config.model.kind} "
                        "models (use mlp or cnn, or set it to false)")
    if config.data.dataset in BUILTIN_DATASETS:
        limit = config.data.num_samples
        for batch_size in config.sweep.batch_sizes:
            if batch_size > limit:
                problems.append(f"sweep.batch_sizes contains {batch_size}: larger than the dataset "
                                f"(data.num_samples = {limit}); every trial needs at least one full batch")


def check_batch_sizes(config: ExperimentConfig, train_size: int) -> None:
    """Once the training set is loaded: every batch size must fit in it at least once."""
    too_big = [b for b in config.sweep.batch_sizes if b > train_size]
    if too_big:
        raise ConfigError([f"sweep.batch_sizes contains {b}: larger than the training set ({train_size} "
                           f"examples of {config.data.dataset}); every trial needs at least one full batch"
                           for b in too_big])


def loads_config(text: str, base_dir: Path | None = None, source: str = "config") -> ExperimentConfig:
    """Parse TOML text into a validated config."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"{source}: not valid TOML ({error})"]) from None
    return parse_config(data, base_dir)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a TOML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such config file"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"{path}: cannot be read ({error})"]) from None
    return loads_config(text, path.parent, source=str(path))


def validate(data: dict[str, Any], base_dir: Path | None = None) -> list[str]:
    """Every problem in a config table, for inline validation in the GUI; empty when valid."""
    try:
        parse_config(data, base_dir)
    except ConfigError as error:
        return error.problems
    return []
