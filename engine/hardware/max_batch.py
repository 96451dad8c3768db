"""The largest batch size that fits: grow the batch by doubling until a step does not fit, then binary-search
between the last fit and the first failure.

Each try is a fresh model and optimizer running real training steps and one evaluation batch
(engine.hardware.step_memory), so a size found here does not run out of memory later in the optimizer's first
step or in evaluation, the two places where finders that try only a forward and backward pass are caught out.
The dataset's examples have one shape, so there is no longer sequence waiting later in the data either.

What "fits" means: on CUDA, the try ran without an out-of-memory error and its allocator peak is within the
limit (the device's free memory unless --memory-limit says less); on the CPU, where running out of memory means
swapping or being killed rather than an error, the measured peak is within the limit (the RAM available when
the search starts, unless --memory-limit says otherwise). The answer keeps a margin below the largest fit
(10% by default) for what the measurement does not see: fragmentation, other processes, the allocator's slack.
"""
from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import torch

from engine import schema
from engine.config import ExperimentConfig
from engine.devices import is_out_of_memory, resolve_device
from engine.errors import UserError
from engine.hardware.memory_model import MemoryModel, fit_memory_model, format_bytes
from engine.hardware.step_memory import StepMemory, measure_step_memory

DEFAULT_MARGIN = 0.1
# Binary search stops once the gap between the last fit and the first failure is within this share of the
# fit: the margin below it is ten times wider, and each try costs a model build and a few steps.
RESOLUTION = 1 / 32

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
            "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_memory_size(text: str) -> int:
    """'2GiB', '512 MiB', '1.5G', '800000000' → bytes. Raises UserError naming the text."""
    match = _SIZE.match(text)
    if match:
        unit = (match.group(2) or "").lower().removesuffix("b")
        count = float(match.group(1)) * _FACTORS[unit]
        if count >= 1 and math.isfinite(count):
            return int(count)
    raise UserError(f"--memory-limit {text!r}: give a memory size such as 2GiB, 512MiB or 1.5GB (at least 1 byte)")


@dataclass(frozen=True)
class MemoryLimit:
    bytes: int
    source: str          # in words: where the figure comes from


def default_limit(device: torch.device) -> MemoryLimit:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return MemoryLimit(int(free), "the GPU's free memory when the search started")
    return MemoryLimit(int(psutil.virtual_memory().available), "the RAM available when the search started")


@dataclass(frozen=True)
class MaxBatchProbed:
    """One try of find-max-batch: the batch size, whether it fits, and what it measured (None: it ran out of
    memory before a figure existed). The event its observers get, one per try."""
    batch_size: int
    fits: bool
    memory: StepMemory | None
    limit: MemoryLimit
    reason: str          # why it does not fit, in words ('' when it fits)

    def describe(self) -> str:
        if self.memory is None:
            return f"batch size {self.batch_size}: does not fit ({self.reason})"
        used = f"{format_bytes(self.memory.peak_bytes)} of {format_bytes(self.limit.bytes)}"
        return f"batch size {self.batch_size}: {'fits' if self.fits else 'does not fit'} ({used})"


@dataclass
class MaxBatchResult:
    device: str
    limit: MemoryLimit
    margin: float
    train_size: int
    probes: list[MaxBatchProbed] = field(default_factory=list)
    stopped: bool = False

    @property
    def largest_fit(self) -> int | None:
        fits = [p.batch_size for p in self.probes if p.fits]
        return max(fits) if fits else None

    @property
    def recommended(self) -> int | None:
        """The largest fit less the margin, at least 1."""
        largest = self.largest_fit
        return None if largest is None else max(1, math.floor(largest * (1 - self.margin)))

    @property
    def reached_train_size(self) -> bool:
        return self.largest_fit == self.train_size

    @property
    def model(self) -> MemoryModel | None:
        measured = [p for p in self.probes if p.memory is not None]
        return fit_memory_model([p.batch_size for p in measured], [p.memory.peak_bytes for p in measured])

    @property
    def outcome(self) -> str:
        """The answer in one paragraph for a person."""
        largest, recommended, model = self.largest_fit, self.recommended, self.model
        limit = f"{format_bytes(self.limit.bytes)} ({self.limit.source})"
        if largest is None:
            text = f"no batch size fits in {limit}"
            if self.probes:
                text += f": {self.probes[-1].describe()}"
            return text + (" (stopped)" if self.stopped else "")
        text = (f"largest batch size that fits in {limit}: {largest}; with the {self.margin:.0%} margin: "
                f"{recommended}")
        if self.reached_train_size:
            text += (f". That is the whole training set ({self.train_size} examples), the largest batch a sweep "
                     f"can use")
            if model is not None and (beyond := model.largest_batch_within(self.limit.bytes)):
                text += f"; the memory model puts the limit near {beyond}"
        if self.stopped:
            text += " (stopped before the search finished: the true largest may be higher)"
        if model is not None:
            text += f". Memory model: {model.describe()}"
        return text


def search_largest(try_batch: Callable[[int], MaxBatchProbed], start: int, cap: int,
                   stop: threading.Event) -> bool:
    """Doubling from start (halving first when start does not fit) up to cap, then binary search. Calls
    try_batch for each size tried; returns False when the stop flag ended it early."""
    low, high = None, None            # the largest size that fits so far, the smallest that does not
    size = max(1, min(start, cap))
    while True:
        if stop.is_set():
            return False
        if try_batch(size).fits:
            low = size
            if size >= cap or high is not None:
                break
            size = min(size * 2, cap)
        else:
            high = size
            if low is not None or size == 1:
                break
            size = max(1, size // 2)
    if low is None:
        return True
    while high is not None and high - low > max(1, math.floor(low * RESOLUTION)):
        if stop.is_set():
            return False
        middle = (low + high) // 2
        if try_batch(middle).fits:
            low = middle
        else:
            high = middle
    return True


Measure = Callable[[int], StepMemory]


def find_max_batch(config: ExperimentConfig, *, device: str | None = None, memory_limit: int | None = None,
                   margin: float = DEFAULT_MARGIN, on_probe: Callable[[MaxBatchProbed], None] | None = None,
                   stop: threading.Event | None = None, measure: Measure | None = None,
                   dataset=None) -> MaxBatchResult:
    """Search the largest batch size of config's model and data that fits. `measure` (batch size → StepMemory,
    raising the device's out-of-memory error) defaults to a real measurement; tests inject their own."""
    from engine.sweep import load_sweep_data

    if not 0 <= margin < 1:
        raise UserError(f"--margin {margin:g}: give the share to keep free as a fraction from 0 to below 1, e.g. 0.1")
    stop = stop or threading.Event()
    on_probe = on_probe or (lambda probe: None)
    torch_device = resolve_device(device or config.sweep.device)
    dataset = dataset if dataset is not None else load_sweep_data(config, torch_device)
    if measure is None:
        def measure(batch_size: int) -> StepMemory:
            return measure_step_memory(config, dataset, batch_size, torch_device)
    limit = MemoryLimit(memory_limit, "--memory-limit") if memory_limit else default_limit(torch_device)
    result = MaxBatchResult(device=str(torch_device), limit=limit, margin=margin, train_size=dataset.train_size)

    def try_batch(batch_size: int) -> MaxBatchProbed:
        try:
            memory = measure(batch_size)
        except Exception as error:  # noqa: BLE001 — only running out of memory is an answer; the rest is re-raised
            if not is_out_of_memory(error):
                raise UserError(f"batch size {batch_size}: training failed before memory could be measured "
                                f"({type(error).__name__}: {error})") from error
            probe = MaxBatchProbed(batch_size, False, None, limit, "out of memory")
        else:
            fits = memory.peak_bytes <= limit.bytes
            probe = MaxBatchProbed(batch_size, fits, memory, limit, "" if fits else "over the limit")
        result.probes.append(probe)
        on_probe(probe)
        return probe

    # Batch norm cannot train on one example: start at two at least.
    smallest = 2 if config.model.batch_norm else 1
    start = max(smallest, min(config.sweep.batch_sizes))
    result.stopped = not search_largest(try_batch, start, dataset.train_size, stop)
    return result


def write_max_batch_file(result: MaxBatchResult, config: ExperimentConfig, out_dir: str | Path,
                         environment: dict[str, object]) -> Path:
    """The probes and the answer as a run file of kind find-max-batch (no trials) in out_dir; returns its path."""
    from engine.runfile import RunWriter

    writer = RunWriter.create(Path(out_dir), f"{config.name}-max-batch", config.to_toml(),
                              {**environment, schema.RUN_KIND_ATTR: schema.MAX_BATCH_KIND})
    unmeasured = float("nan")
    columns = {
        "batch_size": np.asarray([p.batch_size for p in result.probes], dtype=np.int64),
        "fits": np.asarray([p.fits for p in result.probes], dtype=np.int8),
        "train_bytes": np.asarray([p.memory.train_bytes if p.memory else unmeasured for p in result.probes]),
        "eval_bytes": np.asarray([p.memory.eval_bytes if p.memory else unmeasured for p in result.probes])}
    model = result.model
    methods = {p.memory.method for p in result.probes if p.memory}
    attrs = {"memory_limit_bytes": result.limit.bytes, "memory_limit_source": result.limit.source,
             "margin": result.margin, "largest_fit": result.largest_fit or 0,
             "recommended_batch_size": result.recommended or 0,
             "fixed_bytes": model.fixed_bytes if model else unmeasured,
             "per_example_bytes": model.per_example_bytes if model else unmeasured,
             "memory_method": "; ".join(sorted(methods)), "outcome": result.outcome}
    try:
        writer.add_table(schema.MAX_BATCH_GROUP, schema.MAX_BATCH_PROBE_METRICS, columns, attrs)
    except BaseException:
        writer.close(schema.FAILED)
        raise
    writer.close(schema.CANCELLED if result.stopped else schema.COMPLETED)
    return writer.path


@dataclass(frozen=True)
class SavedSearch:
    """A find-max-batch run file read back: one row per try, and the answer in words."""
    batch_sizes: list[int]
    fits: list[bool]
    peak_bytes: list[float]      # NaN where the try ran out of memory before a figure existed
    outcome: str


def read_saved_search(path: str | Path) -> SavedSearch | None:
    """The tries of a find-max-batch run file, None for any other run file. Read in the reader process, as
    every run file is; raises RunFileError for a damaged one."""
    from engine import reader_process
    return reader_process.call(read_saved_search_here, Path(path))


def read_saved_search_here(path: Path) -> SavedSearch | None:
    import h5py

    from engine.errors import RunFileError
    try:
        handle = h5py.File(path, "r")
    except OSError:
        return None     # read_run says what is wrong with it
    with handle:
        try:
            if handle.attrs.get(schema.RUN_KIND_ATTR) != schema.MAX_BATCH_KIND:
                return None
        except (OSError, KeyError, ValueError, TypeError):
            return None
        try:
            group = handle[schema.MAX_BATCH_GROUP]
            columns = {m.name: np.asarray(group[m.name][()], dtype=np.float64).ravel()
                       for m in schema.MAX_BATCH_PROBE_METRICS}
            outcome = group.attrs["outcome"]
        except (OSError, KeyError, ValueError, TypeError) as error:
            raise RunFileError(f"{path}: a damaged find-max-batch run file ({error})") from None
    if (len({len(values) for values in columns.values()}) != 1 or not isinstance(outcome, (str, bytes))
            or not np.isfinite(columns["batch_size"]).all()):
        raise RunFileError(f"{path}: a find-max-batch run file with damaged tries")
    return SavedSearch([int(b) for b in columns["batch_size"]], [bool(f) for f in columns["fits"]],
                       [max(t, e) for t, e in zip(columns["train_bytes"], columns["eval_bytes"])],
                       outcome.decode() if isinstance(outcome, bytes) else outcome)


def saved_search_lines(search: SavedSearch) -> list[str]:
    """What `report` prints for a find-max-batch run file."""
    lines = ["find-max-batch: one row per try, in the order tried", f"{'batch size':>10}  {'fits':>4}  memory"]
    for size, fits, peak in zip(search.batch_sizes, search.fits, search.peak_bytes):
        memory = format_bytes(peak) if math.isfinite(peak) else "out of memory"
        lines.append(f"{size:>10}  {'yes' if fits else 'no':>4}  {memory}")
    return [*lines, "", search.outcome]
