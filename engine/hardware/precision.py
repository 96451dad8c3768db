"""Mixed precision and gradient accumulation: how one optimizer step computes its gradients.

precision: fp32 as written; bf16 runs the forward pass under torch.autocast with bfloat16 (CPU and CUDA); fp16
under autocast with float16 and a gradient scaler (CUDA only: the CPU has no float16 kernels worth using, and the
scaler needs CUDA). accumulation_steps: the batch is split into that many micro-batches, each one's loss weighted
by its share of the batch, and their gradients add up before the optimizer steps: without batch norm that is the
gradient of the whole batch (tests/test_precision.py), with batch norm it is not (the statistics come from each
micro-batch). Memory is then that of one micro-batch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import ConfigError

if TYPE_CHECKING:
    from engine.config import ExperimentConfig, TrainConfig
    from engine.events import TrialSpec

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def trial_precision(spec: "TrialSpec", train: "TrainConfig") -> str:
    """The precision a trial trains with: its own where sweep.precisions crosses it with the batch sizes, else the
    config's train.precision."""
    return spec.precision or train.precision


def sweep_precisions(config: "ExperimentConfig") -> list[str]:
    """The precisions a sweep trains with: sweep.precisions, or train.precision alone when that is empty."""
    return config.sweep.precisions or [config.train.precision]


def check_precision(precision: str, device: torch.device, key: str = "train.precision") -> None:
    """fp16 needs CUDA: a one-line config error naming the key otherwise."""
    if precision == "fp16" and device.type != "cuda":
        shown = f"{key} = 'fp16'" if key == "train.precision" else f"{key} contains 'fp16'"
        raise ConfigError([f"{shown}: float16 training needs a CUDA GPU and this sweep trains on "
                           f"the {device.type}; use bf16 or fp32"])


def check_sweep_precisions(config: "ExperimentConfig", device: torch.device) -> None:
    key = "sweep.precisions" if config.sweep.precisions else "train.precision"
    for precision in sweep_precisions(config):
        check_precision(precision, device, key)


class StepPrecision:
    """forward_backward() fills the gradients of one step; unscale() before reading them, step() to update."""

    def __init__(self, precision: str, accumulation_steps: int, device: torch.device):
        check_precision(precision, device)
        self.dtype = _DTYPES.get(precision)
        self.device_type = device.type
        self.accumulation_steps = accumulation_steps
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def forward_backward(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The batch's mean loss (detached); gradients accumulated into the parameters' .grad."""
        if self.accumulation_steps == 1:
            loss = self.loss(model, inputs, targets)
            self._backward(loss)
            return loss.detach()
        total = torch.zeros((), device=inputs.device)
        for part_inputs, part_targets in zip(inputs.tensor_split(self.accumulation_steps),
                                             targets.tensor_split(self.accumulation_steps)):
            # Each micro-batch's mean loss weighted by its share: the sum is the whole batch's mean loss.
            loss = self.loss(model, part_inputs, part_targets) * (len(part_targets) / len(targets))
            self._backward(loss)
            total += loss.detach()
        return total

    def loss(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The batch's mean loss in this precision (the noise scale's micro-batches are taken with it too)."""
        with torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None):
            return F.cross_entropy(model(inputs), targets)

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)   # skipped when the scaled gradients overflowed
        self.scaler.update()
