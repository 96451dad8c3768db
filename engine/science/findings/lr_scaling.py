"""Claim: the learning rate must grow with the batch size (the linear or square-root rule).

Tested the Shallue way: each batch size's best learning rate on a grid (fewest steps to the target, median over
seeds), compared between the smallest and the largest batch size."""
from __future__ import annotations

import math

from engine.science.findings.evidence import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, Context, Finding, untestable)
from engine.science.targets import per_rate_seed_steps

CLAIM_ID = "lr_grows_with_batch_size"
CLAIM = "The learning rate must grow with the batch size (linear or square-root scaling)."
PRESET = "lr-scaling-grid"


def _best(rates: dict[float, list[float]]) -> tuple[float, float, float]:
    """(best rate, its median steps, the runner-up's median steps) over a batch size's rates."""
    medians = sorted((sorted(seeds)[len(seeds) // 2] if len(seeds) % 2 else
                      (sorted(seeds)[len(seeds) // 2 - 1] + sorted(seeds)[len(seeds) // 2]) / 2, rate)
                     for rate, seeds in rates.items())
    runner_up = medians[1][0] if len(medians) > 1 else math.inf
    return medians[0][1], medians[0][0], runner_up


def _spread(seeds: list[float]) -> float:
    finite = [s for s in seeds if math.isfinite(s)]
    return max(finite) - min(finite) if len(finite) > 1 else 0.0


def judge(context: Context) -> Finding:
    if len(context.rates()) < 2:
        return untestable(CLAIM_ID, CLAIM, "it has one learning rate per batch size, not a grid to find the best",
                          PRESET)
    if context.target is None:
        return untestable(CLAIM_ID, CLAIM, "no trial has finished an evaluation", PRESET)
    table = per_rate_seed_steps(context.run.trials, context.target)
    # The actual learning rate of each base rate (a scaling rule may have scaled it for the batch size).
    actual = {(t.batch_size, t.base_lr): t.lr for t in context.run.trials}
    best = {size: _best(rates) for size, rates in sorted(table.items()) if len(rates) >= 2}
    reached = [size for size, (_, steps, _) in best.items() if math.isfinite(steps)]
    if len(reached) < 2:
        return untestable(CLAIM_ID, CLAIM, f"fewer than two batch sizes reached the target {context.target:.1%} at "
                          "any learning rate of the grid", PRESET)
    small, large = reached[0], reached[-1]
    small_lr, large_lr = actual[(small, best[small][0])], actual[(large, best[large][0])]
    # A best rate is settled when the runner-up's median is further away than the seeds' spread at the best.
    unsettled = [size for size in (small, large)
                 if best[size][2] - best[size][1] <= _spread(table[size][best[size][0]])]
    if unsettled:
        verdict = INCONCLUSIVE
    else:
        verdict = SUPPORTED if large_lr > small_lr else CONTRADICTED
    evidence = (f"Best learning rate (fewest steps to {context.target:.1%}, median over seeds): {small_lr:g} at batch "
                f"size {small}, {large_lr:g} at {large}")
    evidence += (f"; at batch size {', '.join(map(str, unsettled))} the runner-up rate is within the seeds' spread, "
                 "so the best is not settled." if unsettled else ".")
    return Finding(CLAIM_ID, CLAIM, verdict, evidence,
                   {"batch_sizes": [small, large], "best_lr": [small_lr, large_lr]}, PRESET)
