"""Claim: small batches need fewer epochs (fewer examples) to reach a given accuracy."""
from __future__ import annotations

from engine.science.findings.evidence import Context, Finding, ends, relative_change, seeds_plot, untestable

CLAIM_ID = "small_batches_fewer_epochs"
CLAIM = "Small batches need fewer epochs: fewer examples to reach a given accuracy."
PRESET = "critical-batch"
TOLERANCE = 0.10       # a tenth of the examples, with a single seed
CAPTION = ("Examples trained on before reaching the target: a dot per seed (seeds that never reached it have none), "
           "the line their mean. The claim holds where the line rises to the right beyond the dots' spread.")


def judge(context: Context) -> Finding:
    if context.target is None:
        return untestable(CLAIM_ID, CLAIM, "no trial has finished an evaluation", PRESET)
    samples = {size: values for size, values in context.by_batch_size("samples_to_target").items() if values}
    pair = ends(samples)
    if pair is None:
        return untestable(CLAIM_ID, CLAIM, f"fewer than two batch sizes reached the target {context.target:.1%}",
                          PRESET)
    small, large = pair
    change = relative_change(samples, pair, TOLERANCE)
    evidence = (f"Examples to {context.target:.1%} validation accuracy: {change.base:,.0f} at batch size {small}, "
                f"{change.other:,.0f} at {large} ({change.effect:+.0%}, against {change.noise:.0%}: {change.how}).")
    return Finding(CLAIM_ID, CLAIM, change.verdict, evidence,
                   {"batch_sizes": [small, large], "samples_to_target": [change.base, change.other],
                    "effect": change.effect, "noise": change.noise},
                   PRESET, seeds_plot(samples, "examples to target", CAPTION, log_y=True))
