"""What a search found, read from its run file alone: every point with its seeds' values, the best points,
what was pruned and when, and where and why the search ended (its strategy rebuilt from the file, as a resume
rebuilds it). The report, `report --json` and the app's Search tab read this."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine import schema
from engine.config import ExperimentConfig, parse_config
from engine.errors import ConfigError
from engine.runfile import RunData, TrialData
from engine.search.results import OBJECTIVE_LABELS, better, minimize, point_score

# The three views of a search (the app's Search tab, `report --png`), each with the one line that says how to
# read it.
PANEL_TITLES = {"progress": "Score per point", "where": "Batch size × learning rate", "batch": "Score vs batch size"}
PANEL_CAPTIONS = {
    "progress": "Each dot is one point tried, in order (its mean over seeds); the line is the best so far. "
                "Where the line goes flat, more points stopped helping. ✕ pruned (stopped early), ○ no score.",
    "where": "Where the search looked: one dot per point, brighter is better. A Bayesian search crowds the "
             "region it expects to be best. ✕ pruned as clearly worse; ○ no score (target missed, or failed).",
    "batch": "The score against batch size: small dots are single seeds, large dots their mean; the bar spans "
             "the seeds. Two points are only told apart when their bars do not overlap.",
}

# How many of the best points the report lists.
BEST_SHOWN = 3


@dataclass
class SearchPoint:
    point: int                      # in the order proposed
    batch_size: int
    lr: float
    values: list[float]             # each trained seed's objective value (NaN: none)
    statuses: list[str]
    pruned_step: int = -1           # the step the pruner stopped it at; -1 when not pruned
    pruned_reason: str = ""

    def score(self, objective: str) -> float:
        """The mean over seeds, or NaN when the point has no score (pruned, a seed without a value)."""
        value = point_score(objective, self.values)
        return value if math.isfinite(value) and not self.pruned else math.nan

    @property
    def pruned(self) -> bool:
        return schema.PRUNED in self.statuses

    @property
    def spread(self) -> float:
        finite = [v for v in self.values if math.isfinite(v)]
        return float(np.ptp(finite)) if len(finite) > 1 else math.nan


@dataclass
class SearchSummary:
    strategy: str
    objective: str
    objective_label: str
    lower_is_better: bool
    target_accuracy: float | None
    points: list[SearchPoint]
    best: list[SearchPoint]         # the best points, best first
    ties: list[int] = field(default_factory=list)   # points of `best` not better than the first beyond the spread
    conclusion: str = ""

    @property
    def pruned(self) -> list[SearchPoint]:
        return [p for p in self.points if p.pruned]

    def best_so_far(self) -> list[float]:
        """After each point in order, the best score so far (NaN until one has a score)."""
        best, out = math.nan, []
        for point in self.points:
            score = point.score(self.objective)
            if math.isfinite(score) and (not math.isfinite(best) or
                                         (score < best if self.lower_is_better else score > best)):
                best = score
            out.append(best)
        return out

    def to_json(self) -> dict:
        def number(value: float):
            return value if math.isfinite(value) else None

        def entry(p: SearchPoint) -> dict:
            return {"point": p.point, "batch_size": p.batch_size, "lr": p.lr, "score": number(p.score(self.objective)),
                    "seed_values": [number(v) for v in p.values], "statuses": p.statuses,
                    "pruned_step": p.pruned_step if p.pruned else None, "pruned_reason": p.pruned_reason or None}
        return {"strategy": self.strategy, "objective": self.objective, "lower_is_better": self.lower_is_better,
                "target_accuracy": self.target_accuracy, "points": [entry(p) for p in self.points],
                "best": [entry(p) for p in self.best], "ties_with_best": self.ties,
                "pruned_points": len(self.pruned), "conclusion": self.conclusion}


def search_points(run: RunData) -> list[SearchPoint]:
    by_point: dict[int, list[TrialData]] = {}
    for trial in run.trials:
        if trial.search_point >= 0 and trial.status not in (schema.RUNNING, schema.CANCELLED):
            by_point.setdefault(trial.search_point, []).append(trial)
    points = []
    for number, trials in sorted(by_point.items()):
        trials.sort(key=lambda t: t.seed)
        pruned = next((t for t in trials if t.status == schema.PRUNED), None)
        points.append(SearchPoint(point=number, batch_size=trials[0].batch_size, lr=trials[0].lr,
                                  values=[t.objective for t in trials], statuses=[t.status for t in trials],
                                  pruned_step=pruned.pruned_step if pruned else -1,
                                  pruned_reason=pruned.error if pruned else ""))
    return points


def summarize_search(run: RunData) -> SearchSummary | None:
    """The search in a run file, or None when the run is a grid (or a file written before searches existed)."""
    if not any(trial.search_point >= 0 for trial in run.trials):
        return None
    try:
        config = parse_config(run.config)
    except ConfigError:
        config = None      # a config that no longer validates here (its data file moved): no strategy to rebuild
    sweep = run.config.get("sweep", {})
    objective = sweep.get("objective", "best_val_accuracy")
    points = search_points(run)
    scored = [p for p in points if math.isfinite(p.score(objective))]
    scored.sort(key=lambda p: p.score(objective), reverse=not minimize(objective))
    best = scored[:BEST_SHOWN]
    ties = [p.point for p in best[1:] if not better(objective, best[0].values, p.values)]
    target = sweep.get("target_accuracy") if objective.endswith("_to_target") else None
    return SearchSummary(strategy=sweep.get("strategy", ""), objective=objective,
                         objective_label=OBJECTIVE_LABELS[objective], lower_is_better=minimize(objective),
                         target_accuracy=target, points=points, best=best, ties=ties,
                         conclusion=_conclusion(config, run) if config is not None else "")


def _conclusion(config: ExperimentConfig, run: RunData) -> str:
    """Where and why the search ended, by replaying the file to its strategy; '' when it has not ended."""
    from engine.search import make_strategy
    strategy = make_strategy(config, [])
    history = {t.name: t for t in run.trials if t.status not in (schema.RUNNING, schema.CANCELLED)}
    if strategy.propose(history) is not None:
        return ""
    return strategy.conclusion


def search_report_lines(search: SearchSummary) -> list[str]:
    """The search's part of `report`: the best points, what was pruned and when, where the search ended."""
    direction = "lower is better" if search.lower_is_better else "higher is better"
    target = f", target {search.target_accuracy:.1%}" if search.target_accuracy else ""
    lines = [f"Search ({search.strategy}): {len(search.points)} points trained, objective {search.objective_label} "
             f"(mean over seeds, {direction}{target})"]
    for rank, point in enumerate(search.best, 1):
        lr = f", lr {point.lr:.4g}"
        spread = f" ± {point.spread / 2:.3g}" if math.isfinite(point.spread) else ""
        tie = " (not better than #1 beyond the seeds' spread)" if point.point in search.ties else ""
        lines.append(f"  #{rank}: batch size {point.batch_size}{lr}: {point.score(search.objective):.4g}{spread} "
                     f"(point {point.point + 1}){tie}")
    if not search.best:
        lines.append("  no point has a score yet")
    pruned = search.pruned
    lines.append(f"  pruned: {len(pruned)} of {len(search.points)} points" + (":" if pruned else ""))
    for point in pruned:
        lines.append(f"    point {point.point + 1} (batch size {point.batch_size}, lr {point.lr:.4g}): "
                     f"{point.pruned_reason}")
    if search.conclusion:
        lines.append(f"  {search.conclusion}")
    return lines


def search_headline(search: SearchSummary) -> str:
    """The search in one or two sentences: the best point, how many were pruned, where it ended."""
    words = [f"{search.strategy} search over {len(search.points)} points, scored by {search.objective_label} "
             f"({'lower' if search.lower_is_better else 'higher'} is better, mean over seeds)."]
    if search.best:
        best: SearchPoint = search.best[0]
        words.append(f"Best: batch size {best.batch_size} at learning rate {best.lr:.4g}, "
                     f"{best.score(search.objective):.4g}.")
        if search.ties:
            words.append(f"{len(search.ties)} other point{'s are' if len(search.ties) > 1 else ' is'} as good "
                         "within the seeds' spread.")
    if search.conclusion:   # it counts the pruned points too
        words.append(search.conclusion[0].upper() + search.conclusion[1:] + ".")
    elif search.pruned:
        words.append(f"{len(search.pruned)} pruned so far.")
    return " ".join(words)
