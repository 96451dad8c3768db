"""Several trials of one batch size trained at once as one vectorized ensemble (sweep.ensemble = "auto").

Trials that share a batch size and differ only by seed and learning rate train the same model on batches of
the same size, so their forward and backward passes can run as one: each member keeps its own parameters
(built from its own seed, as alone), the step stacks them into [members, ...] tensors and runs the model once
over the stacked batches [members, B, ...]: an MLP as batched matrix products, other models under torch.func's
vmap with functional_call. The members' losses are independent, so the
gradient of their sum gives each member exactly its own gradient. One optimizer holds one parameter group per
member (its own learning rate and schedule); SGD, Adam and AdamW update each element from its own gradient and
state only, so the update is the one the member would get alone. Evaluations run member by member with the
ordinary code.

Not bit for bit: the batched matrix products add up in another order than one member's product, so losses and
weights differ from training alone in the last bits of float32 (about 1e-7 relative after one step). Before
the first update the ensemble checks its first step against each member's own (losses and gradients within
PyTorch's float32 tolerances, torch.testing.assert_close's defaults) and trains the members one at a time when
it does not match. Each member stays a trial of its own in the run file with every event a trial sends, and
schema.EXECUTION_ATTR says how it trained.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from engine import schema
from engine.config import ExperimentConfig
from engine.devices import PeakMemory, is_out_of_memory
from engine.events import (EpochEnded, Evaluated, Event, Message, StepsLogged, TelemetryMeasured, TrialEnded,
                           TrialExecution, TrialMemoryMeasured, TrialSpec, TrialStarted)
from engine.execution.parallelism import trains_elsewhere
from engine.hardware.step_memory import _measure as measure_one_step
from engine.hardware.energy import training_clock_at
from engine.hardware.precision import trial_precision
from engine.hardware.telemetry import LIVE_INTERVAL_S, start_telemetry
from engine.models import MLP, build_model, parameter_count
from engine.science.schedule import EvalSchedule
from engine.train import TrainingClock, TrialContext, evaluate, lr_at, make_optimizer, run_trial, total_steps

# Members per ensemble at most: an ensemble's step holds every member's activations at once, and the speed-up
# measured on small models (benchmarks/scaling.py) is reached well before 8.
ENSEMBLE_MAX = 8
# Models whose layers torch.func's vmap batches (the recurrent kernels have no batching rule).
ENSEMBLE_MODELS = ("mlp", "cnn")
# The energy telemetry columns: cumulative for the whole process, shared out evenly among the members.
ENERGY_COLUMNS = ("cpu_energy_j", "gpu_energy_j")


def ensemble_words(members: int) -> str:
    return f"ensemble of {members}"


SEQUENTIAL = "sequential"


def blocked_by(config: ExperimentConfig) -> str:
    """Why none of the config's trials can train in an ensemble, in words; '' when they can."""
    model, train = config.model, config.train
    if config.sweep.strategy != "grid":
        return f"sweep.strategy = {config.sweep.strategy}: a search proposes its trials one at a time"
    if model.kind not in ENSEMBLE_MODELS:
        return f"model.kind = {model.kind}: vmap cannot batch the recurrent layers"
    if model.batch_norm:
        return "batch norm: its running statistics are updated in place, which vmap cannot batch"
    if train.accumulation_steps != 1:
        return f"train.accumulation_steps = {train.accumulation_steps}: the ensemble trains whole batches"
    if config.science.noise_scale:
        return "science.noise_scale: its measurement splits one trial's batch into micro-batches"
    return ""


@dataclass(frozen=True)
class EnsemblePlan:
    """Which trials train together: each trial's name -> the names of its ensemble (itself alone when it trains
    one at a time), and the words for how each trains."""
    groups: dict[str, tuple[str, ...]]
    execution: dict[str, str]

    def size(self, spec: TrialSpec) -> int:
        return len(self.groups.get(spec.name, (spec.name,)))


def plan_ensembles(config: ExperimentConfig, trials: list[TrialSpec],
                   emit: Callable[[Event], None]) -> EnsemblePlan | None:
    """The ensembles of sweep.ensemble = "auto" among `trials` (in the order a grid proposes them: the trials of a
    batch size follow each other), told as a message; None when the setting is off."""
    if config.sweep.ensemble == "off":
        return None
    if trains_elsewhere(config):
        emit(Message("sweep.ensemble = auto: not used, the trials train in worker processes or on ranks"))
        return None
    blocked = blocked_by(config)
    groups: dict[str, tuple[str, ...]] = {}
    execution: dict[str, str] = {}
    # Everything but the seed and the learning rate must be the same for trials to share one model's step.
    runs: list[tuple[TrialSpec, list[TrialSpec]]] = []
    for spec in trials:
        key = dataclasses.replace(spec, index=0, name="", seed=0, base_lr=0.0, lr=0.0)
        if runs and runs[-1][0] == key and len(runs[-1][1]) < ENSEMBLE_MAX:
            runs[-1][1].append(spec)
        else:
            runs.append((key, [spec]))
    for _, run in runs:
        names = tuple(spec.name for spec in run)
        precision = trial_precision(run[0], config.train)
        why = blocked or (f"precision {precision}: the ensemble trains in fp32 only" if precision != "fp32" else "") \
            or ("" if len(run) > 1 else f"no other trial at batch size {run[0].batch_size} to train with")
        for spec in run:
            groups[spec.name] = names if not why else (spec.name,)
            execution[spec.name] = ensemble_words(len(run)) if not why else f"{SEQUENTIAL} ({why})"
    sizes = [len(names) for names in dict.fromkeys(groups.values()) if len(names) > 1]
    emit(Message(f"sweep.ensemble = auto: {len(sizes)} ensemble{'s' if len(sizes) != 1 else ''} of "
                 f"{'/'.join(map(str, sorted(set(sizes))))} trials" if sizes else
                 f"sweep.ensemble = auto: every trial alone ({blocked or 'no two trials share a batch size'})"))
    return EnsemblePlan(groups, execution)


def run_group(first: TrialSpec, propose: Callable[[], TrialSpec | None], context: TrialContext,
              plan: EnsemblePlan | None) -> list[tuple[TrialSpec, str]]:
    """Train `first` and, when the plan puts it in an ensemble, the rest of its ensemble (the next trials
    `propose` gives); returns each trial with its final status, in order."""
    if plan is None:
        return [(first, run_trial(first, context))]
    members = [first]
    while len(members) < plan.size(first) and (spec := propose()) is not None:
        members.append(spec)
    execution = {spec.name: plan.execution[spec.name] for spec in members}
    if len(members) > 1:
        ensemble = _Ensemble(members, context)
        why_not = ensemble.first_step_check()
        if not why_not:
            return list(zip(members, ensemble.train(execution)))
        del ensemble   # its members' models and optimizer state, before each trial builds its own
        execution = {spec.name: f"{SEQUENTIAL} (the ensemble fell back: {why_not})" for spec in members}
    announcing = _announcing(context, execution)
    trained = []
    for spec in members:
        trained.append((spec, run_trial(spec, announcing)))
        if context.stop.is_set():
            break
    return trained


def _announcing(context: TrialContext, execution: dict[str, str]) -> TrialContext:
    """The context, whose events announce each trial's execution right after it starts."""
    def emit(event: Event) -> None:
        context.emit(event)
        if isinstance(event, TrialStarted):
            context.emit(TrialExecution(trial=event.trial, execution=execution[event.trial.name]))
    return dataclasses.replace(context, emit=emit)


def batched_forward(model: nn.Module) -> Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]:
    """The model's forward pass over stacked parameters {name: [members, ...]} and stacked inputs
    [members, B, ...], giving logits [members, B, classes]. An MLP runs as batched matrix products
    (torch.baddbmm), the others under vmap with functional_call: vmap's own per-call work costs more than the
    products of a small MLP on a CPU (benchmarks/scaling.py)."""
    if isinstance(model, MLP):
        layers = list(model.layers)

        def mlp(parameters: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
            hidden = inputs
            for index, layer in enumerate(layers):
                if isinstance(layer, nn.Flatten):
                    hidden = hidden.flatten(2)
                elif isinstance(layer, nn.Linear):
                    weight, bias = parameters[f"layers.{index}.weight"], parameters[f"layers.{index}.bias"]
                    hidden = torch.baddbmm(bias.unsqueeze(1), hidden, weight.transpose(1, 2))
                elif isinstance(layer, nn.ReLU):
                    hidden = torch.relu(hidden)
                else:
                    raise TypeError(f"no batched form of {type(layer).__name__}")
            return hidden
        return mlp
    shape = copy.deepcopy(model).to("meta")   # the functions of the layers, without weights
    return vmap(lambda parameters, inputs: functional_call(shape, parameters, (inputs,)))


class _Member:
    """One trial of the ensemble: its own model, batch order, learning rate and records."""

    def __init__(self, spec: TrialSpec, context: TrialContext):
        data = context.dataset
        self.spec = spec
        torch.manual_seed(spec.seed)   # as engine.train: the same initial weights as the trial alone
        self.model = build_model(context.config.model, data.input_shape, data.kind, data.num_classes) \
            .to(context.device)
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.generator = torch.Generator(device=context.device).manual_seed(spec.seed)
        self.status, self.error = "", ""
        self.x_epoch = self.y_epoch = None

    def shuffle(self, data) -> None:
        permutation = torch.randperm(data.train_size, device=data.x_train.device, generator=self.generator)
        self.x_epoch, self.y_epoch = data.x_train[permutation], data.y_train[permutation]


class _Ensemble:
    def __init__(self, members: list[TrialSpec], context: TrialContext):
        self.context = context
        config, data = context.config, context.dataset
        self.members = [_Member(spec, context) for spec in members]
        self.batch_size = members[0].batch_size
        self.steps_per_epoch = data.train_size // self.batch_size
        self.steps = total_steps(config.train, self.steps_per_epoch, self.batch_size)
        self.optimizer = make_optimizer(config.train, [{"params": m.parameters, "lr": m.spec.lr}
                                                       for m in self.members], members[0].lr)
        names = [name for name, p in self.members[0].model.named_parameters() if p.requires_grad]
        self.names = names
        self.logits = batched_forward(self.members[0].model)

    def _forward_backward(self, active: list[_Member], start: int) -> torch.Tensor:
        """Every active member's loss on its batch at `start` of its epoch order; gradients into .grad."""
        stacked = {name: torch.stack([m.parameters[i] for m in active]) for i, name in enumerate(self.names)}
        inputs = torch.stack([m.x_epoch[start:start + self.batch_size] for m in active])
        targets = torch.stack([m.y_epoch[start:start + self.batch_size] for m in active])
        logits = self.logits(stacked, inputs)
        # Each member's mean over its own batch, as F.cross_entropy gives a trial alone.
        losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(len(active), -1)
        losses = losses.mean(1)
        losses.sum().backward()
        return losses.detach()

    def first_step_check(self) -> str:
        """The first step both ways, before anything is sent: '' when the ensemble's losses and gradients are
        each member's own within float32 tolerance, else why not. Leaves the members as built (no update, the
        generators rewound), so that training starts from the same state either way."""
        data = self.context.dataset
        try:
            for member in self.members:
                member.shuffle(data)
            losses = self._forward_backward(self.members, 0)
            for index, member in enumerate(self.members):
                inputs = member.x_epoch[:self.batch_size]
                targets = member.y_epoch[:self.batch_size]
                alone = F.cross_entropy(member.model(inputs), targets)
                gradients = torch.autograd.grad(alone, member.parameters)
                torch.testing.assert_close(losses[index], alone.detach())
                for gradient, parameter in zip(gradients, member.parameters):
                    torch.testing.assert_close(parameter.grad, gradient)
        except AssertionError as mismatch:
            return f"its first step differed from training alone ({str(mismatch).splitlines()[0].strip()})"
        except Exception as error:  # noqa: BLE001 — whatever the ensemble cannot do, the trials do alone
            reason = "out of memory" if is_out_of_memory(error) else f"{type(error).__name__}: {error}"
            return f"its first step failed ({reason})".splitlines()[0]
        finally:
            for member in self.members:
                for parameter in member.parameters:
                    parameter.grad = None
                member.generator.manual_seed(member.spec.seed)
        return ""

    def emit(self, event: Event) -> None:
        """As engine.train's run_trial: the shared telemetry marks the training clock before the event goes on."""
        if (training_time_s := training_clock_at(event)) is not None:
            self.telemetry.mark_training_clock(training_time_s)
        self.context.emit(event)

    def _share(self, rows: TelemetryMeasured | None) -> None:
        """The ensemble's telemetry rows to every member, its energy shared out evenly among them."""
        if rows is None:
            return
        columns = {name: values / len(self.members) if name in ENERGY_COLUMNS else values
                   for name, values in rows.columns.items()}
        for member in self.members:
            self.emit(dataclasses.replace(rows, trial=member.spec, columns=columns))

    def train(self, execution: dict[str, str]) -> list[str]:
        context = self.context
        self.telemetry = start_telemetry(context.device)
        for member in self.members:
            model = member.model
            self.emit(TrialStarted(trial=member.spec, steps_per_epoch=self.steps_per_epoch,
                                      total_steps=self.steps, total_samples=self.steps * self.batch_size,
                                      parameter_count=parameter_count(model)))
            self.emit(TrialExecution(trial=member.spec, execution=execution[member.spec.name]))
        try:
            self._measure_memory()
            self._train()
        except Exception as exception:  # noqa: BLE001 — a failure is the outcome of the members still training
            status = schema.OUT_OF_MEMORY if is_out_of_memory(exception) else schema.FAILED
            for member in self.members:
                if not member.status:
                    member.status = status
                    member.error = f"{type(exception).__name__}: {exception}".strip()
        if context.device.type == "cuda":
            torch.cuda.empty_cache()
        self._share(self.telemetry.finish(self.members[0].spec))
        for member in self.members:
            self.emit(TrialEnded(trial=member.spec, status=member.status or schema.COMPLETED, error=member.error))
        return [member.status or schema.COMPLETED for member in self.members]

    def _measure_memory(self) -> None:
        """A trial's step memory belongs to its batch size: one member's step measured alone, for all of them."""
        context = self.context
        # engine.hardware.step_memory's measurement without measure_step_memory's full garbage collection, which
        # costs half a second in a large process and is there only to give a GPU's cache back after running out.
        memory = measure_one_step(context.config, context.dataset, self.batch_size, context.device)
        method = (f"{memory.method}; one trial of the batch size measured alone (the ensemble of "
                  f"{len(self.members)} holds about {len(self.members)} times this at once)")
        for member in self.members:
            self.emit(TrialMemoryMeasured(member.spec, float(memory.train_bytes), method))

    def _train(self) -> None:
        context = self.context
        config, data, device, stop = context.config, context.dataset, context.device, context.stop
        train, batch_size, steps = config.train, self.batch_size, self.steps
        epochs = math.ceil(steps / self.steps_per_epoch)
        warmup_steps = round(train.warmup_epochs * self.steps_per_epoch)
        x_probe, y_probe = data.x_train[context.train_eval_index], data.y_train[context.train_eval_index]
        schedule = EvalSchedule(config.science)
        memory = PeakMemory(device)
        log = _EnsembleLog()
        clock = TrainingClock(device)
        step, lr = 0, -1.0
        active = list(self.members)

        def flush(epoch_progress: float) -> None:
            nonlocal active
            for member, columns in log.take(active):
                self.emit(StepsLogged(trial=member.spec, epoch_fraction=epoch_progress, **columns))
                bad = np.flatnonzero(~np.isfinite(columns["loss"]))
                if len(bad):
                    member.status = schema.DIVERGED
                    member.error = f"the loss became {columns['loss'][bad[0]]} at step {columns['step'][bad[0]]}"
            active = [member for member in active if not member.status]
            # Telemetry travels with the steps, as for a trial alone, so that the Live tab's strip follows it.
            self._share(self.telemetry.take(self.members[0].spec, every=LIVE_INTERVAL_S))

        def evaluated(wall_time_s: float, results: list[tuple[float, float]] | None = None) -> None:
            for index, member in enumerate(active):
                if member.status:   # diverged at this epoch's end
                    continue
                val_loss, val_accuracy = results[index] if results else evaluate(
                    member.model, data.x_val, data.y_val, train.eval_batch_size)
                self.emit(Evaluated(trial=member.spec, metrics={
                    "step": step, "samples": step * batch_size, "wall_time_s": wall_time_s, "val_loss": val_loss,
                    "val_accuracy": val_accuracy}))

        for epoch in range(1, epochs + 1):
            memory.reset()
            clock.start_epoch()
            for member in active:
                member.shuffle(data)
            epoch_steps = min(self.steps_per_epoch, steps - step)
            index = 0
            for index in range(epoch_steps):
                if stop.is_set() or not active:
                    break
                new_lr = lr_at(step, 1.0, warmup_steps, steps, train.schedule)
                if new_lr != lr:
                    lr = new_lr
                    for member, group in zip(self.members, self.optimizer.param_groups):
                        group["lr"] = lr_at(step, member.spec.lr, warmup_steps, steps, train.schedule)
                for member in self.members:   # a member that left keeps no gradient for the optimizer to apply
                    for parameter in member.parameters:
                        parameter.grad = None
                losses = self._forward_backward(active, index * batch_size)
                norms = torch._foreach_norm([p.grad for member in active for p in member.parameters])
                self.optimizer.step()
                step += 1
                log.add(losses, norms, step, step * batch_size, clock.now(),
                        [group["lr"] for member, group in zip(self.members, self.optimizer.param_groups)
                         if member in active])
                if clock.flush_due():
                    memory.sample()
                    flush(epoch - 1 + (index + 1) / epoch_steps)
                if schedule.due(step * batch_size) and active:
                    if log.steps:
                        flush(epoch - 1 + (index + 1) / epoch_steps)
                    with clock.paused() as at:
                        evaluated(at)
            epoch_time = clock.end_epoch()
            if log.steps:
                done = index + 1 if not stop.is_set() else index
                flush(epoch - 1 + done / epoch_steps)
            if stop.is_set():
                for member in active:
                    member.status = schema.CANCELLED
                return
            if not active:
                return
            results = []
            for member in active:
                train_loss, train_accuracy = evaluate(member.model, x_probe, y_probe, train.eval_batch_size)
                val_loss, val_accuracy = evaluate(member.model, data.x_val, data.y_val, train.eval_batch_size)
                results.append((val_loss, val_accuracy))
                self.emit(EpochEnded(trial=member.spec, metrics={
                    "epoch": epoch, "step": step, "samples": step * batch_size, "wall_time_s": clock.total,
                    "train_loss": train_loss, "train_accuracy": train_accuracy, "val_loss": val_loss,
                    "val_accuracy": val_accuracy, "samples_per_s": epoch_steps * batch_size / epoch_time,
                    "peak_memory_bytes": memory.peak()}))
                if not math.isfinite(train_loss):
                    member.status = schema.DIVERGED
                    member.error = f"the training loss became {train_loss} by epoch {epoch}"
            if schedule.at_epochs:
                evaluated(clock.total, results)
            active = [member for member in active if not member.status]


class _EnsembleLog:
    """Per-step records of the active members, kept on the device between flushes (as engine.train's)."""

    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []                  # per step, [members]
        self.norms: list[tuple[torch.Tensor, ...]] = []       # per step, each member's gradients' norms in turn
        self.steps: list[int] = []
        self.samples: list[int] = []
        self.wall: list[float] = []
        self.lrs: list[list[float]] = []

    def add(self, losses: torch.Tensor, norms: tuple[torch.Tensor, ...], step: int, samples: int, wall: float,
            lrs: list[float]) -> None:
        self.losses.append(losses)
        self.norms.append(norms)
        self.steps.append(step)
        self.samples.append(samples)
        self.wall.append(wall)
        self.lrs.append(lrs)

    def take(self, active: list[_Member]) -> list[tuple[_Member, dict[str, np.ndarray]]]:
        """Each active member's columns (schema.STEP_METRICS); the members did not change since the last take."""
        count = len(active)
        losses = torch.stack(self.losses).float().cpu().numpy()
        # A step's total gradient norm is the norm of its per-tensor norms, as engine.train computes it.
        norms = torch.linalg.vector_norm(torch.stack([torch.stack(n) for n in self.norms]).view(
            len(self.steps), count, -1), dim=2).float().cpu().numpy()
        lrs = np.asarray(self.lrs, dtype=np.float32)
        shared = {"step": np.asarray(self.steps, dtype=np.int64), "samples": np.asarray(self.samples, dtype=np.int64),
                  "wall_time_s": np.asarray(self.wall, dtype=np.float64)}
        self.__init__()
        return [(member, {**shared, "loss": losses[:, index], "grad_norm": norms[:, index], "lr": lrs[:, index]})
                for index, member in enumerate(active)]


def execution_text(trials) -> str:
    """One line for `report` on how the trials trained (schema.EXECUTION_ATTR); '' when no trial recorded it
    (sweep.ensemble off, trials in workers, or a file written before it)."""
    counts: dict[str, int] = {}
    for trial in trials:
        if trial.execution:
            counts[trial.execution] = counts.get(trial.execution, 0) + 1
    if not counts:
        return ""
    return "Execution: " + "; ".join(f"{count} trial{'s' if count != 1 else ''} {words}"
                                     for words, count in counts.items())
