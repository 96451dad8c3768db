"""Claim: large batches process more examples per second."""
from __future__ import annotations

from engine.science.findings.evidence import Context, Finding, ends, relative_change, seeds_plot, untestable

CLAIM_ID = "large_batches_faster_per_example"
CLAIM = "Large batches process more examples per second."
PRESET = "demo"
TOLERANCE = 0.10       # a tenth of the throughput, with a single seed: timing moves that much between runs
CAPTION = ("Training examples per second over each trial: a dot per seed, the line their mean. The claim holds "
           "where the line rises to the right by more than the dots' spread.")


def judge(context: Context) -> Finding:
    rates = context.by_batch_size("samples_per_s")
    pair = ends(rates)
    if pair is None:
        return untestable(CLAIM_ID, CLAIM, "it needs the throughput of at least two batch sizes", PRESET)
    small, large = pair
    change = relative_change(rates, pair, TOLERANCE)
    evidence = (f"Training throughput {change.base:,.0f} examples/s at batch size {small}, {change.other:,.0f} at "
                f"{large} ({change.effect:+.0%}, against {change.noise:.0%}: {change.how}).")
    return Finding(CLAIM_ID, CLAIM, change.verdict, evidence,
                   {"batch_sizes": [small, large], "samples_per_s": [change.base, change.other],
                    "effect": change.effect, "noise": change.noise}, PRESET,
                   seeds_plot(rates, "examples/s", CAPTION, log_y=True))
