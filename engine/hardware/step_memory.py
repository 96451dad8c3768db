"""How much memory one training step takes at a given batch size: the figure that belongs to a batch size,
whatever ran before it in the process.

On CUDA it is the allocator's peak (torch.cuda.max_memory_allocated after reset_peak_memory_stats) over the
measured step, which includes whatever else the process holds on the device (the dataset).

On the CPU the process's resident memory cannot be used: the allocator keeps freed pages, so it only grows from
trial to trial. Instead the step runs under a dispatch mode that sees every tensor each operation returns,
forward and backward, and keeps the largest total of tensor storages alive at once: parameters, gradients,
optimizer state, the batch, activations saved for backward and every temporary an operation returns. It leaves
out the dataset, the Python runtime and the allocator's own slack, and memory an operation uses only inside
itself. docs/memory.md compares this with the other measurements tried.

Each measurement builds its own model and optimizer, as a trial would, and runs a step before the measured one
so that the optimizer's state exists (Adam allocates it on the first step): the second step is the heaviest.
One evaluation pass at the config's evaluation batch size is measured too, since a batch size whose training
fits can still run out of memory when the trial evaluates.
"""
from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from engine.config import ExperimentConfig, scaled_lr
from engine.devices import is_out_of_memory
from engine.events import Event, TrialMemoryMeasured, TrialSpec
from engine.hardware.precision import StepPrecision
from engine.models import build_model

if TYPE_CHECKING:
    from engine.data import Dataset

CPU_METHOD = "tensor storages alive at once during one training step (dispatch mode), dataset excluded"
CUDA_METHOD = "CUDA allocator peak during one training step (max_memory_allocated), dataset included"


@dataclass(frozen=True)
class StepMemory:
    batch_size: int
    train_bytes: int       # the measured training step
    eval_bytes: int        # one evaluation batch, with the training state still held
    method: str

    @property
    def peak_bytes(self) -> int:
        return max(self.train_bytes, self.eval_bytes)


class _LiveStorages(TorchDispatchMode):
    """Tracks the storages of every tensor an operation allocates, with the ones it was seeded with, and keeps
    the largest total alive at once (plus `extra` bytes held throughout). An output that shares a storage with
    one of the operation's inputs (a view, an in-place update) allocated nothing: it is counted with that input
    if the input is counted (seeded or allocated here), and not at all if it is not (a batch that is a view of
    the shuffled dataset). Keyed by storage address; a freed storage's address may be reused by a new one (its
    weak reference has expired)."""

    def __init__(self, seeds: list[torch.Tensor], extra: int = 0):
        super().__init__()
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self._counted = 0     # the sizes in _live, some of which may have been freed since
        self._extra = extra
        for tensor in seeds:
            self._add(tensor.untyped_storage())
        self.peak = self._sweep()

    def _add(self, storage: torch.UntypedStorage) -> None:
        size = storage.nbytes()
        if size == 0:
            return
        key = storage.data_ptr()
        known = self._live.get(key)
        if known is None or known[0].expired():
            self._counted += size - (known[1] if known else 0)
            self._live[key] = (StorageWeakRef(storage), size)

    def _sweep(self) -> int:
        self._live = {key: entry for key, entry in self._live.items() if not entry[0].expired()}
        self._counted = sum(size for _, size in self._live.values())
        return self._counted + self._extra

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        inputs = {leaf.untyped_storage().data_ptr() for leaf in tree_leaves((args, kwargs))
                  if isinstance(leaf, torch.Tensor)}
        for leaf in tree_leaves(result):
            if isinstance(leaf, torch.Tensor):
                storage = leaf.untyped_storage()
                if storage.data_ptr() not in inputs:
                    self._add(storage)
        # What is counted can only overstate what is alive, so only a count above the peak needs the sweep.
        if self._counted + self._extra > self.peak:
            self.peak = max(self.peak, self._sweep())
        return result


def measure_step_memory(config: ExperimentConfig, dataset: "Dataset", batch_size: int,
                        device: torch.device) -> StepMemory:
    """The memory of one training step (and one evaluation batch) at batch_size on device. Raises the
    out-of-memory error of the device when it does not fit; everything it allocated is released either way."""
    try:
        return _measure(config, dataset, batch_size, device)
    except Exception as error:  # noqa: BLE001 — only running out of memory is handled here
        if not is_out_of_memory(error):
            raise
        # The error's traceback holds the failed step's frames and their tensors: keep only its message, so that
        # they are freed before the cache is emptied.
        failure = type(error)(str(error))
    finally:
        # Reference counting has freed the step's tensors by now; a collection also frees any caught in cycles,
        # but only on the main thread: in the app a search runs on a worker thread, and a collection there runs
        # the finalizers of the window's garbage Qt objects on the wrong thread (it deadlocked in a test).
        if threading.current_thread() is threading.main_thread():
            gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    raise failure


def _measure(config: ExperimentConfig, dataset: "Dataset", batch_size: int, device: torch.device) -> StepMemory:
    from engine.train import make_optimizer   # engine.train imports the trial code that will use this module

    torch.manual_seed(0)
    model = build_model(config.model, dataset.input_shape, dataset.kind, dataset.num_classes).to(device)
    optimizer = make_optimizer(config.train, model.parameters(), scaled_lr(config.train, config.train.lr, batch_size))
    parameters = [p for p in model.parameters() if p.requires_grad]
    inputs, targets = dataset.x_train[:batch_size], dataset.y_train[:batch_size]
    eval_rows = min(config.train.eval_batch_size, dataset.val_size)
    eval_inputs = dataset.x_val[:eval_rows]

    precision = StepPrecision(config.train.precision, config.train.accumulation_steps, device)

    def step() -> None:
        # As engine.train's step: gradients dropped, forward and backward (per micro-batch), the per-tensor
        # norms, update.
        for parameter in parameters:
            parameter.grad = None
        precision.forward_backward(model, inputs, targets)
        precision.unscale(optimizer)
        torch._foreach_norm([p.grad for p in parameters if p.grad is not None])
        precision.step(optimizer)

    def evaluate() -> None:
        model.eval()
        with torch.no_grad():
            model(eval_inputs)
        model.train()

    model.train()
    step()
    if device.type == "cuda":
        train_bytes = _cuda_peak(step, device)
        eval_bytes = _cuda_peak(evaluate, device)
        return StepMemory(batch_size, train_bytes, eval_bytes, CUDA_METHOD)
    # The seeds are handed over in a temporary list: a reference kept here would keep the gradients that the
    # step drops alive, and count them twice.
    batch_bytes = inputs.nbytes + targets.nbytes
    with _LiveStorages(_held(model, optimizer), batch_bytes) as tracker:
        step()
    train_bytes = tracker.peak
    with _LiveStorages(_held(model, optimizer), batch_bytes + eval_inputs.nbytes) as tracker:
        evaluate()
    return StepMemory(batch_size, train_bytes, tracker.peak, CPU_METHOD)


def _held(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The tensors a training step starts with, besides its batch: parameters and buffers, gradients, optimizer
    state."""
    return [*model.parameters(), *model.buffers(),
            *(p.grad for p in model.parameters() if p.grad is not None),
            *(value for state in optimizer.state.values() for value in state.values()
              if isinstance(value, torch.Tensor))]


def _cuda_peak(work, device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    work()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))


class StepMemoryMeter:
    """Measures one real step of a running trial, the second (the first creates the optimizer's state), and
    emits TrialMemoryMeasured: engine.train calls begin(step, inputs, targets) before the forward pass and end()
    after the optimizer's step; every other step costs a comparison. On the CPU the measured step runs under the
    dispatch mode and takes longer than the others (a one-time cost per trial; README, performance). On CUDA
    the allocator's peak is reset for the step, so the epoch's peak_memory_bytes covers the steps from there on.
    A step that raises leaves the mode entered: engine.train's run_trial calls close_open_meter()."""

    def __init__(self, trial: TrialSpec, device: torch.device, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, emit: Callable[[Event], None], total_steps: int):
        self.trial, self.device, self.model, self.optimizer, self.emit = trial, device, model, optimizer, emit
        self.measured_step = min(1, total_steps - 1)
        self._tracker: _LiveStorages | None = None
        self._cuda_open = False

    def begin(self, step: int, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if step != self.measured_step:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._cuda_open = True
            return
        # The batch is a view of the epoch's shuffled copy of the dataset: counted as the batch it is.
        self._tracker = _LiveStorages(_held(self.model, self.optimizer), inputs.nbytes + targets.nbytes)
        self._tracker.__enter__()
        _open.tracker = self._tracker

    def end(self) -> None:
        if self._cuda_open:
            self._cuda_open = False
            torch.cuda.synchronize(self.device)
            self.emit(TrialMemoryMeasured(self.trial, float(torch.cuda.max_memory_allocated(self.device)),
                                          CUDA_METHOD))
        elif self._tracker is not None:
            tracker, self._tracker = self._tracker, None
            close_open_meter()
            self.emit(TrialMemoryMeasured(self.trial, float(tracker.peak), CPU_METHOD))


_open = threading.local()


def close_open_meter() -> None:
    """Leave the dispatch mode of a measured step on this thread, if one is still entered."""
    tracker = getattr(_open, "tracker", None)
    if tracker is not None:
        _open.tracker = None
        tracker.__exit__(None, None, None)
