"""One trial on one device: a function with explicit inputs, no globals.

The step loop reads top to bottom: pick a batch by index, forward, backward, measure the gradient norm,
step. Per-step loss and gradient norm stay on the device in a list and are fetched together a few times a
second, so recording them costs no host-device synchronisation per step.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine import schema
from engine.config import ExperimentConfig, TrainConfig, scaled_lr  # noqa: F401 (sweep and tests import it here)
from engine.devices import PeakMemory, is_out_of_memory
from engine.hardware.step_memory import StepMemoryMeter, close_open_meter
from engine.hardware.precision import StepPrecision, trial_precision
from engine.hardware.energy import training_clock_at
from engine.hardware.telemetry import LIVE_INTERVAL_S, start_telemetry
from engine.events import (EpochEnded, Evaluated, Event, NoiseMeasured, StepsLogged, TrialEnded, TrialSpec,
                           TrialStarted)
from engine.models import build_model, parameter_count
from engine.science.noise_scale import NoiseScaleMeter, unavailable_reason
from engine.science.schedule import EvalSchedule

if TYPE_CHECKING:
    from engine.data import Dataset
    from engine.execution.ranks import Ranks

FLUSH_INTERVAL_S = 0.1   # how often step records leave the device (and the stop flag is honoured at the latest)


def lr_at(step: int, peak_lr: float, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Linear warm-up from zero to peak_lr, then constant or cosine decay to zero at total_steps."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return peak_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return peak_lr


def make_optimizer(train: TrainConfig, parameters, lr: float) -> torch.optim.Optimizer:
    if train.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=train.momentum, weight_decay=train.weight_decay)
    optimizer = torch.optim.Adam if train.optimizer == "adam" else torch.optim.AdamW
    return optimizer(parameters, lr=lr, weight_decay=train.weight_decay)


def total_steps(train: TrainConfig, steps_per_epoch: int, batch_size: int) -> int:
    if train.budget == "samples":
        return max(1, math.ceil(train.samples / batch_size))
    return train.epochs * steps_per_epoch


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """Mean loss and accuracy over (x, y), in evaluation mode, with a fixed evaluation batch size."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    for start in range(0, len(x), batch_size):
        logits = model(x[start:start + batch_size])
        target = y[start:start + batch_size]
        loss_sum += F.cross_entropy(logits, target, reduction="sum").double()
        correct += (logits.argmax(1) == target).sum()
    model.train()
    return loss_sum.item() / len(x), correct.item() / len(x)


@dataclass
class TrialContext:
    """Everything one trial needs besides its spec. train_eval_index picks the fixed subset of training
    examples on which train loss/accuracy are measured each epoch (the same subset for every trial)."""
    config: ExperimentConfig
    dataset: "Dataset"
    device: torch.device
    train_eval_index: torch.Tensor
    emit: Callable[[Event], None]
    stop: threading.Event
    # Called after each evaluation with its metrics (a search's pruner); a non-empty reason stops the trial `pruned`.
    after_evaluation: Callable[[TrialSpec, dict[str, float]], str] | None = None
    # This process's place among the data-parallel ranks that train the trial together (engine.execution.ranks).
    ranks: "Ranks | None" = None


class _Diverged(Exception):
    pass


class _Pruned(Exception):
    pass


class _StepLog:
    """Per-step records kept on the device between flushes."""

    def __init__(self) -> None:
        self.loss: list[torch.Tensor] = []
        self.parameter_norms: list[tuple[torch.Tensor, ...]] = []   # per step, each gradient's norm
        self.step: list[int] = []
        self.samples: list[int] = []
        self.wall: list[float] = []
        self.lr: list[float] = []

    def take(self) -> dict[str, np.ndarray]:
        columns = {
            "step": np.asarray(self.step, dtype=np.int64), "samples": np.asarray(self.samples, dtype=np.int64),
            "wall_time_s": np.asarray(self.wall, dtype=np.float64),
            "loss": torch.stack(self.loss).float().cpu().numpy(),
            "grad_norm": self._grad_norms().float().cpu().numpy(),
            "lr": np.asarray(self.lr, dtype=np.float32)}
        self.__init__()
        return columns

    def _grad_norms(self) -> torch.Tensor:
        """Each step's total gradient norm from its per-parameter norms, for all steps at once: two operations
        per flush instead of two per step."""
        if len({len(norms) for norms in self.parameter_norms}) == 1:
            stacked = torch.stack([norm for norms in self.parameter_norms for norm in norms])
            return torch.linalg.vector_norm(stacked.view(len(self.parameter_norms), -1), dim=1)
        # A parameter without a gradient in some steps: combine step by step.
        return torch.stack([torch.linalg.vector_norm(torch.stack(norms)) for norms in self.parameter_norms])


class TrainingClock:
    """Seconds spent training, the clock of throughput and time-to-target: evaluations are paused out of it, and an
    epoch ends only when the device has finished its queued steps (CUDA runs them asynchronously). Also says when
    step records are due to leave the device (every FLUSH_INTERVAL_S of wall time)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.total = 0.0             # training seconds of the epochs ended so far
        self._epoch_start = self._last_flush = 0.0

    def start_epoch(self) -> None:
        self._epoch_start = self._last_flush = time.perf_counter()

    def now(self) -> float:
        """Training seconds so far, the running epoch's included."""
        return self.total + time.perf_counter() - self._epoch_start

    def flush_due(self) -> bool:
        """Whether FLUSH_INTERVAL_S has passed since the last flush; a True starts the next interval."""
        now = time.perf_counter()
        if now - self._last_flush < FLUSH_INTERVAL_S:
            return False
        self._last_flush = now
        return True

    @contextmanager
    def paused(self) -> Iterator[float]:
        """Time spent inside (an evaluation) is not training time; yields the training seconds at the pause."""
        start = time.perf_counter()
        yield self.total + start - self._epoch_start
        self._last_flush = time.perf_counter()
        self._epoch_start += self._last_flush - start

    def end_epoch(self) -> float:
        """The epoch's training seconds, once the device has run every step queued."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        epoch_time = time.perf_counter() - self._epoch_start
        self.total += epoch_time
        return epoch_time


def run_trial(spec: TrialSpec, context: TrialContext) -> str:
    """Train one trial to its budget, emitting events; returns its final status. Never raises for
    out-of-memory, divergence or an error inside training: those are the trial's outcome."""
    status, error = schema.COMPLETED, ""
    started: list[TrialStarted] = []
    telemetry = start_telemetry(context.device)

    def emit(event: Event) -> None:
        if isinstance(event, TrialStarted):
            started.append(event)
        # Before the event is handed on (which may write the file): the mark is then the moment it describes.
        if (training_time_s := training_clock_at(event)) is not None:
            telemetry.mark_training_clock(training_time_s)
        context.emit(event)
        # Telemetry travels with the steps, twice a second, so that the Live tab's strip follows the trial.
        if isinstance(event, StepsLogged) and (rows := telemetry.take(spec, every=LIVE_INTERVAL_S)) is not None:
            context.emit(rows)

    try:
        status = _train(spec, context, emit)
    except _Diverged as diverged:
        status, error = schema.DIVERGED, str(diverged)
    except _Pruned as pruned:
        status, error = schema.PRUNED, str(pruned)
    except Exception as exception:  # noqa: BLE001 — any failure is this trial's outcome, the sweep goes on
        status = schema.OUT_OF_MEMORY if is_out_of_memory(exception) else schema.FAILED
        error = f"{type(exception).__name__}: {exception}".strip()
    close_open_meter()   # a step that raised while measured left its dispatch mode entered
    if context.device.type == "cuda":
        torch.cuda.empty_cache()
    if not started:  # it failed while building the model: still a trial in the file, with its outcome
        steps_per_epoch, steps = _step_budget(spec, context)
        emit(TrialStarted(trial=spec, steps_per_epoch=steps_per_epoch, total_steps=steps,
                          total_samples=steps * spec.batch_size, parameter_count=0))
    context.emit(telemetry.finish(spec))
    context.emit(TrialEnded(trial=spec, status=status, error=error))
    return status


def _step_budget(spec: TrialSpec, context: TrialContext) -> tuple[int, int]:
    """Steps per epoch and in all. The last partial batch of an epoch is dropped: every step is full."""
    steps_per_epoch = context.dataset.train_size // spec.batch_size
    return steps_per_epoch, total_steps(context.config.train, steps_per_epoch, spec.batch_size)


def _train(spec: TrialSpec, context: TrialContext, emit: Callable[[Event], None]) -> str:
    config, data, device, stop = context.config, context.dataset, context.device, context.stop
    train = config.train
    batch_size = spec.batch_size
    torch.manual_seed(spec.seed)
    model = build_model(config.model, data.input_shape, data.kind, data.num_classes).to(device)
    if context.ranks is not None:
        model = context.ranks.wrap(model)
    optimizer = make_optimizer(train, model.parameters(), spec.lr)
    parameters = [p for p in model.parameters() if p.requires_grad]
    generator = torch.Generator(device=device).manual_seed(spec.seed)

    steps_per_epoch, steps = _step_budget(spec, context)
    epochs = math.ceil(steps / steps_per_epoch)
    warmup_steps = round(train.warmup_epochs * steps_per_epoch)
    science = config.science
    noise_unavailable = (unavailable_reason(model, batch_size, science.noise_microbatches)
                         if science.noise_scale else "")
    noise = (NoiseScaleMeter(parameters, science.noise_microbatches, science.noise_every)
             if science.noise_scale and not noise_unavailable else None)
    schedule = EvalSchedule(science)
    emit(TrialStarted(trial=spec, steps_per_epoch=steps_per_epoch, total_steps=steps,
                      total_samples=steps * batch_size, parameter_count=parameter_count(model),
                      noise_scale_unavailable=noise_unavailable))

    x_train, y_train = data.x_train, data.y_train
    x_probe, y_probe = x_train[context.train_eval_index], y_train[context.train_eval_index]
    memory = PeakMemory(device)
    meter = StepMemoryMeter(spec, device, model, optimizer, emit, steps)
    precision = StepPrecision(trial_precision(spec, train), train.accumulation_steps, device)
    log = _StepLog()
    clock = TrainingClock(device)
    step = 0
    lr = spec.lr
    model.train()

    def flush(epoch_progress: float) -> None:
        columns = log.take()
        bad = np.flatnonzero(~np.isfinite(columns["loss"]))
        emit(StepsLogged(trial=spec, epoch_fraction=epoch_progress, **columns))
        if noise is not None and (measured := noise.take(batch_size)) is not None:
            emit(NoiseMeasured(trial=spec, columns=measured))
        if len(bad):
            raise _Diverged(f"the loss became {columns['loss'][bad[0]]} at step {columns['step'][bad[0]]}")

    def evaluated(wall_time_s: float, val: tuple[float, float] | None = None) -> None:
        """One evaluation of the schedule: recorded, then shown to the search's pruner, which hears of every
        evaluation here and only here."""
        val_loss, val_accuracy = val or evaluate(model, data.x_val, data.y_val, train.eval_batch_size)
        metrics = {"step": step, "samples": step * batch_size, "wall_time_s": wall_time_s, "val_loss": val_loss,
                   "val_accuracy": val_accuracy}
        emit(Evaluated(trial=spec, metrics=metrics))
        # After the last evaluation the trial is complete: there is nothing left to save by stopping it.
        if step < steps and context.after_evaluation is not None and \
                (reason := context.after_evaluation(spec, metrics)):
            raise _Pruned(reason)

    for epoch in range(1, epochs + 1):
        memory.reset()
        clock.start_epoch()
        # One gather per epoch instead of two per step: batches are then contiguous slices (views).
        permutation = torch.randperm(data.train_size, device=device, generator=generator)
        x_epoch, y_epoch = x_train[permutation], y_train[permutation]
        epoch_steps = min(steps_per_epoch, steps - step)
        for index in range(epoch_steps):
            if stop.is_set():
                break
            start = index * batch_size
            inputs, targets = x_epoch[start:start + batch_size], y_epoch[start:start + batch_size]
            if context.ranks is not None:
                inputs, targets = context.ranks.share(inputs, targets)
            meter.begin(step, inputs, targets)
            new_lr = lr_at(step, spec.lr, warmup_steps, steps, train.schedule)
            if new_lr != lr:
                lr = new_lr
                for group in optimizer.param_groups:
                    group["lr"] = lr
            if noise is not None and noise.due(step):
                loss = noise.backward(lambda x, y: precision.loss(model, x, y), inputs, targets, step + 1,
                                      clock.now())
            else:
                # Same as optimizer.zero_grad(set_to_none=True) without its profiler bookkeeping, which costs
                # as much as the gradient norm on small models.
                for parameter in parameters:
                    parameter.grad = None
                loss = precision.forward_backward(model, inputs, targets)
            precision.unscale(optimizer)
            # The fused per-tensor norms (what get_total_norm does first); their norm is taken at the flush.
            parameter_norms = torch._foreach_norm([p.grad for p in parameters if p.grad is not None])
            precision.step(optimizer)
            meter.end()
            step += 1
            log.loss.append(loss.detach() if context.ranks is None else context.ranks.mean(loss))
            log.parameter_norms.append(parameter_norms)
            log.step.append(step)
            log.samples.append(step * batch_size)
            log.wall.append(clock.now())
            log.lr.append(lr)
            if clock.flush_due():
                memory.sample()
                flush(epoch - 1 + (index + 1) / epoch_steps)
            if schedule.due(step * batch_size):
                if log.step:   # the steps up to this one reach observers before their evaluation
                    flush(epoch - 1 + (index + 1) / epoch_steps)
                with clock.paused() as at:
                    evaluated(at)
        epoch_time = clock.end_epoch()
        done = index + 1 if not stop.is_set() else index
        if log.step:
            flush(epoch - 1 + done / epoch_steps)
        if stop.is_set():
            return schema.CANCELLED
        # Evaluation happens outside the training clock, so throughput and time-to-target exclude it.
        train_loss, train_accuracy = evaluate(model, x_probe, y_probe, train.eval_batch_size)
        val_loss, val_accuracy = evaluate(model, data.x_val, data.y_val, train.eval_batch_size)
        emit(EpochEnded(trial=spec, metrics={
            "epoch": epoch, "step": step, "samples": step * batch_size, "wall_time_s": clock.total,
            "train_loss": train_loss, "train_accuracy": train_accuracy, "val_loss": val_loss,
            "val_accuracy": val_accuracy, "samples_per_s": epoch_steps * batch_size / epoch_time,
            "peak_memory_bytes": memory.peak()}))
        if not math.isfinite(train_loss):
            raise _Diverged(f"the training loss became {train_loss} by epoch {epoch}")
        if schedule.at_epochs:
            evaluated(clock.total, (val_loss, val_accuracy))
    return schema.COMPLETED
