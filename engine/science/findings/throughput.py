"""Claim: large batches process more examples per second."""
from __future__ import annotations

from engine.science.findings.evidence import Context, Finding, compare, ends, mean, noise_of, untestable

CLAIM_ID = "large_batches_faster_per_example"
CLAIM = "Large batches process more examples per second."
PRESET = "demo"
TOLERANCE = 0.10       # a tenth of the throughput, with a single seed: timing moves that much between runs


def judge(context: Context) -> Finding:
    rates = context.by_batch_size("samples_per_s")
    pair = ends(rates)
    if pair is None:
        return untestable(CLAIM_ID, CLAIM, "it needs the throughput of at least two batch sizes", PRESET)
    small, large = pair
    # Relative to the smaller batch's throughput, so the tolerance is a share, whatever the machine's speed.
    base = mean(rates[small])
    relative = {size: [value / base for value in rates[size]] for size in pair}
    effect = mean(relative[large]) - 1
    noise, how = noise_of(relative, pair, TOLERANCE)
    verdict = compare(effect, noise)
    evidence = (f"Training throughput {base:,.0f} examples/s at batch size {small}, {mean(rates[large]):,.0f} at "
                f"{large} ({effect:+.0%}, against {noise:.0%}: {how}).")
    return Finding(CLAIM_ID, CLAIM, verdict, evidence,
                   {"batch_sizes": [small, large], "samples_per_s": [base, mean(rates[large])], "effect": effect,
                    "noise": noise}, PRESET)
