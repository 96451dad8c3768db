"""What a strategy is told about a finished trial, and the objective it is scored by.

The objective reads the trial's epochs through engine.analysis.summarize_trial, the one definition of time,
samples and accuracy to a target that the report and the app use too.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine import schema
from engine.analysis import summarize_trial
from engine.config import SweepConfig
from engine.events import TrialSpec
from engine.runfile import TrialData

# Each of engine.config.OBJECTIVES -> (the TrialSummary field it reads, whether lower is better).
OBJECTIVE_FIELDS: dict[str, tuple[str, bool]] = {
    "time_to_target": ("time_to_target_s", True),
    "samples_to_target": ("samples_to_target", True),
    "best_val_accuracy": ("best_val_accuracy", False),
    "final_val_loss": ("final_val_loss", True),
}
# What each objective is, in words, with its unit, for reports and captions.
OBJECTIVE_LABELS = {"time_to_target": "training time to target (s)", "samples_to_target": "samples to target",
                    "best_val_accuracy": "best validation accuracy", "final_val_loss": "final validation loss"}
# A point improves on another only by more than this share of the other's value (start-small's tolerance, and
# the floor under "better beyond the seeds' spread" when a point has one seed).
TOLERANCE = 0.01


@dataclass(frozen=True)
class TrialResult:
    """A trial that ended, as the run file holds it (live: as the recorder saw it)."""
    spec: TrialSpec
    trial: TrialData

    @property
    def status(self) -> str:
        return self.trial.status


def minimize(objective: str) -> bool:
    return OBJECTIVE_FIELDS[objective][1]


def worst(objective: str) -> float:
    """The score of a point that has no value (a target never reached, a diverged or failed trial): worse than
    any measured one."""
    return math.inf if minimize(objective) else 0.0


def trial_objective(sweep: SweepConfig, trial: TrialData) -> float:
    """A completed trial's own value of the objective; NaN when it has none (the target never reached, or the
    trial did not complete: pruned, diverged, failed)."""
    if trial.status != schema.COMPLETED:
        return math.nan
    target = sweep.target_accuracy if sweep.objective.endswith("_to_target") else None
    return float(getattr(summarize_trial(trial, target), OBJECTIVE_FIELDS[sweep.objective][0]))


def point_score(objective: str, values: Sequence[float]) -> float:
    """The point's score for the optimizer: the mean over its seeds, or the worst score when any seed has no
    value (the point is then not reliably good)."""
    if not values or any(not math.isfinite(v) for v in values):
        return worst(objective)
    return float(np.mean(values))


def better(objective: str, a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether the point with seed values `a` is better than the one with `b` beyond the seeds' spread: its mean
    is better by more than the standard error of the difference of the means, and by more than TOLERANCE of
    b's mean (with one seed per point only the tolerance applies)."""
    score_a, score_b = point_score(objective, a), point_score(objective, b)
    if not math.isfinite(score_a):
        return False
    if not math.isfinite(score_b):
        return True
    gain = score_b - score_a if minimize(objective) else score_a - score_b
    error = math.sqrt(sum(np.var(v, ddof=1) / len(v) for v in (a, b) if len(v) > 1))
    return gain > max(error, TOLERANCE * abs(score_b))


def _columns(metrics: Sequence[schema.Metric], rows: Sequence[dict[str, float]]) -> dict[str, np.ndarray]:
    return {m.name: np.asarray([row[m.name] for row in rows], dtype=m.dtype) for m in metrics}


def trial_data(spec: TrialSpec, status: str, error: str, epochs: Sequence[dict[str, float]],
               evaluations: Sequence[dict[str, float]] = ()) -> TrialData:
    """A trial's record built from its events as the file will read it back, with what objectives read: its
    epoch rows and its scheduled evaluations (step rows are left empty)."""
    return TrialData(name=spec.name, batch_size=spec.batch_size, seed=spec.seed, lr=spec.lr, base_lr=spec.base_lr,
                     status=status, error=error, parameter_count=0, steps_per_epoch=0,
                     epoch=_columns(schema.EPOCH_METRICS, epochs), step=_columns(schema.STEP_METRICS, ()),
                     eval=_columns(schema.EVAL_METRICS, evaluations), proposed_by=spec.proposed_by,
                     search_point=spec.search_point)
