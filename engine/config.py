"""Experiment configs: typed dataclasses loaded from TOML and validated before any training starts.

Every field carries its plain-language help text and its constraints in `metadata`, so the validator, the
README's config reference and the GUI's tooltips all read the same facts. Validation collects every problem
(each names its key and value) instead of stopping at the first.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import stat
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import tomli_w

from engine.errors import ConfigError, Problem

BUILTIN_DATASETS = ("mnist1d", "synthetic", "sequence")
MODEL_KINDS = ("mlp", "cnn", "lstm", "gru")
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCALING_RULES = ("none", "linear", "sqrt")
LR_SCHEDULES = ("constant", "cosine")
BUDGETS = ("epochs", "samples")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")   # engine.hardware.precision
RANK_BATCH_NORMS = ("per_rank", "sync")
ENSEMBLES = ("off", "auto")   # engine.execution.ensemble
STRATEGIES = ("grid", "random", "bayesian", "start-small")
SEARCHES = ("random", "bayesian")            # strategies that draw points from a sampler (engine.search)
RANGED = ("random", "bayesian", "start-small")   # strategies that search a batch-size range, not a list
OBJECTIVES = ("time_to_target", "samples_to_target", "best_val_accuracy", "final_val_loss")
TARGET_OBJECTIVES = ("time_to_target", "samples_to_target")
PRUNERS = ("none", "median", "hyperband")
# Seeds go to numpy's RandomState (MNIST-1D), which takes 0 .. 2**32 - 1, the narrowest of the seeders used.
SEED_MAX = 2**32 - 1
# The largest C int, so that a batch size fits every integer widget and tensor index; far beyond any memory.
BATCH_SIZE_MAX = 2**31 - 1
# A sweep is planned in full before it starts, and the app lists every trial; 10,000 is far beyond any grid
# worth running, and keeps those lists and the run file's index small.
MAX_TRIALS = 10_000


def _field(default: Any, help: str, *, label: str, choice_labels: dict[str, str] | None = None,
           applies: dict[str, tuple[str, ...]] | None = None, **constraints: Any) -> Any:
    """A dataclass field with what a person reads about it and what the validator checks.

    label: the field's name in a form. choice_labels: friendlier words for some of its choices (the value stored
    is always the choice itself). applies: when the field means anything, as {other key: the values it must
    have}, all of them true; for data.dataset the values are what `dataset_kind` says (a built-in name, a
    file's suffix, "folder"). constraints: choices, min, max, min_exclusive, max_exclusive, kind."""
    metadata = {"help": help, "label": label, "choice_labels": choice_labels or {}, "applies": applies or {},
                **constraints}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class DataConfig:
    dataset: str = _field("mnist1d", "A built-in dataset (mnist1d, synthetic, sequence) or the path to your own "
                          "data: a CSV, NPY or NPZ file, an HDF5 file, a folder of MNIST/Fashion-MNIST IDX files, "
                          "a folder of CIFAR-10 python batches, or an image folder with one sub-folder per class.",
                          kind="dataset", label="Dataset")
    val_fraction: float = _field(0.2, "Share of the examples held out to measure generalization, used when the "
                                 "dataset has no test split of its own (or use_test_split is false).",
                                 min_exclusive=0.0, max_exclusive=1.0, label="Validation share")
    use_test_split: bool = _field(True, "Validate on the dataset's own test split where it has one.",
                                  label="Use test split")
    label_column: str = _field("label", "CSV files: the name of the column that holds the class label.",
                               label="Label column", applies={"data.dataset": ("csv",)})
    labels: str = _field("", "NPY files: the path of a second .npy file that holds one integer label per example.",
                         label="Labels file", applies={"data.dataset": ("npy",)})
    x_key: str = _field("x", "NPZ and HDF5 files: the name of the inputs array (its test split is <x_key>_test).",
                        label="Inputs array", applies={"data.dataset": ("npz", "h5", "hdf5")})
    y_key: str = _field("y", "NPZ and HDF5 files: the name of the labels array (its test split is <y_key>_test).",
                        label="Labels array", applies={"data.dataset": ("npz", "h5", "hdf5")})
    num_samples: int = _field(4000, "Built-in datasets: how many examples to generate (train and validation).",
                              min=20, max=2_000_000, label="Examples", applies={"data.dataset": BUILTIN_DATASETS})
    num_features: int = _field(32, "synthetic: how many input dimensions each example has.", min=1, max=100_000,
                               label="Features", applies={"data.dataset": ("synthetic",)})
    num_classes: int = _field(4, "synthetic and sequence: how many classes to tell apart.", min=2, max=1000,
                              label="Classes", applies={"data.dataset": ("synthetic", "sequence")})
    label_noise: float = _field(0.0, "synthetic: share of training labels replaced by a random class, to study "
                                "memorization. Validation labels stay clean.", min=0.0, max=1.0,
                                label="Label noise", applies={"data.dataset": ("synthetic",)})
    sequence_length: int = _field(40, "sequence: how many time steps each example has.", min=4, max=10_000,
                                  label="Sequence length", applies={"data.dataset": ("sequence",)})
    image_size: int = _field(32, "Image folders: every image is resized to this many pixels square.",
                             min=4, max=1024, label="Image size", applies={"data.dataset": ("folder",)})
    grayscale: bool = _field(False, "Image folders: convert images to one grey channel.",
                             label="Greyscale", applies={"data.dataset": ("folder",)})
    data_seed: int = _field(0, "Seed of the built-in generators and of the validation split; fixed across trials "
                            "so that every batch size sees the same data.", min=0, max=SEED_MAX, label="Data seed")


@dataclass
class ModelConfig:
    kind: str = _field("mlp", "mlp: fully connected layers. cnn: convolutions (1-D for signals, 2-D for images). "
                       "lstm / gru: recurrent networks that read a sequence step by step.", choices=MODEL_KINDS,
                       label="Architecture",
                       choice_labels={"mlp": "MLP (fully connected)", "cnn": "CNN (convolutions)",
                                      "lstm": "LSTM (recurrent)", "gru": "GRU (recurrent)"})
    batch_norm: bool = _field(False, "Add batch normalization after each hidden layer (mlp and cnn). Its "
                              "statistics depend on the batch, so it interacts with batch size.",
                              label="Batch norm", applies={"model.kind": ("mlp", "cnn")})
    width: int = _field(128, "Units per hidden layer (mlp), channels of the first convolution (cnn) or hidden "
                        "state size (lstm, gru).", min=1, max=100_000, label="Width")
    depth: int = _field(2, "Number of hidden layers (mlp), convolution blocks (cnn) or stacked recurrent layers.",
                        min=1, max=64, label="Depth")


@dataclass
class TrainConfig:
    optimizer: str = _field("sgd", "sgd: stochastic gradient descent with momentum. adam / adamw: adaptive "
                            "optimizers (adamw decouples weight decay).", choices=OPTIMIZERS, label="Optimizer",
                            choice_labels={"sgd": "SGD with momentum", "adam": "Adam", "adamw": "AdamW"})
    lr: float = _field(0.05, "Learning rate at base_batch_size: how big each weight update is.",
                       min_exclusive=0.0, max=100.0, label="Learning rate")
    momentum: float = _field(0.9, "SGD only: how much of the previous update carries into the next.",
                             min=0.0, max_exclusive=1.0,
                             label="Momentum", applies={"train.optimizer": ("sgd",)})
    weight_decay: float = _field(0.0, "Pull weights towards zero by this factor each step (regularization).",
                                 min=0.0, max=1.0, label="Weight decay")
    lr_scaling: str = _field("linear", "How the learning rate changes with batch size, relative to "
                             "base_batch_size. none: the same lr for every batch size. linear: lr grows in "
                             "proportion to batch size. sqrt: lr grows with the square root of batch size.",
                             choices=LR_SCALING_RULES, label="LR rule",
                             choice_labels={"none": "none: same LR for all sizes",
                                            "linear": "linear: LR ∝ batch size", "sqrt": "sqrt: LR ∝ √batch size"})
    base_batch_size: int = _field(32, "The batch size at which the learning rate is exactly lr.",
                                  min=1, max=BATCH_SIZE_MAX, label="Base batch size",
                                  applies={"train.lr_scaling": ("linear", "sqrt")})
    warmup_epochs: float = _field(0.0, "Raise the learning rate linearly from zero over this many epochs.",
                                  min=0.0, max=100_000.0, label="Warm-up epochs")
    schedule: str = _field("constant", "After warm-up: keep the learning rate constant, or decay it along a "
                           "cosine to zero by the end of training.", choices=LR_SCHEDULES,
                           label="LR schedule", choice_labels={"cosine": "cosine decay to zero"})
    budget: str = _field("epochs", "How long each trial trains: a number of passes over the data (epochs), or "
                         "a number of examples seen (samples), the same for every batch size.", choices=BUDGETS,
                         label="Budget", choice_labels={"epochs": "epochs: passes over the data",
                                                        "samples": "samples: same examples for all"})
    epochs: int = _field(5, "Passes over the training data when budget is epochs.", min=1, max=100_000,
                         label="Epochs", applies={"train.budget": ("epochs",)})
    samples: int = _field(100_000, "Training examples to see when budget is samples.", min=1, max=10**12,
                          label="Samples", applies={"train.budget": ("samples",)})
    seeds: list[int] = _field([0], "Repeats: one trial per seed and batch size. Same seed, same numbers.",
                              kind="int_list", min=0, max=SEED_MAX, label="Repeats (seeds)")
    eval_batch_size: int = _field(1024, "Batch size used to evaluate, the same for every trial so that "
                                  "evaluation cost does not depend on the batch size under study.", min=1,
                                  max=BATCH_SIZE_MAX, label="Eval batch size")
    precision: str = _field("fp32", "Arithmetic of the forward pass. fp32: full precision. bf16: bfloat16 autocast "
                            "(CPU and CUDA). fp16: float16 autocast with a gradient scaler (CUDA only).",
                            choices=PRECISIONS, label="Precision")
    accumulation_steps: int = _field(1, "Split each batch into this many micro-batches and add up their gradients "
                                     "before each optimizer step: the batch size stays the sweep's, the memory is "
                                     "that of one micro-batch. Without batch norm it is the same training; with "
                                     "batch norm the statistics come from each micro-batch.", min=1, max=4096,
                                     label="Accumulation steps")


@dataclass
class SweepConfig:
    batch_sizes: list[int] = _field([16, 32, 64, 128], "Batch sizes to compare: how many examples the model "
                                    "sees before each weight update.", kind="int_list", min=1,
                                    max=BATCH_SIZE_MAX, label="Batch sizes", applies={"sweep.strategy": ("grid",)})
    learning_rates: list[float] = _field([], "Optional: base learning rates to cross with every batch size. "
                                         "Empty means train.lr only.", kind="float_list", min_exclusive=0.0, max=100.0,
                                         label="Base LRs to cross", applies={"sweep.strategy": ("grid",)})
    precisions: list[str] = _field([], "Optional: precisions to cross with every batch size (fp32, bf16, fp16), to "
                                   "compare their throughput, memory and accuracy. Empty means train.precision only.",
                                   kind="choice_list", choices=PRECISIONS, label="Precisions to cross",
                                   applies={"sweep.strategy": ("grid",)})
    device: str = _field("auto", "Where to train: auto picks the GPU when one is usable, else the CPU.",
                         choices=DEVICES, label="Device",
                         choice_labels={"auto": "auto: GPU if usable, else CPU", "cpu": "CPU", "cuda": "GPU (CUDA)"})
    strategy: str = _field("grid", "How trials are chosen. grid: every batch size (× learning rate) listed. "
                           "random: points drawn at random from the range. bayesian: each point chosen from what "
                           "the earlier ones scored (Optuna's TPE). start-small: the smallest batch size first, "
                           "doubled while the objective improves, then refined around the best.",
                           choices=STRATEGIES, label="Strategy",
                           choice_labels={"grid": "grid: every combination", "random": "random search",
                                          "bayesian": "Bayesian search (TPE)",
                                          "start-small": "start small and double"})
    trials: int = _field(16, "How many points (batch size, learning rate) the search tries; every point is "
                         "trained once per seed in train.seeds.", min=1, max=MAX_TRIALS, label="Points to try",
                         applies={"sweep.strategy": SEARCHES})
    batch_size_min: int = _field(8, "The smallest batch size the search may try.", min=1, max=BATCH_SIZE_MAX,
                                 label="Smallest batch size", applies={"sweep.strategy": RANGED})
    batch_size_max: int = _field(1024, "The largest batch size the search may try.", min=1, max=BATCH_SIZE_MAX,
                                 label="Largest batch size", applies={"sweep.strategy": RANGED})
    powers_of_two: bool = _field(True, "Try only powers of two inside the batch-size range.",
                                 label="Powers of two only", applies={"sweep.strategy": RANGED})
    lr_min: float = _field(0.0, "With lr_max: search the learning rate too, on a log scale, jointly with the batch "
                           "size; a searched learning rate is used as is (train.lr_scaling does not apply). 0: not "
                           "searched, train.lr with the LR rule.", min=0.0, max=100.0, label="Smallest LR",
                           applies={"sweep.strategy": SEARCHES})
    lr_max: float = _field(0.0, "With lr_min: the largest learning rate the search may try. 0: not searched.",
                           min=0.0, max=100.0, label="Largest LR", applies={"sweep.strategy": SEARCHES})
    objective: str = _field("best_val_accuracy", "What the search optimizes, as the mean over seeds. "
                            "time_to_target / samples_to_target: training time / examples until the validation "
                            "accuracy first reaches target_accuracy (lower is better; a point that never reaches "
                            "it scores worst). best_val_accuracy: higher is better. final_val_loss: lower is "
                            "better.", choices=OBJECTIVES, label="Objective",
                            choice_labels={"time_to_target": "time to target", "samples_to_target":
                                           "samples to target", "best_val_accuracy": "best val accuracy",
                                           "final_val_loss": "final val loss"},
                            applies={"sweep.strategy": RANGED})
    target_accuracy: float = _field(0.0, "The validation accuracy (a fraction) that time_to_target and "
                                    "samples_to_target count to, and the report's and the app's target. 0: not "
                                    "set (they take 90% of the best trial's).", min=0.0, max=1.0,
                                    label="Target accuracy", applies={"sweep.strategy": RANGED,
                                                                      "sweep.objective": TARGET_OBJECTIVES})
    pruner: str = _field("none", "Stop hopeless points early. median: stop a point whose validation result after "
                         "an epoch is worse than the median of earlier points at that epoch. hyperband: "
                         "Optuna's Hyperband, which gives more epochs only to the better points.",
                         choices=PRUNERS, label="Pruning", applies={"sweep.strategy": SEARCHES},
                         choice_labels={"none": "none: train every point fully", "median": "median rule",
                                        "hyperband": "Hyperband"})
    search_seed: int = _field(0, "The search's own seed: the same config proposes the same points.", min=0,
                              max=SEED_MAX, label="Search seed", applies={"sweep.strategy": RANGED})
    parallel: int | str = _field(1, "How many trials train at the same time, each in its own worker process. "
                                 "auto: one per GPU on a machine with several, and on the CPU as many as there are "
                                 "cores when a short measurement shows that splitting the cores among trials "
                                 "finishes sooner than giving them all to one (small models gain most). The same "
                                 "config and seeds give the same numbers either way.", kind="count_or_auto",
                                 min=1, max=256, label="Trials at once")
    data_parallel: int = _field(1, "Train each trial on this many processes at once (data parallelism with "
                                "torch.distributed): each takes batch size / ranks examples of every step, so the "
                                "batch size is what sweep.batch_sizes says. Every batch size must divide by it.",
                                min=1, max=64, label="Ranks per trial")
    ensemble: str = _field("off", "Train the trials of one batch size that differ only by seed or learning rate "
                           "together, up to 8 at a time, as one vectorized model (batched products, vmap for a "
                           "CNN); each stays a trial of its own in the run file. auto: wherever the model allows it "
                           "(MLP or CNN without batch norm, fp32, whole batches, no noise scale, a grid, trials in "
                           "this process) and its first step matches training alone; otherwise one at a time, with "
                           "the reason recorded. Not bit for bit: the same training to float32 rounding (sums in "
                           "another order). off: one at a time, bit for bit as before.", choices=ENSEMBLES,
                           label="Ensembles",
                           choice_labels={"off": "off: one trial at a time", "auto": "auto: seeds and LRs together"},
                           applies={"sweep.strategy": ("grid",)})
    rank_batch_norm: str = _field("per_rank", "With batch norm and several ranks: per_rank normalizes each rank's "
                                  "share of the batch on its own (a smaller 'ghost' batch); sync uses the whole "
                                  "batch's statistics (SyncBatchNorm), as one process would.",
                                  choices=RANK_BATCH_NORMS, label="Batch norm across ranks",
                                  choice_labels={"per_rank": "per rank (ghost batches)",
                                                 "sync": "synchronized (whole batch)"},
                                  applies={"model.batch_norm": (True,)})


EVAL_SCHEDULES = ("log", "every", "epoch")


@dataclass
class ScienceConfig:
    eval_schedule: str = _field("log", "When validation is measured, in examples seen and the same for every batch "
                                "size, so that steps and examples to a target are known as finely at batch 4 as at "
                                "2048. log: eval_per_decade times per tenfold of examples. every: every eval_every "
                                "examples. epoch: at the end of each epoch only.", choices=EVAL_SCHEDULES,
                                label="Evaluate", choice_labels={"log": "log-spaced in examples",
                                                                 "every": "every N examples",
                                                                 "epoch": "each epoch only"})
    eval_per_decade: int = _field(4, "log schedule: evaluations per tenfold of examples seen, from 100 examples on.",
                                  min=1, max=100, label="Evaluations per decade",
                                  applies={"science.eval_schedule": ("log",)})
    eval_every: int = _field(10_000, "every schedule: examples seen between two evaluations.", min=1, max=10**12,
                             label="Evaluate every (examples)", applies={"science.eval_schedule": ("every",)})
    noise_scale: bool = _field(False, "Measure the gradient noise scale B_simple while training (McCandlish et al. "
                               "2018): every noise_every steps the batch is split into micro-batches at the same "
                               "weights. It predicts the critical batch size. Not for batch-norm models.",
                               label="Measure noise scale")
    noise_every: int = _field(100, "Steps between two noise scale measurements. A measured step costs up to "
                                   "noise_microbatches ordinary ones, so every 100 steps training is 1-3% slower.",
                              min=1, max=10**9,
                              label="Noise every (steps)", applies={"science.noise_scale": (True,)})
    noise_microbatches: int = _field(4, "Micro-batches each measurement splits the batch into (at least 2; batch "
                                     "sizes smaller than this are not measured).", min=2, max=1024,
                                     label="Micro-batches", applies={"science.noise_scale": (True,)})


@dataclass
class ExperimentConfig:
    name: str = _field("experiment", "A short name for the experiment; it starts the run file's name.",
                       label="Name")
    description: str = _field("", "Free text stored in the run file.", label="Description")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    science: ScienceConfig = field(default_factory=ScienceConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "sweep": SweepConfig,
                           "science": ScienceConfig}


def field_help(key: str) -> str:
    """The help text of a dotted key such as 'train.lr', for tooltips and the README."""
    return field_info(key)["help"]


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


# A config is a page of text; reading more than this is never needed, and a file that large is not a config.
MAX_CONFIG_BYTES = 1 << 20
# Built-in datasets are generated in memory: examples × features (synthetic, float32 with float64 intermediates)
# or examples × time steps × 4 (sequence) floats. This caps either below about 1 GiB, far more than these
# teaching datasets need and still safe on a laptop.
MAX_GENERATED_SIZE = 2**26
# The widest layer a model may have: model.width's own bound, which a cnn's doubling must not get round.
MAX_CHANNELS = 100_000
# A learning rate below this, once scaled to a batch size, cannot move float32 weights of ordinary size (their
# spacing near 1 is 1.2e-7): such a trial would train nothing while looking like a result.
MIN_LR = 1e-12
# The one text field that may span lines; every other text is a name, a key or a path.
MULTILINE_TEXT = {"description"}
# Unicode categories that are never part of a name: control characters (C0, DEL, C1), line and paragraph
# separators, and lone surrogates (which cannot even be written to a file).
_FORBIDDEN_CATEGORIES = {"Cc", "Zl", "Zp", "Cs"}


def _shown(value: Any, limit: int = 160) -> str:
    """A value as a problem message quotes it: one line, short (a long one keeps its start and its end, where
    a path has its file name), and never an error of its own (repr of an integer over 4300 digits raises
    ValueError, of a list nested 1000 deep RecursionError)."""
    try:
        text = repr(value)
    except ValueError:
        return "<a number of more than 4300 digits>"
    except RecursionError:
        return "<a list nested too deeply to show>"
    if _is_int(value) and len(text) > 40:
        return f"<a {len(text.lstrip('-'))}-digit number>"
    return text if len(text) <= limit else f"{text[:limit // 2 - 2]}...{text[-(limit // 2 - 1):]}"


def _text_problem(key: str, value: str) -> str | None:
    """Why a text value cannot be used, or None: characters that split a printed line or a file name, or that
    cannot be stored as UTF-8."""
    allowed = "\n\t\r" if key in MULTILINE_TEXT else ""
    for position, char in enumerate(value):
        if char not in allowed and unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            return (f"{key} = {_shown(value)}: must not contain control characters (U+{ord(char):04X} at "
                    f"position {position + 1})")
    return None


def _check_bounds(key: str, value: float, meta: dict, problems: list[str]) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{key} = {_shown(value)}: must be a finite number")
        return False
    for bound, test, words in (("min", lambda v, b: v >= b, "at least"),
                               ("max", lambda v, b: v <= b, "at most"),
                               ("min_exclusive", lambda v, b: v > b, "greater than"),
                               ("max_exclusive", lambda v, b: v < b, "less than")):
        if bound in meta and not test(value, meta[bound]):
            problems.append(f"{key} = {_shown(value)}: must be {words} {meta[bound]}")
            return False
    return True


def _coerce(key: str, value: Any, f: dataclasses.Field, problems: list[str]) -> Any:
    """Type- and range-check one value; returns it (ints widened to float where a float is wanted) or None."""
    meta = f.metadata
    kind = meta.get("kind")
    if kind in ("int_list", "float_list", "choice_list"):
        want_int = kind == "int_list"
        # An empty batch-size or seed list would mean no trials; an empty lr or precision list means "use train.*".
        if not isinstance(value, list) or (want_int and not value):
            wanted = {"int_list": "a non-empty list of whole numbers", "float_list": "a list of numbers",
                      "choice_list": f"a list of some of {', '.join(meta.get('choices', ()))}"}[kind]
            problems.append(f"{key} = {_shown(value)}: must be {wanted}")
            return None
        items, bad_items = [], 0
        for item in value:          # name every bad item (up to a few), not only the first
            if bad_items == MAX_BAD_ITEMS:
                problems.append(f"{key}: more items may be wrong; fix these {MAX_BAD_ITEMS} first")
                break
            if kind == "choice_list":
                if item in meta["choices"]:
                    items.append(item)
                else:
                    problems.append(f"{key} contains {_shown(item)}: must be one of {', '.join(meta['choices'])}"
                                    f"{_did_you_mean(item, meta['choices'])}")
                    bad_items += 1
                continue
            ok_type = _is_int(item) if want_int else _is_number(item)
            if not ok_type:
                problems.append(f"{key} contains {_shown(item)}: must be a {'whole ' if want_int else ''}number")
                bad_items += 1
            elif not _check_bounds(key, item, meta, problems):
                bad_items += 1
            else:
                items.append(item if want_int else float(item))
        if bad_items:
            return None
        if len(set(items)) != len(items):
            problems.append(f"{key} = {_shown(value)}: contains a value twice")
            return None
        return items
    if kind == "count_or_auto":
        # The app's text field gives the number as text; a config file writes it as a number. Only ASCII digits
        # ("²" is a digit to str.isdigit, not to int), and few: a longer number is out of bounds anyway.
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value) < 12:
            value = int(value.strip())
        if value == "auto":
            return value
        if not _is_int(value):
            problems.append(f"{key} = {_shown(value)}: must be a whole number or \"auto\"")
            return None
        return value if _check_bounds(key, value, meta, problems) else None
    if f.type in ("int", int):
        if not _is_int(value):
            problems.append(f"{key} = {_shown(value)}: must be a whole number")
            return None
        return value if _check_bounds(key, value, meta, problems) else None
    if f.type in ("float", float):
        if not _is_number(value):
            problems.append(f"{key} = {_shown(value)}: must be a number")
            return None
        return float(value) if _check_bounds(key, value, meta, problems) else None
    if f.type in ("bool", bool):
        if not isinstance(value, bool):
            problems.append(f"{key} = {_shown(value)}: must be true or false")
            return None
        return value
    if not isinstance(value, str):
        problems.append(f"{key} = {_shown(value)}: must be text")
        return None
    if "choices" in meta and value not in meta["choices"]:
        problems.append(f"{key} = {_shown(value)}: must be one of {', '.join(meta['choices'])}"
                        f"{_did_you_mean(value, meta['choices'])}")
        return None
    problem = _text_problem(key, value)
    if problem:
        problems.append(problem)
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
            shown = key if isinstance(key, str) and key.isprintable() else _shown(key)
            problems.append(f"{prefix}{shown}: unknown key in {where} (known: {', '.join(fields)})")
            continue
        f = fields[key]
        if key in SECTIONS and not prefix:
            values[key] = _build(SECTIONS[key], value, f"{key}.", problems)
            continue
        found: list[str] = []
        coerced = _coerce(prefix + key, value, f, found)
        problems += [Problem(prefix + key, problem) for problem in found]
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


def scaled_lr(train: TrainConfig, base_lr: float, batch_size: int) -> float:
    """The learning rate for batch_size under the scaling rule, relative to base_batch_size."""
    power = {"none": 0.0, "linear": 1.0, "sqrt": 0.5}[train.lr_scaling]
    return base_lr * (batch_size / train.base_batch_size) ** power


def _check_relations(config: ExperimentConfig, base_dir: Path | None, problems: list[str]) -> None:
    """Checks that involve more than one key, or the file system."""
    if not config.name.strip():
        problems.append(Problem("name", "name = '': must not be empty"))
    elif any(c in config.name for c in '/\\:*?"<>|'):
        problems.append(Problem("name", f"name = {_shown(config.name)}: must not contain any of "
                                "/ \\ : * ? \" < > |"))
    dataset = config.data.dataset
    if dataset not in BUILTIN_DATASETS:
        if not dataset.strip():
            problems.append(Problem("data.dataset", "data.dataset = '': give a built-in name "
                                    f"({', '.join(BUILTIN_DATASETS)}) or the path to a file or folder"))
        else:
            path = _existing_path("data.dataset", dataset, base_dir, problems, "no such file or folder, and not a "
                                  f"built-in dataset ({', '.join(BUILTIN_DATASETS)})"
                                  f"{_did_you_mean(dataset, BUILTIN_DATASETS)}")
            if path is not None:
                config.data.dataset = str(path)
                if path.suffix.lower() == ".npy" and not config.data.labels:
                    problems.append(Problem("data.labels", "data.labels = '': an .npy dataset needs the path of an "
                                            ".npy file of labels"))
    if config.data.labels:
        labels = _existing_path("data.labels", config.data.labels, base_dir, problems, "no such file")
        if labels is not None:
            config.data.labels = str(labels)
    model = config.model
    if model.batch_norm and not applies("model.batch_norm", dataclasses.asdict(config)):
        kinds = " or ".join(field_info("model.batch_norm")["applies"]["model.kind"])
        problems.append(Problem("model.batch_norm", "model.batch_norm = true: batch normalization does not apply "
                                f"to {model.kind} models (use {kinds}, or set it to false)"))
    elif model.batch_norm and (ones := [key for key, size in _batch_sizes(config) if size == 1]):
        problems.append(Problem(ones[0], f"{_naming(ones[0], 1)}: batch normalization (model.batch_norm = true) "
                                "needs at least 2 examples in a batch to normalize them"))
    steps = config.train.accumulation_steps
    smallest = steps * (2 if model.batch_norm else 1)
    if steps > 1 and (small := [(key, size) for key, size in _batch_sizes(config) if size < smallest]):
        key, size = small[0]
        each = "two examples (batch norm)" if model.batch_norm else "one example"
        problems.append(Problem("train.accumulation_steps", f"train.accumulation_steps = {steps}: "
                                f"batch size {size} ({key}) cannot be split into {steps} micro-batches of at least {each}"))
    # sweep.precisions replaces train.precision where it is given, so fp16 is judged in the list that trains.
    precision_key, fp16 = (("sweep.precisions", "fp16" in config.sweep.precisions) if config.sweep.precisions
                           else ("train.precision", config.train.precision == "fp16"))
    fp16_named = f"{precision_key} {'= ' if precision_key == 'train.precision' else 'contains '}'fp16'"
    if fp16 and config.sweep.device == "cpu":
        problems.append(Problem(precision_key, f"{fp16_named}: float16 training needs a CUDA GPU and "
                                "sweep.device = 'cpu'; use bf16 or fp32"))
    elif fp16 and config.science.noise_scale:
        # A measured step takes its gradients unscaled, in float32; fp16's gradient scaler would then divide them
        # by its scale and step with the wrong gradient.
        problems.append(Problem("science.noise_scale", "science.noise_scale = true: the noise scale is not measured "
                                f"with {fp16_named}; use bf16 or fp32, or turn it off"))
    if config.sweep.precisions and config.sweep.strategy != "grid":
        problems.append(Problem("sweep.precisions", f"sweep.precisions = {_shown(config.sweep.precisions)}: crossing "
                                f"precisions applies to the grid strategy, not to {config.sweep.strategy}; leave it "
                                "empty and set train.precision"))
    last_channels = model.width * 2 ** (model.depth - 1)
    if model.kind == "cnn" and last_channels > MAX_CHANNELS:
        problems.append(Problem("model.depth", f"model.depth = {model.depth}: a cnn doubles its channels in every "
                                f"block, so with model.width = {model.width} the last block would have "
                                f"{last_channels:,} channels, more than {MAX_CHANNELS:,}"))
    if config.data.dataset in BUILTIN_DATASETS:
        limit = config.data.num_samples
        for key, batch_size in _batch_sizes(config):
            if batch_size > limit:
                problems.append(Problem(key, f"{_naming(key, batch_size)}: larger than the dataset "
                                        f"(data.num_samples = {limit}); every trial needs at least one full batch"))
    data = config.data
    generated = {"synthetic": ("data.num_features", data.num_features),
                 "sequence": ("data.sequence_length", data.sequence_length)}.get(data.dataset)
    if generated is not None:
        key, per_example = generated
        size = data.num_samples * per_example
        if size > MAX_GENERATED_SIZE:
            problems.append(Problem("data.num_samples", f"data.num_samples = {data.num_samples} with {key} = "
                                    f"{per_example}: their product {size:,} is over {MAX_GENERATED_SIZE:,} (about "
                                    "1 GiB to generate); use fewer of either"))
    _check_search(config, problems)
    lr_key = "sweep.learning_rates" if config.sweep.learning_rates else "train.lr"
    for base_lr in config.sweep.learning_rates or [config.train.lr]:
        batch_size = min((size for _, size in _batch_sizes(config)),
                         key=lambda size: scaled_lr(config.train, base_lr, size))
        lr = scaled_lr(config.train, base_lr, batch_size)
        if lr < MIN_LR:
            problems.append(Problem(lr_key, f"{lr_key} = {_shown(base_lr)}: scaled for batch size {batch_size} "
                                    f"(lr_scaling = {config.train.lr_scaling}, base_batch_size = "
                                    f"{config.train.base_batch_size}) it becomes {lr:.3g}, below {MIN_LR:g}, too small "
                                    "to change the weights"))
    trials = (len(config.sweep.batch_sizes) * len(config.train.seeds)
              * max(1, len(config.sweep.learning_rates)) * max(1, len(config.sweep.precisions)))
    if config.sweep.strategy == "grid" and trials > MAX_TRIALS:
        problems.append(Problem("sweep.batch_sizes", "sweep.batch_sizes × train.seeds × sweep.learning_rates "
                                "× sweep.precisions make "
                                f"{trials:,} trials: at most {MAX_TRIALS:,} in one sweep"))
    ranks = config.sweep.data_parallel
    if ranks > 1:
        uneven = [size for size in config.sweep.batch_sizes if size % ranks]
        if uneven:
            problems.append(Problem("sweep.data_parallel", f"sweep.data_parallel = {ranks}: batch size {uneven[0]} "
                                    f"does not divide into {ranks} equal shares (use a batch size that is a multiple "
                                    f"of {ranks}, or another number of ranks)"))
        if config.sweep.parallel != 1:
            problems.append(Problem("sweep.parallel", f"sweep.parallel = {_shown(config.sweep.parallel)} with "
                                    f"sweep.data_parallel = {ranks}: trials run either several at once or each on "
                                    "several ranks, not both; set one of them to 1"))


def _batch_sizes(config: ExperimentConfig) -> list[tuple[str, int]]:
    """The batch sizes that limits are checked on, each with the key that sets it: a grid's list, or a search
    range's two ends."""
    sweep = config.sweep
    if sweep.strategy == "grid":
        return [("sweep.batch_sizes", size) for size in sweep.batch_sizes]
    return [("sweep.batch_size_min", sweep.batch_size_min), ("sweep.batch_size_max", sweep.batch_size_max)]


def _naming(key: str, batch_size: int) -> str:
    """How a problem with one batch size starts: a list contains it, a range's end is it."""
    return f"{key} contains {batch_size}" if key == "sweep.batch_sizes" else f"{key} = {batch_size}"


def _check_search(config: ExperimentConfig, problems: list[str]) -> None:
    """The [sweep] keys of a search: a range that holds a batch size, both ends of a learning-rate range, a
    target for the *_to_target objectives, pruning only where a sampler can use it."""
    sweep = config.sweep
    if sweep.strategy == "grid":
        if sweep.pruner != "none":
            problems.append(Problem("sweep.pruner", f"sweep.pruner = {sweep.pruner!r}: pruning applies to the "
                                    f"{' and '.join(SEARCHES)} strategies, not to {sweep.strategy}; set it to 'none'"))
        return
    if sweep.parallel != 1:
        # A search chooses each point from the results before it (start-small waits for them; a sampler's open
        # point is told its seeds' results in turn): trials run one at a time, each may still use every core.
        problems.append(Problem("sweep.parallel", f"sweep.parallel = {_shown(sweep.parallel)}: a "
                                f"{sweep.strategy} search trains one trial at a time (each point is chosen from the "
                                "results before it); set it to 1, or share the search between processes with "
                                "run --storage"))
    if sweep.batch_size_min > sweep.batch_size_max:
        problems.append(Problem("sweep.batch_size_min", f"sweep.batch_size_min = {sweep.batch_size_min}: larger than "
                                f"sweep.batch_size_max = {sweep.batch_size_max}"))
    elif sweep.powers_of_two and not any(sweep.batch_size_min <= 2 ** k <= sweep.batch_size_max for k in range(32)):
        problems.append(Problem("sweep.powers_of_two", f"sweep.powers_of_two = true: no power of two lies between "
                                f"sweep.batch_size_min = {sweep.batch_size_min} and sweep.batch_size_max = "
                                f"{sweep.batch_size_max}, so the range is empty"))
    if sweep.strategy in SEARCHES:
        if (sweep.lr_min > 0) != (sweep.lr_max > 0):
            given, missing = ("sweep.lr_min", "sweep.lr_max") if sweep.lr_min > 0 else ("sweep.lr_max", "sweep.lr_min")
            problems.append(Problem(missing, f"{missing} is not set: searching the learning rate needs both "
                                    f"{given} and {missing} (or neither)"))
        elif sweep.lr_min > sweep.lr_max:
            problems.append(Problem("sweep.lr_min", f"sweep.lr_min = {sweep.lr_min:g}: larger than sweep.lr_max = "
                                    f"{sweep.lr_max:g}"))
        elif 0 < sweep.lr_min < MIN_LR:
            problems.append(Problem("sweep.lr_min", f"sweep.lr_min = {sweep.lr_min:g}: below {MIN_LR:g}, too small "
                                    "to change the weights"))
    elif sweep.pruner != "none":
        problems.append(Problem("sweep.pruner", f"sweep.pruner = {sweep.pruner!r}: pruning applies to the "
                                f"{' and '.join(SEARCHES)} strategies, not to {sweep.strategy}; set it to 'none'"))
    if sweep.objective in TARGET_OBJECTIVES and sweep.target_accuracy <= 0:
        problems.append(Problem("sweep.target_accuracy", f"sweep.target_accuracy is not set: the objective "
                                f"{sweep.objective} counts until the validation accuracy reaches it (give a "
                                "fraction such as 0.8)"))


def _existing_path(key: str, text: str, base_dir: Path | None, problems: list[str], missing: str) -> Path | None:
    """The resolved path that a config value names (relative to base_dir), or None with a problem naming the key.
    The file system's own refusals (a name too long, ~user with no such user) are problems too, not crashes."""
    try:
        path = Path(text).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if path.exists():
            return path.resolve()
        problems.append(Problem(key, f"{key} = {_shown(text)}: {missing}"))
    except (OSError, RuntimeError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        problems.append(Problem(key, f"{key} = {_shown(text)}: cannot be used as a path ({reason})"))
    return None


def check_batch_sizes(config: ExperimentConfig, train_size: int) -> None:
    """Once the training set is loaded: every batch size must fit in it at least once."""
    too_big = [(key, size) for key, size in _batch_sizes(config) if size > train_size]
    if too_big:
        raise ConfigError([Problem(key, f"{_naming(key, size)}: larger than the training set ({train_size} "
                                   f"examples of {config.data.dataset}); every trial needs at least one full batch")
                           for key, size in too_big])


def loads_config(text: str, base_dir: Path | None = None, source: str = "config") -> ExperimentConfig:
    """Parse TOML text into a validated config. Anything that is not a valid config raises ConfigError."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"{source}: not valid TOML ({error})"]) from None
    except RecursionError:
        raise ConfigError([f"{source}: not a config (arrays or tables nested too deeply)"]) from None
    except ValueError as error:
        # An integer over Python's 4300-digit conversion limit; no config value needs more than 20 digits.
        raise ConfigError([f"{source}: not a config (a number too long to read: {str(error).split(':')[0]})"]) \
            from None
    return parse_config(data, base_dir)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a TOML config file. Anything that is not a valid config raises ConfigError."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError([f"{path}: is a folder, not a config file"])
        if not stat.S_ISREG(mode):  # a FIFO or a device would block or never end
            raise ConfigError([f"{path}: not a regular file, so not a config file"])
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such config file"]) from None
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError([f"{path}: cannot be read ({reason})"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB, so not an experiment config"])
    try:
        text = raw.decode("utf-8-sig")   # Notepad starts UTF-8 files with a byte order mark
    except UnicodeDecodeError as error:
        raise ConfigError([f"{path}: not a text file (byte {error.start} is not UTF-8)"]) from None
    return loads_config(text, path.parent, source=str(path))


def validate(data: dict[str, Any], base_dir: Path | None = None) -> list[Problem]:
    """Every problem in a config table, each with the key it is about, for inline validation in the GUI; empty
    when valid."""
    try:
        parse_config(data, base_dir)
    except ConfigError as error:
        return error.problems
    return []


# ----- what a form needs to know about each field ------------------------------------------------------------

def _field_of(key: str) -> dataclasses.Field:
    section, _, name = key.rpartition(".")
    cls = SECTIONS[section] if section else ExperimentConfig
    return {f.name: f for f in dataclasses.fields(cls)}[name]


def field_info(key: str) -> Mapping[str, Any]:
    """Everything known about a dotted key such as 'train.lr': help, label, choice_labels, applies and its
    constraints (see `_field`)."""
    return _field_of(key).metadata


def dataset_kind(dataset: str, base_dir: Path | None = None) -> str:
    """What a data.dataset value names, in the words of the fields' `applies`: a built-in dataset's name,
    "folder", or else a file's suffix without its dot ("csv", "npz"; "" when it has none)."""
    if dataset in BUILTIN_DATASETS:
        return dataset
    path = Path(dataset).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        is_folder = bool(dataset.strip()) and path.is_dir()
    except (OSError, ValueError):   # a name too long for the file system, say: a file's suffix still tells
        is_folder = False
    return "folder" if is_folder else path.suffix.lower().lstrip(".")


def applies(key: str, table: Mapping[str, Any], base_dir: Path | None = None) -> bool:
    """Whether a field means anything given the rest of a config table, which may hold anything a user typed;
    a key the table leaves out counts as its default. Relative dataset paths are taken from base_dir."""
    for other, wanted in field_info(key)["applies"].items():
        section, _, name = other.rpartition(".")
        source = table.get(section, {}) if section else table
        f = _field_of(other)
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        value = source.get(name, default) if isinstance(source, Mapping) else default
        if other == "data.dataset":
            value = dataset_kind(str(value), base_dir)
        if value not in wanted:
            return False
    return True


def _did_you_mean(value: Any, choices: tuple[str, ...]) -> str:
    """'; did you mean 'mnist1d'?' when the value is close to one choice (case aside), else ''."""
    if not isinstance(value, str):
        return ""
    by_lower = {choice.lower(): choice for choice in choices}
    matches = difflib.get_close_matches(value.strip().lower(), list(by_lower), n=1)
    return f"; did you mean {by_lower[matches[0]]!r}?" if matches else ""


# A list's bad items are each named up to this many; a list of a million bad numbers would otherwise print them all.
MAX_BAD_ITEMS = 10
