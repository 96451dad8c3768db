"""Claim: returns diminish past a critical batch size (steps to a target stop falling as 1/B)."""
from __future__ import annotations

import math

import numpy as np

from engine.science.critical_batch import NO_GAIN, PERFECT, REGIME_FACTOR, CriticalBatch, critical_batch
from engine.science.findings.evidence import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, Context, EvidencePlot, Finding,
                                              Line, untestable)
from engine.science.targets import tuned

CLAIM_ID = "diminishing_returns_past_critical_batch"
CLAIM = "Returns diminish past a critical batch size: beyond it, larger batches save few steps."
PRESET = "critical-batch"
MIN_R2 = 0.9           # a fit that explains less of log S does not describe this run
CAPTION = ("Steps to the target at each batch size's best learning rate: a dot per seed, the line their median; "
           "dashed, the fit S_min + E_min/B. Flat at the right is the bend; the Steps plot above shades the regimes.")


def judge(context: Context) -> Finding:
    fit = critical_batch(context.run, context.target)
    if not fit.available:
        return untestable(CLAIM_ID, CLAIM, fit.unavailable, PRESET)
    measured = [size for size, steps in zip(fit.batch_sizes, fit.steps) if math.isfinite(steps)]
    largest = max(measured)
    # The bend is seen when the largest batch size is past it by the regime factor, even at the interval's top.
    high = fit.b_crit_high if math.isfinite(fit.b_crit_high) else fit.b_crit
    low = fit.b_crit_low if math.isfinite(fit.b_crit_low) else fit.b_crit
    interval = (f" (95% interval {fit.b_crit_low:,.0f} to {fit.b_crit_high:,.0f})"
                if math.isfinite(fit.b_crit_high) else " (one seed: no interval)")
    evidence = (f"Steps to {context.target:.1%} fit S_min + E_min/B with B_crit = {fit.b_crit:,.0f}{interval}, "
                f"R² = {fit.r2:.3f}; batch sizes tried up to {largest}.")
    if fit.r2 < MIN_R2:
        verdict = INCONCLUSIVE
        evidence += f" The fit explains too little (R² below {MIN_R2})."
    elif largest >= REGIME_FACTOR * high and any(fit.regimes[size] == NO_GAIN for size in measured):
        verdict = SUPPORTED
    elif all(fit.regimes[size] == PERFECT for size in measured) and largest <= low / REGIME_FACTOR:
        verdict = CONTRADICTED
        evidence += " Every batch size tried is still in perfect scaling."
    else:
        verdict = INCONCLUSIVE
        evidence += " The bend's place is not settled within the batch sizes tried."
    return Finding(CLAIM_ID, CLAIM, verdict, evidence,
                   {"b_crit": fit.b_crit, "b_crit_low": fit.b_crit_low, "b_crit_high": fit.b_crit_high, "r2": fit.r2,
                    "largest_batch_size": largest}, PRESET, _plot(context, fit))


def _plot(context: Context, fit: CriticalBatch) -> EvidencePlot:
    seeds = [(point.batch_size, steps) for point in tuned(context.run.trials, context.target)
             for steps in point.per_seed_steps if math.isfinite(steps)]
    reached = [(float(size), steps) for size, steps in zip(fit.batch_sizes, fit.steps) if math.isfinite(steps)]
    line = np.geomspace(reached[0][0], reached[-1][0], 50)
    return EvidencePlot("optimizer steps to target", CAPTION, [size for size, _ in seeds], [s for _, s in seeds],
                        [Line("median over seeds", [size for size, _ in reached], [steps for _, steps in reached]),
                         Line("S_min + E_min/B", line.tolist(), fit.fitted_steps(line).tolist(), dashed=True)],
                        log_y=True)
