"""Claim: small batches need fewer epochs (fewer examples) to reach a given accuracy."""
from __future__ import annotations

from engine.science.findings.evidence import Context, Finding, compare, ends, mean, noise_of, untestable

CLAIM_ID = "small_batches_fewer_epochs"
CLAIM = "Small batches need fewer epochs: fewer examples to reach a given accuracy."
PRESET = "critical-batch"
TOLERANCE = 0.10       # a tenth of the examples, with a single seed


def judge(context: Context) -> Finding:
    if context.target is None:
        return untestable(CLAIM_ID, CLAIM, "no trial has finished an evaluation", PRESET)
    samples = {size: values for size, values in context.by_batch_size("samples_to_target").items() if values}
    pair = ends(samples)
    if pair is None:
        return untestable(CLAIM_ID, CLAIM, f"fewer than two batch sizes reached the target {context.target:.1%}",
                          PRESET)
    small, large = pair
    base = mean(samples[small])
    relative = {size: [value / base for value in samples[size]] for size in pair}
    effect = mean(relative[large]) - 1
    noise, how = noise_of(relative, pair, TOLERANCE)
    verdict = compare(effect, noise)
    evidence = (f"Examples to {context.target:.1%} validation accuracy: {base:,.0f} at batch size {small}, "
                f"{mean(samples[large]):,.0f} at {large} ({effect:+.0%}, against {noise:.0%}: {how}).")
    return Finding(CLAIM_ID, CLAIM, verdict, evidence,
                   {"batch_sizes": [small, large], "samples_to_target": [base, mean(samples[large])],
                    "effect": effect, "noise": noise},
                   PRESET)
