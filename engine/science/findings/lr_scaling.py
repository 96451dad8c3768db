"""Claim: the best learning rate grows with the batch size, by the linear rule (lr ∝ B) or the square-root rule
(lr ∝ √B).

Tested the Shallue way: each batch size's best learning rate on a grid (fewest steps to the target, median over
seeds), then the least-squares slope of log(best lr) against log(batch size): 1 is the linear rule, ½ the
square-root rule, 0 no growth. Its interval is a bootstrap over seeds, widened by the grid's resolution (a best
rate is only known to within half a grid step either side) and left open on a side where a best rate is at the
grid's edge (the true best may lie beyond it). The rules whose slope the interval holds are the ones the run
cannot rule out: exactly one is the verdict, several is inconclusive."""
from __future__ import annotations

import math
import statistics
from collections import defaultdict

import numpy as np

from engine.science.findings.evidence import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, Context, EvidencePlot, Finding,
                                              Line, untestable)
from engine.science.targets import NO_RESULT_STATUSES, crossing

CLAIM_ID = "lr_grows_with_batch_size"
CLAIM = ("The best learning rate grows with the batch size, by the linear rule (lr ∝ B) or the square-root rule "
         "(lr ∝ √B).")
PRESET = "lr-scaling-grid"
LINEAR, SQUARE_ROOT, NO_GROWTH, NEITHER, UNDECIDED = "linear", "square_root", "no_growth", "neither", "undecided"
RULE_SLOPES = {LINEAR: 1.0, SQUARE_ROOT: 0.5, NO_GROWTH: 0.0}
RULE_WORDS = {LINEAR: "the linear rule (slope 1)", SQUARE_ROOT: "the square-root rule (slope ½)",
              NO_GROWTH: "no growth (slope 0)"}
BOOTSTRAP_REPLICATES = 200
BOOTSTRAP_SEED = 0                 # the same run always gets the same interval
INTERVAL = (2.5, 97.5)
CAPTION = ("Best learning rate at each batch size: a dot per seed (its own best on the grid), the line the best by "
           "median over seeds; dashed, the linear and square-root rules from the smallest batch size. The verdict "
           "is the fitted slope's interval.")

# {batch size: {learning rate: {seed: steps to target, inf when never}}}
Table = dict[int, dict[float, dict[int, float]]]


def _table(context: Context) -> Table:
    table: Table = defaultdict(lambda: defaultdict(dict))
    for trial in context.run.trials:
        if trial.status not in NO_RESULT_STATUSES:
            found = crossing(trial, context.target)
            # The rate the trial trained with: a scaling rule may have scaled its base rate for the batch size.
            table[trial.batch_size][trial.lr][trial.seed] = math.inf if found.censored else found.steps
    return table


def _best(rates: dict[float, dict[int, float]], seeds: list[int] | None = None) -> float | None:
    """The rate with the fewest steps, median over `seeds` (drawn with repeats; None: all), or None when no rate
    reached the target."""
    best, fewest = None, math.inf
    for rate, steps in sorted(rates.items()):
        chosen = [steps[seed] for seed in seeds if seed in steps] if seeds is not None else list(steps.values())
        # statistics.median: a hundredth of np.median's time on a few seeds, and the bootstrap calls it
        # replicates × batch sizes × rates times.
        if chosen and statistics.median(chosen) < fewest:
            best, fewest = rate, statistics.median(chosen)
    return best


def _slope(best: dict[int, float]) -> tuple[float, float]:
    """(slope, intercept) of log(best rate) against log(batch size)."""
    slope, intercept = np.polyfit(np.log(list(best)), np.log(list(best.values())), 1)
    # Rounding error on a flat line is no slope: evidence says 0.00, not -0.00.
    return round(float(slope), 12) + 0.0, float(intercept)


def _bootstrap(table: Table, sizes: list[int]) -> list[float]:
    """Slopes over seeds drawn with repeats at each batch size (the same draw for all its rates); empty with one
    seed per batch size, where there is nothing to draw."""
    seeds = {size: sorted({seed for steps in table[size].values() for seed in steps}) for size in sizes}
    if all(len(ids) < 2 for ids in seeds.values()):
        return []
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    slopes = []
    for _ in range(BOOTSTRAP_REPLICATES):
        best = {}
        for size in sizes:
            rate = _best(table[size], list(rng.choice(seeds[size], size=len(seeds[size]), replace=True)))
            if rate is not None:
                best[size] = rate
        if len(best) >= 2:
            slopes.append(_slope(best)[0])
    return slopes


def _interval(table: Table, best: dict[int, float], slope: float) -> tuple[float, float, str]:
    """The slope's interval (seeds, then the grid's resolution and edges) and which best rates are at an edge, in
    words ("" when none)."""
    slopes = _bootstrap(table, list(best))
    low, high = (np.percentile(slopes, INTERVAL) if slopes else (slope, slope))
    x = np.log(list(best))
    offsets = x - x.mean()
    # Half the widest step of any batch size's grid, in log rate: how far a best rate may be from the true best.
    half_step = max(float(np.max(np.diff(np.log(sorted(table[size]))))) for size in best) / 2
    reach = half_step * float(np.sum(np.abs(offsets)) / np.sum(offsets ** 2))
    low, high = float(low) - reach, float(high) + reach
    edges = {"largest": [], "smallest": []}
    for size, offset in zip(best, offsets):
        rates = sorted(table[size])
        # A best rate at the grid's top could be higher still: that raises the slope where the batch size is
        # above the mean (log), lowers it below; the bottom edge the other way round.
        edge = 1 if best[size] == rates[-1] else -1 if best[size] == rates[0] else 0
        if edge and offset:
            if edge * offset > 0:
                high = math.inf
            else:
                low = -math.inf
            edges["largest" if edge > 0 else "smallest"].append(str(size))
    notes = [f"the grid's {end} rate is the best at batch size {', '.join(sizes)}" for end, sizes in edges.items()
             if sizes]
    return low, high, ("; " + " and ".join(notes) + ", so the true best may lie beyond the grid" if notes else "")


def _rule(low: float, high: float) -> tuple[str, str]:
    held = [rule for rule, slope in RULE_SLOPES.items() if low <= slope <= high]
    if len(held) > 1:
        return UNDECIDED, INCONCLUSIVE
    if held:
        return held[0], CONTRADICTED if held[0] == NO_GROWTH else SUPPORTED
    return NEITHER, CONTRADICTED


def judge(context: Context) -> Finding:
    if len(context.rates()) < 2:
        return untestable(CLAIM_ID, CLAIM, "it has one learning rate per batch size, not a grid to find the best",
                          PRESET)
    if context.target is None:
        return untestable(CLAIM_ID, CLAIM, "no trial has finished an evaluation", PRESET)
    table = _table(context)
    best = {size: rate for size, rates in sorted(table.items()) if len(rates) >= 2
            for rate in [_best(rates)] if rate is not None}
    if len(best) < 2:
        return untestable(CLAIM_ID, CLAIM, f"fewer than two batch sizes reached the target {context.target:.1%} at "
                          "any learning rate of the grid", PRESET)
    slope, intercept = _slope(best)
    low, high, notes = _interval(table, best, slope)
    rule, verdict = _rule(low, high)
    shown = ", ".join(f"{rate:g} at {size}" for size, rate in best.items())
    interval = f"{low:.2f} to {high:.2f}".replace("inf", "∞")
    evidence = (f"Best learning rate (fewest steps to {context.target:.1%}, median over seeds) at each batch size: "
                f"{shown}. Log(best rate) against log(batch size) has slope {slope:.2f}, 95% interval {interval} "
                "(seeds and the grid's resolution)")
    evidence += notes
    if rule == UNDECIDED:
        held = [RULE_WORDS[name] for name, value in RULE_SLOPES.items() if low <= value <= high]
        evidence += f": the interval holds {', '.join(held[:-1])} and {held[-1]}, so this run cannot tell them apart."
    elif rule == NEITHER:
        evidence += (f": the best rate {'grows' if slope > 0 else 'falls'} with the batch size, but by neither "
                     "rule.")
    else:
        evidence += f": {RULE_WORDS[rule]}."
    numbers = {"batch_sizes": list(best), "best_lr": list(best.values()), "slope": slope, "slope_low": low,
               "slope_high": high, "rule": rule}
    return Finding(CLAIM_ID, CLAIM, verdict, evidence, numbers, PRESET, _plot(table, best, slope, intercept))


def _plot(table: Table, best: dict[int, float], slope: float, intercept: float) -> EvidencePlot:
    points = [(size, rate) for size in best
              for seed in sorted({seed for steps in table[size].values() for seed in steps})
              for rate in [_best(table[size], [seed])] if rate is not None]
    sizes = np.asarray(list(best), float)
    smallest, first = sizes[0], best[int(sizes[0])]
    lines = [Line("best rate, median over seeds", sizes.tolist(), list(best.values())),
             Line(f"fitted slope {slope:.2f}", sizes.tolist(), np.exp(intercept + slope * np.log(sizes)).tolist()),
             Line("linear rule", sizes.tolist(), (first * sizes / smallest).tolist(), dashed=True),
             Line("square-root rule", sizes.tolist(), (first * np.sqrt(sizes / smallest)).tolist(), dashed=True)]
    return EvidencePlot("learning rate", CAPTION, [size for size, _ in points], [rate for _, rate in points], lines,
                        log_y=True)
