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
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from engine.config import ExperimentConfig, scaled_lr
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
    """Tracks the storages of every tensor an operation returns, with the ones it was seeded with, and keeps
    the largest total alive at once. Keyed by storage address: an in-place operation returns a storage that is
    already counted, and a freed storage's address may be reused by a new one (its weak reference has expired)."""

    def __init__(self, seeds: list[torch.Tensor]):
        super().__init__()
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self._counted = 0     # the sizes in _live, some of which may have been freed since
        for tensor in seeds:
            self._add(tensor)
        self.peak = self._sweep()

    def _add(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
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
        return self._counted

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(result):
            if isinstance(leaf, torch.Tensor):
                self._add(leaf)
        # What is counted can only overstate what is alive, so only a count above the peak needs the sweep.
        if self._counted > self.peak:
            self.peak = max(self.peak, self._sweep())
        return result


def measure_step_memory(config: ExperimentConfig, dataset: "Dataset", batch_size: int,
                        device: torch.device) -> StepMemory:
    """The memory of one training step (and one evaluation batch) at batch_size on device. Raises the
    out-of-memory error of the device when it does not fit; everything it allocated is released either way."""
    try:
        return _measure(config, dataset, batch_size, device)
    finally:
        # After an out-of-memory error the frames of the failed step still hold its tensors until collected.
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _measure(config: ExperimentConfig, dataset: "Dataset", batch_size: int, device: torch.device) -> StepMemory:
    from engine.train import make_optimizer   # engine.train imports the trial code that will use this module

    torch.manual_seed(0)
    model = build_model(config.model, dataset.input_shape, dataset.kind, dataset.num_classes).to(device)
    optimizer = make_optimizer(config.train, model.parameters(), scaled_lr(config.train, config.train.lr, batch_size))
    parameters = [p for p in model.parameters() if p.requires_grad]
    # A batch of its own, as training's per-epoch shuffle gives: a view of the dataset would count all of it.
    inputs, targets = dataset.x_train[:batch_size].clone(), dataset.y_train[:batch_size].clone()
    eval_rows = min(config.train.eval_batch_size, dataset.val_size)
    eval_inputs = dataset.x_val[:eval_rows]

    def step() -> None:
        # As engine.train's step: forward, gradients dropped, backward, the per-tensor norms, update.
        loss = F.cross_entropy(model(inputs), targets)
        for parameter in parameters:
            parameter.grad = None
        loss.backward()
        torch._foreach_norm([p.grad for p in parameters if p.grad is not None])
        optimizer.step()

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
    with _LiveStorages(_held(model, optimizer, inputs, targets)) as tracker:
        step()
    train_bytes = tracker.peak
    with _LiveStorages([*_held(model, optimizer, inputs, targets), eval_inputs]) as tracker:
        evaluate()
    return StepMemory(batch_size, train_bytes, tracker.peak, CPU_METHOD)


def _held(model: torch.nn.Module, optimizer: torch.optim.Optimizer, *batch: torch.Tensor) -> list[torch.Tensor]:
    """The tensors a training step starts with: parameters and buffers, gradients, optimizer state, the batch."""
    return [*model.parameters(), *model.buffers(), *batch,
            *(p.grad for p in model.parameters() if p.grad is not None),
            *(value for state in optimizer.state.values() for value in state.values()
              if isinstance(value, torch.Tensor))]


def _cuda_peak(work, device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    work()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))
