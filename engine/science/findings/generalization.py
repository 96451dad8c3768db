"""Claim: larger batches generalize worse (the train-validation accuracy gap grows with the batch size)."""
from __future__ import annotations

from engine.science.findings.evidence import Context, Finding, compare, ends, mean, noise_of, seeds_plot, untestable

CLAIM_ID = "large_batches_generalize_worse"
CLAIM = "Larger batches generalize worse: the gap between training and validation accuracy grows with batch size."
PRESET = "generalization-label-noise"
TOLERANCE = 0.01       # one accuracy point, with a single seed
CAPTION = ("Final train minus validation accuracy: a dot per seed, the line their mean. The claim holds where "
           "the line rises to the right by more than the dots' spread.")


def judge(context: Context) -> Finding:
    gaps = context.by_batch_size("generalization_gap")
    pair = ends(gaps)
    if pair is None:
        return untestable(CLAIM_ID, CLAIM, "it needs the final accuracies of at least two batch sizes", PRESET)
    small, large = pair
    effect = mean(gaps[large]) - mean(gaps[small])
    noise, how = noise_of(gaps, pair, TOLERANCE)
    verdict = compare(effect, noise)
    evidence = (f"Train minus validation accuracy: {mean(gaps[small]) * 100:.1f} points at batch size {small}, "
                f"{mean(gaps[large]) * 100:.1f} at {large}; a difference of {effect * 100:+.1f} points against "
                f"{noise * 100:.1f} ({how}).")
    return Finding(CLAIM_ID, CLAIM, verdict, evidence,
                   {"batch_sizes": [small, large], "gap": [mean(gaps[small]), mean(gaps[large])], "effect": effect,
                    "noise": noise}, PRESET,
                   seeds_plot(gaps, "train − val. accuracy (points)", CAPTION, scale=100))
