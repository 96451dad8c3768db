"""The gradient noise scale B_simple = tr(Σ) / |G|² (McCandlish et al. 2018, "An Empirical Model of Large-Batch
Training", arXiv:1812.06162, appendix A), measured while training.

Every `noise_every` steps the step's batch of B examples is split into k micro-batches at the same weights.
Each micro-batch's gradient g_i is a sample of the gradient at batch size b_i; their size-weighted mean is
exactly the batch's gradient, which the optimizer then uses, so the measurement costs only the micro-batches'
lower efficiency, not a second backward pass. With S_b = mean |g_i|² and S_B = |Σ (b_i/B) g_i|²:

    E[S_b] = |G|² + tr(Σ)/b   (b: the harmonic mean of the b_i)      E[S_B] = |G|² + tr(Σ)/B

so |G|² ≈ (B·S_B − b·S_b)/(B − b) and tr(Σ) ≈ (S_b − S_B)/(1/b − 1/B). Single estimates are noisy (|G|² may
come out negative); each is averaged with a bias-corrected exponential moving average and B_simple is the
ratio of the averages. Gradients are taken before weight decay or any optimizer transform (both happen in
optimizer.step).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.runfile import RunData
from engine.science.targets import crossing

EMA_BETA = 0.99


def estimates(small_sq: np.ndarray | float, big_sq: np.ndarray | float, micro_batch: np.ndarray | float,
              batch: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased |G|² and tr(Σ) from the mean squared micro-batch gradient norm (size micro_batch) and the
    squared norm of the batch's gradient (size batch)."""
    small_sq, big_sq = np.asarray(small_sq, float), np.asarray(big_sq, float)
    micro_batch, batch = np.asarray(micro_batch, float), np.asarray(batch, float)
    grad_sq = (batch * big_sq - micro_batch * small_sq) / (batch - micro_batch)
    trace_sigma = (small_sq - big_sq) / (1 / micro_batch - 1 / batch)
    return grad_sq, trace_sigma


def unavailable_reason(model: nn.Module, batch_size: int, microbatches: int) -> str:
    """Why the noise scale cannot be measured for this trial, or "" when it can."""
    if any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules()):
        return ("batch normalization: each micro-batch would be normalized with its own statistics, so its "
                "gradient is not a sample of the batch's and the estimate would be wrong")
    if batch_size < microbatches:
        return (f"batch size {batch_size} cannot be split into science.noise_microbatches = {microbatches} "
                "micro-batches")
    return ""


class NoiseScaleMeter:
    """Measures at the steps `due` names and keeps the measurements on the device until `take` (no host-device
    synchronization per measurement)."""

    def __init__(self, parameters: list[torch.Tensor], microbatches: int, every: int):
        self.parameters, self.microbatches, self.every = parameters, microbatches, every
        self._rows: list[tuple[int, int, float, float, torch.Tensor, torch.Tensor]] = []
        self._ema_grad_sq = self._ema_trace = 0.0

    def due(self, step: int) -> bool:
        """Whether the step about to be taken (0-based) is measured: the first, then every `every`-th."""
        return step % self.every == 0

    def backward(self, loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                 targets: torch.Tensor, step: int, wall_time_s: float) -> torch.Tensor:
        """In place of loss.backward(): leaves the whole batch's mean-loss gradient in each parameter's .grad,
        records one measurement for step `step` (1-based, the step this gradient makes) and returns the batch's
        mean loss (detached)."""
        batch = len(inputs)
        total: list[torch.Tensor] = []
        norms: list[torch.Tensor] = []
        losses, weights = [], []
        inverse_sizes = 0.0
        for micro_inputs, micro_targets in zip(inputs.tensor_split(self.microbatches),
                                               targets.tensor_split(self.microbatches)):
            size = len(micro_inputs)
            for parameter in self.parameters:
                parameter.grad = None
            loss = loss_of(micro_inputs, micro_targets)
            loss.backward()
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.parameters]
            norms.extend(torch._foreach_norm(grads))
            if total:
                torch._foreach_add_(total, grads, alpha=size / batch)
            else:
                # The first micro-batch's gradients, weighted in place, hold the sum: no zeroed copy of the model.
                torch._foreach_mul_(grads, size / batch)
                total = grads
            losses.append(loss.detach())
            weights.append(size / batch)
            inverse_sizes += 1 / size
        for parameter, gradient in zip(self.parameters, total):
            parameter.grad = gradient
        # One stack for all the micro-batches' per-tensor norms: the per-micro-batch reductions were a third of
        # the bookkeeping's cost at small batch sizes.
        small_sq = torch.stack(norms).double().square().sum() / self.microbatches
        big_sq = torch.stack(torch._foreach_norm(total)).double().square().sum()
        micro_batch = self.microbatches / inverse_sizes
        self._rows.append((step, step * batch, wall_time_s, micro_batch, small_sq, big_sq))
        return torch.stack(torch._foreach_mul(losses, weights)).sum()

    def take(self, batch: int) -> dict[str, np.ndarray] | None:
        """The measurements since the last take as schema.NOISE_METRICS columns, None when there are none."""
        if not self._rows:
            return None
        step, samples, wall, micro_batch, small, big = zip(*self._rows)
        self._rows.clear()
        squares = torch.stack([torch.stack(pair) for pair in zip(small, big)]).cpu().numpy()
        grad_sq, trace_sigma = estimates(squares[:, 0], squares[:, 1], np.asarray(micro_batch), batch)
        b_simple = np.empty(len(step))
        for row, (gradient, trace) in enumerate(zip(grad_sq, trace_sigma)):
            self._ema_grad_sq = EMA_BETA * self._ema_grad_sq + (1 - EMA_BETA) * gradient
            self._ema_trace = EMA_BETA * self._ema_trace + (1 - EMA_BETA) * trace
            # The same bias correction divides both averages, so it cancels in the ratio; it matters for a
            # reader of the averages alone. A non-positive |G|² average (noise outweighs signal) has no ratio.
            b_simple[row] = self._ema_trace / self._ema_grad_sq if self._ema_grad_sq > 0 else math.nan
        return {"step": np.asarray(step, np.int64), "samples": np.asarray(samples, np.int64),
                "wall_time_s": np.asarray(wall, np.float64), "micro_batch": np.asarray(micro_batch, np.float64),
                "grad_sq": grad_sq, "trace_sigma": trace_sigma, "b_simple": b_simple}


def averaged_b_simple(noise: dict[str, np.ndarray], up_to_samples: float = math.inf) -> float:
    """B_simple from a trial's raw estimates up to `up_to_samples` examples: the ratio of their plain means
    (every measurement weighted alike, unlike the live moving average). NaN when none, or when the mean |G|²
    is not positive."""
    keep = noise["samples"] <= up_to_samples
    grad_sq, trace = noise["grad_sq"][keep], noise["trace_sigma"][keep]
    finite = np.isfinite(grad_sq) & np.isfinite(trace)
    if not finite.any() or grad_sq[finite].mean() <= 0:
        return math.nan
    return float(trace[finite].mean() / grad_sq[finite].mean())



@dataclass(frozen=True)
class TrialNoise:
    """One trial's noise scale, as the report gives it."""
    name: str
    batch_size: int
    seed: int
    base_lr: float
    measurements: int
    b_simple: float                # the moving average at the trial's last measurement; NaN when none
    b_simple_to_target: float      # averaged over the measurements up to the target (all, when never reached)
    unavailable: str               # why it was not measured ("" when it was, or was not asked for)


@dataclass(frozen=True)
class NoiseSummary:
    trials: list[TrialNoise]
    b_simple: float                # the median over trials of b_simple_to_target; NaN when none measured
    unavailable: str               # why there is no overall value ("" when there is)


def noise_summary(run: RunData, target: float | None) -> NoiseSummary:
    """Each trial's B_simple, averaged up to where it reached `target` (McCandlish et al. compare B_crit with
    B_simple over the same stretch of training), and their median as the run's value."""
    trials = []
    for trial in run.trials:
        reached = crossing(trial, target)
        up_to = reached.samples if not reached.censored else math.inf
        noise = trial.noise
        trials.append(TrialNoise(
            name=trial.name, batch_size=trial.batch_size, seed=trial.seed, base_lr=trial.base_lr,
            measurements=len(noise["step"]),
            b_simple=float(noise["b_simple"][-1]) if len(noise["b_simple"]) else math.nan,
            b_simple_to_target=averaged_b_simple(noise, up_to), unavailable=trial.noise_scale_unavailable))
    values = [t.b_simple_to_target for t in trials if math.isfinite(t.b_simple_to_target)]
    if values:
        return NoiseSummary(trials, float(np.median(values)), "")
    reasons = sorted({t.unavailable for t in trials if t.unavailable})
    if reasons:
        why = "not measurable here: " + "; ".join(reasons)
    elif any(t.measurements for t in trials):
        why = "measured, but the gradient's signal never rose above its noise (|G|² averaged to 0 or less)"
    else:
        why = "not measured: set [science] noise_scale = true to measure it"
    return NoiseSummary(trials, math.nan, why)


def lines(summary: NoiseSummary) -> list[str]:
    """The report's text about the noise scale."""
    if summary.unavailable:
        return [f"Noise scale B_simple: unavailable ({summary.unavailable})"]
    measured = [t for t in summary.trials if math.isfinite(t.b_simple_to_target)]
    out = [f"Noise scale B_simple, averaged up to the target: {summary.b_simple:,.0f} (median of {len(measured)} "
           f"trial{'s' if len(measured) != 1 else ''}); McCandlish et al. expect the critical batch of that order"]
    for trial in summary.trials:
        if trial.unavailable:
            out.append(f"  {trial.name}: unavailable ({trial.unavailable})")
    return out
