"""The critical batch size: S(B) = S_min + E_min / B fitted to steps to target (McCandlish et al. 2018, eq. 2.11).

S_min is the fewest steps any batch size needs, E_min the fewest examples; B_crit = E_min / S_min is where the
curve bends. Below it doubling the batch nearly halves the steps (perfect scaling); far above it the steps stay
S_min and every extra example is paid for nothing (no gain). The fit is least squares on log S, so that every
batch size weighs alike whatever its steps; censored batch sizes (never reached the target) are left out, never
given a number. Written as S = S_min (1 + B_crit / B), for a fixed B_crit the best log S_min is the mean of
log S - log(1 + B_crit / B), so the fit is a one-dimensional search over log B_crit.

The interval for B_crit is a bootstrap over seeds: each replicate draws every (batch size, learning rate)'s seeds
with replacement, takes the tuned steps again (median, then best rate) and refits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine.runfile import RunData
from engine.science.targets import per_rate_seed_steps, tuned

PERFECT, DIMINISHING, NO_GAIN, CENSORED = "perfect_scaling", "diminishing_returns", "no_gain", "censored"
REGIME_WORDS = {PERFECT: "perfect scaling", DIMINISHING: "diminishing returns", NO_GAIN: "no gain",
                CENSORED: "did not reach the target"}
# A batch size at most B_crit / 3 is in perfect scaling (doubling it still cuts the steps by 1.6x or more); at
# least 3 B_crit is no gain (doubling saves 14% of the steps or less, for twice the examples per step).
REGIME_FACTOR = 3.0
MIN_POINTS = 3                 # two points fit any such curve exactly: no test of the model
BOOTSTRAP_REPLICATES = 200
BOOTSTRAP_SEED = 0             # the same run gives the same interval
INTERVAL = (2.5, 97.5)         # percentiles: a 95% interval


@dataclass(frozen=True)
class Fit:
    s_min: float
    e_min: float
    b_crit: float
    r2: float                  # on log S


def fit(batch_sizes, steps) -> Fit | None:
    """Least squares on log S of S = S_min + E_min / B; None with fewer than MIN_POINTS finite points."""
    batch = np.asarray(batch_sizes, float)
    steps = np.asarray(steps, float)
    keep = np.isfinite(steps) & (steps > 0)
    batch, log_steps = batch[keep], np.log(steps[keep])
    if len(batch) < MIN_POINTS:
        return None

    def residual(log_b_crit: float) -> tuple[float, float]:
        shape = np.log1p(math.exp(log_b_crit) / batch)
        log_s_min = float(np.mean(log_steps - shape))
        return float(np.sum((log_steps - log_s_min - shape) ** 2)), log_s_min

    # B_crit from a thousandth of the smallest batch (flat: no gain anywhere) to a thousand times the largest
    # (perfect scaling everywhere): a coarse grid, then golden-section search around its best point.
    grid = np.linspace(math.log(batch.min() / 1000), math.log(batch.max() * 1000), 200)
    shapes = np.log1p(np.exp(grid)[:, None] / batch[None, :])
    deviations = log_steps[None, :] - shapes
    sums = np.sum((deviations - deviations.mean(axis=1, keepdims=True)) ** 2, axis=1)
    best = int(np.argmin(sums))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(60):   # the bracket shrinks to 0.618**60 of one grid step: far below float precision
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if residual(a)[0] < residual(b)[0]:
            high = b
        else:
            low = a
    log_b_crit = (low + high) / 2
    sum_squares, log_s_min = residual(log_b_crit)
    total = float(np.sum((log_steps - log_steps.mean()) ** 2))
    s_min, b_crit = math.exp(log_s_min), math.exp(log_b_crit)
    return Fit(s_min=s_min, e_min=s_min * b_crit, b_crit=b_crit,
               r2=1 - sum_squares / total if total > 0 else math.nan)


def regime(batch_size: float, b_crit: float) -> str:
    if batch_size <= b_crit / REGIME_FACTOR:
        return PERFECT
    if batch_size >= b_crit * REGIME_FACTOR:
        return NO_GAIN
    return DIMINISHING


@dataclass
class CriticalBatch:
    """The fit on one run at one target, or why there is none (`unavailable`)."""
    target: float | None
    tuned: bool                        # a learning-rate grid: each batch size at its best rate
    batch_sizes: list[int] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)       # tuned steps to target per batch size, NaN: censored
    samples: list[float] = field(default_factory=list)
    s_min: float = math.nan
    e_min: float = math.nan
    b_crit: float = math.nan
    b_crit_low: float = math.nan       # NaN without an interval (a single seed: nothing to resample)
    b_crit_high: float = math.nan
    r2: float = math.nan
    regimes: dict[int, str] = field(default_factory=dict)
    unavailable: str = ""

    @property
    def available(self) -> bool:
        return not self.unavailable

    def fitted_steps(self, batch_sizes) -> np.ndarray:
        return self.s_min + self.e_min / np.asarray(batch_sizes, float)


def _bootstrap(table: dict[int, dict[float, list[float]]]) -> tuple[float, float]:
    sizes = sorted(table)
    if all(len(seeds) < 2 for rates in table.values() for seeds in rates.values()):
        return math.nan, math.nan
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    b_crits = []
    for _ in range(BOOTSTRAP_REPLICATES):
        steps = []
        for size in sizes:
            best = math.inf
            for seeds in table[size].values():
                drawn = rng.choice(np.asarray(seeds), size=len(seeds), replace=True)
                best = min(best, float(np.median(drawn)))
            steps.append(best)
        result = fit(sizes, steps)
        if result is not None:
            b_crits.append(result.b_crit)
    if len(b_crits) < BOOTSTRAP_REPLICATES // 2:    # most replicates had too few points left to fit
        return math.nan, math.nan
    low, high = np.percentile(b_crits, INTERVAL)
    return float(low), float(high)


def critical_batch(run: RunData, target: float | None) -> CriticalBatch:
    """The critical-batch fit of a run's tuned steps to `target`."""
    points = tuned(run.trials, target)
    result = CriticalBatch(target=target, tuned=any(p.rates_tried > 1 for p in points),
                           batch_sizes=[p.batch_size for p in points], steps=[p.steps for p in points],
                           samples=[p.samples for p in points])
    if target is None:
        result.unavailable = "no target: no trial has finished an evaluation yet"
        return result
    reached = [p for p in points if not p.censored]
    fitted = fit([p.batch_size for p in reached], [p.steps for p in reached])
    if fitted is None:
        result.unavailable = (f"{len(reached)} batch size{'s' if len(reached) != 1 else ''} reached the target "
                              f"{target:.1%}; the fit needs at least {MIN_POINTS}")
        result.regimes = {p.batch_size: CENSORED for p in points if p.censored}
        return result
    result.s_min, result.e_min, result.b_crit, result.r2 = fitted.s_min, fitted.e_min, fitted.b_crit, fitted.r2
    result.b_crit_low, result.b_crit_high = _bootstrap(per_rate_seed_steps(run.trials, target))
    result.regimes = {p.batch_size: CENSORED if p.censored else regime(p.batch_size, fitted.b_crit) for p in points}
    return result


def advice(result: CriticalBatch) -> str:
    """The sentence the recommendation adds from the fit, or "" when there is no fit."""
    if not result.available:
        return ""
    beyond = REGIME_FACTOR * result.b_crit
    no_gain = [size for size, name in result.regimes.items() if name == NO_GAIN]
    tried = f" (here: {', '.join(map(str, no_gain))})" if no_gain else ""
    return (f"Beyond batch size {beyond:,.0f} (3 × the critical batch {result.b_crit:,.0f}) you pay examples without "
            f"saving steps: doubling the batch there saves at most 14% of the steps{tried}.")


def lines(result: CriticalBatch) -> list[str]:
    """The report's text about the fit."""
    how = "tuned: each batch size at its best learning rate" if result.tuned else \
        "one learning rate per batch size, not tuned (a learning-rate grid would tune it)"
    target = f"{result.target:.1%}" if result.target is not None else "no target"
    out = [f"Critical batch (steps to {target} validation accuracy, {how}):"]
    if not result.available:
        return out + [f"  unavailable: {result.unavailable}"]
    interval = (f", 95% interval {result.b_crit_low:,.0f} to {result.b_crit_high:,.0f} over seeds"
                if math.isfinite(result.b_crit_low) else ", no interval: one seed per batch size")
    out.append(f"  S(B) = S_min + E_min/B with S_min = {result.s_min:,.0f} steps, E_min = {result.e_min:,.0f} "
               f"examples: B_crit = {result.b_crit:,.0f}{interval}; R² = {result.r2:.3f} on log steps")
    for size, steps in zip(result.batch_sizes, result.steps):
        shown = f"{steps:,.0f} steps" if math.isfinite(steps) else "never reached"
        out.append(f"  batch {size}: {shown} ({REGIME_WORDS[result.regimes[size]]})")
    out.append(f"  {advice(result)}")
    return out
