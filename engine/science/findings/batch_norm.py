"""Claim: batch normalization suffers at small batches (its statistics over few examples are noisy)."""
from __future__ import annotations

from engine.science.findings.evidence import Context, Finding, compare, mean, noise_of, seeds_plot, untestable

CLAIM_ID = "batch_norm_suffers_small_batches"
CLAIM = "Batch normalization suffers at small batch sizes."
PRESET = "batch-norm"
TOLERANCE = 0.01
CAPTION = ("Best validation accuracy of the batch-norm model: a dot per seed, the line their mean. A dip at the "
           "smallest batch size, deeper than the dots' spread, supports the claim; preset 'demo' is the same "
           "model without batch norm.")


def judge(context: Context) -> Finding:
    if not context.config.get("model", {}).get("batch_norm", False):
        return untestable(CLAIM_ID, CLAIM, "its model has no batch normalization", PRESET)
    accuracy = {size: values for size, values in context.by_batch_size("best_val_accuracy").items() if values}
    if len(accuracy) < 2:
        return untestable(CLAIM_ID, CLAIM, "it needs the accuracy of at least two batch sizes", PRESET)
    smallest = min(accuracy)
    best = max((size for size in accuracy if size != smallest), key=lambda size: mean(accuracy[size]))
    effect = mean(accuracy[best]) - mean(accuracy[smallest])
    noise, how = noise_of(accuracy, (smallest, best), TOLERANCE)
    verdict = compare(effect, noise)
    evidence = (f"Best validation accuracy with batch norm: {mean(accuracy[smallest]):.1%} at the smallest batch size "
                f"{smallest}, {mean(accuracy[best]):.1%} at {best}, the best of the others ({effect * 100:+.1f} points, "
                f"against {noise * 100:.1f}: {how}). Compare with the same model without batch norm (preset 'demo').")
    return Finding(CLAIM_ID, CLAIM, verdict, evidence,
                   {"batch_sizes": [smallest, best], "best_val_accuracy": [mean(accuracy[smallest]),
                                                                            mean(accuracy[best])],
                    "effect": effect, "noise": noise}, PRESET,
                   seeds_plot(accuracy, "best validation accuracy (%)", CAPTION, scale=100))
