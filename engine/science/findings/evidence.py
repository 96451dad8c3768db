"""What every claim's verdict is made of: per-batch-size values over seeds, the one rule that turns an effect
and the seeds' spread into supported / contradicted / inconclusive, and the evidence plot that shows both."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from engine.analysis import TrialSummary, memory_measure, summarize_run
from engine.runfile import RunData

SUPPORTED, CONTRADICTED, INCONCLUSIVE, UNTESTABLE = "supported", "contradicted", "inconclusive", "untestable"


@dataclass(frozen=True)
class Line:
    """A line over an evidence plot's points: the seeds' summary, a fit or a rule, named as its legend says it."""
    name: str
    batch_sizes: list[float]
    values: list[float]
    dashed: bool = False


@dataclass(frozen=True)
class EvidencePlot:
    """What a finding's plot draws, against batch size on a log axis, in the units `y_label` names: one point per
    seed (the spread the verdict weighs) and the lines (the first is what the verdict compares: the seeds' mean
    or median). The finding computes every number here; a view only draws them."""
    y_label: str
    caption: str                   # how to read it, in one sentence
    batch_sizes: list[int]         # the points, one per seed and batch size
    values: list[float]
    lines: list[Line]
    log_y: bool = False

    def document(self) -> dict:
        """The plot as JSON holds it (report --json): NaN never appears, as no point or line value is NaN."""
        return {"x_label": "batch size", "y_label": self.y_label, "log_x": True, "log_y": self.log_y,
                "caption": self.caption,
                "points": [{"batch_size": size, "value": value}
                           for size, value in zip(self.batch_sizes, self.values)],
                "lines": [{"name": line.name, "batch_size": list(line.batch_sizes), "value": list(line.values),
                           "dashed": line.dashed} for line in self.lines]}


@dataclass(frozen=True)
class Finding:
    claim_id: str
    claim: str                     # the article's claim, in its words
    verdict: str                   # SUPPORTED, CONTRADICTED, INCONCLUSIVE or UNTESTABLE
    evidence: str                  # the numbers behind the verdict, in words
    numbers: dict = field(default_factory=dict)
    preset: str = ""               # the bundled preset that settles the claim (always named; the fix when untestable)
    plot: EvidencePlot | None = None   # None when untestable


@dataclass
class Context:
    """A run as the claims read it: trial summaries at the target, and the run's config and memory measure."""
    run: RunData
    target: float | None
    summaries: list[TrialSummary]
    memory_measure: str

    @property
    def config(self) -> dict:
        try:
            return self.run.config
        except Exception:  # noqa: BLE001 — a hand-made run without a config: every key takes its default
            return {}

    def by_batch_size(self, key: str) -> dict[int, list[float]]:
        """{batch size: finite values of a TrialSummary field, one per seed}, each batch size at its own best
        base learning rate (by mean best validation accuracy) when the run has a grid of them."""
        groups: dict[int, dict[float, list[TrialSummary]]] = defaultdict(lambda: defaultdict(list))
        for summary in self.summaries:
            groups[summary.batch_size][summary.base_lr].append(summary)
        values = {}
        for batch_size, rates in sorted(groups.items()):
            best = max(rates.values(), key=lambda seeds: _mean_or_low([s.best_val_accuracy for s in seeds]))
            values[batch_size] = [float(getattr(s, key)) for s in best
                                  if isinstance(getattr(s, key), (int, float)) and math.isfinite(getattr(s, key))]
        return values

    def rates(self) -> list[float]:
        return sorted({summary.base_lr for summary in self.summaries})


def _mean_or_low(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else -math.inf


def context_of(run: RunData, target: float | None) -> Context:
    return Context(run, target, summarize_run(run, target), memory_measure(run))


def spread(values: list[float]) -> float:
    """Highest minus lowest over seeds; NaN with a single seed."""
    return max(values) - min(values) if len(values) > 1 else math.nan


def compare(effect: float, noise: float, claim_holds_when_positive: bool = True) -> str:
    """The shared rule: inconclusive when the seeds' spread (noise) covers the effect, else the effect's sign."""
    if not math.isfinite(effect) or abs(effect) <= noise:
        return INCONCLUSIVE
    return SUPPORTED if (effect > 0) == claim_holds_when_positive else CONTRADICTED


def ends(values: dict[int, list[float]]) -> tuple[int, int] | None:
    """The smallest and largest batch size that have values, or None with fewer than two."""
    sizes = [size for size, seeds in values.items() if seeds]
    return (sizes[0], sizes[-1]) if len(sizes) >= 2 else None


def noise_of(values: dict[int, list[float]], sizes: tuple[int, ...], tolerance: float) -> tuple[float, str]:
    """The larger seeds' spread at these batch sizes, at least `tolerance`; and how it was found, in words."""
    spreads = [spread(values[size]) for size in sizes]
    measured = [s for s in spreads if math.isfinite(s)]
    if not measured:
        return tolerance, "one seed per batch size, so the tolerance"
    return max(max(measured), tolerance), "the larger spread over seeds"


@dataclass(frozen=True)
class RelativeChange:
    """The larger batch size's value as a share of the smaller's, against the seeds' noise on that scale."""
    base: float            # the smaller batch size's mean
    other: float           # the larger batch size's mean
    effect: float          # other / base - 1, averaged over the larger batch size's seeds
    noise: float
    how: str               # how the noise was found, in words
    verdict: str           # compare(effect, noise)


def relative_change(values: dict[int, list[float]], pair: tuple[int, int], tolerance: float) -> RelativeChange:
    """Relative to the smaller batch size's mean, so the tolerance is a share, whatever the units or the
    machine's speed."""
    small, large = pair
    base = mean(values[small])
    relative = {size: [value / base for value in values[size]] for size in pair}
    effect = mean(relative[large]) - 1
    noise, how = noise_of(relative, pair, tolerance)
    return RelativeChange(base, mean(values[large]), effect, noise, how, compare(effect, noise))


def seeds_plot(values: dict[int, list[float]], y_label: str, caption: str, *, scale: float = 1.0,
               log_y: bool = False, lines: tuple[Line, ...] = ()) -> EvidencePlot:
    """Each seed's value and the seeds' mean per batch size (the mean the verdict compares), times `scale` (the
    unit `y_label` names), then `lines`."""
    sizes = [size for size, seeds in values.items() if seeds]
    summary = Line("mean over seeds", [float(size) for size in sizes], [mean(values[size]) * scale for size in sizes])
    return EvidencePlot(y_label, caption, [size for size in sizes for _ in values[size]],
                        [value * scale for size in sizes for value in values[size]], [summary, *lines], log_y)


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def untestable(claim_id: str, claim: str, why: str, preset: str) -> Finding:
    return Finding(claim_id, claim, UNTESTABLE, f"Cannot be tested by this run: {why}. Run the preset '{preset}'.",
                   preset=preset)
