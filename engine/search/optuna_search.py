"""Random and Bayesian (TPE) search on Optuna, through its ask-and-tell interface.

Each point the sampler proposes is trained once per seed; the sampler is told the point's score (the mean over
seeds, engine.search.results.point_score). The study lives in memory: no database is created. It is rebuilt
from the run file by proposing again from the same seed and telling the sampler the stored results in the same
order (see `propose`), so the next proposals after a resume are those an uninterrupted search would make.

Pruning: the first seed of a point reports its evaluations to Optuna's pruner; when the pruner says stop, that
trial ends `pruned` and the point's other seeds are not trained. Points are compared at the same number of
examples seen, not at the same step or evaluation count (a large batch reaches the schedule's first points in
its first steps, all at once): Optuna's "step" is the examples seen on a log scale, EVALUATION_POSITIONS per
tenfold, and a trial reports the first evaluation in each. Nothing is pruned in a trial's first epoch of
examples, whose results say little about where a point ends. The value reported is the one the objective moves
with: validation error (1 - accuracy) for the *_to_target objectives, validation accuracy for best_val_accuracy,
validation loss for final_val_loss.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping

import numpy as np
import optuna

from engine import schema
from engine.config import ExperimentConfig
from engine.events import TrialSpec
from engine.runfile import TrialData
from engine.search.results import TrialResult, minimize, point_score, trial_objective
from engine.search.shared import shared_storage
from engine.search.space import lr_searched, point_trials, powers_of_two
from engine.train import total_steps

# A fixed name: Hyperband places trials into brackets by a checksum of the study's name and the trial number.
STUDY_NAME = "batch-size-lab"
# Median rule: no pruning until this many points have finished.
MEDIAN_STARTUP_POINTS = 4
# Where evaluations are compared: examples seen, on a log scale, this many positions per tenfold (within 33%).
EVALUATION_POSITIONS = 8
# TPE draws this share of the points at random before modelling (at least 3, at most Optuna's default of 10).
TPE_STARTUP_SHARE = 0.3


def _sampler(config: ExperimentConfig, offset: int) -> optuna.samplers.BaseSampler:
    sweep = config.sweep
    seed = (sweep.search_seed + offset) % 2**32
    if sweep.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = min(10, max(3, round(TPE_STARTUP_SHARE * sweep.trials)))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)


def evaluation_position(samples: float) -> int:
    """Optuna's step for an evaluation after `samples` examples: equal for points that have seen about as many."""
    return int(EVALUATION_POSITIONS * math.log10(max(samples, 1)))


def _pruner(config: ExperimentConfig, train_size: int) -> optuna.pruners.BasePruner:
    kind = config.sweep.pruner
    first_epoch = evaluation_position(train_size)
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_POINTS, n_warmup_steps=first_epoch)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, first_epoch), max_resource="auto")
    return optuna.pruners.NopPruner()


def evaluation_rows(trial: TrialData) -> dict[str, np.ndarray]:
    """The evaluations the pruner heard while the trial trained: the scheduled ones where the file has them
    (schema.EVAL_GROUP), else the epoch rows."""
    scheduled = getattr(trial, "eval", None)
    return scheduled if scheduled is not None and len(scheduled["step"]) else trial.epoch


def intermediate(objective: str, metrics: Mapping[str, float]) -> tuple[float, str]:
    """The value a trial reports to the pruner after an evaluation, in the objective's direction, and its name."""
    if objective == "final_val_loss":
        return float(metrics["val_loss"]), "validation loss"
    if objective == "best_val_accuracy":
        return float(metrics["val_accuracy"]), "validation accuracy"
    return 1.0 - float(metrics["val_accuracy"]), "validation error"


class SamplerStrategy:
    """random or bayesian: `trials` points drawn by Optuna's sampler from the [sweep] range."""

    def __init__(self, config: ExperimentConfig, message: Callable[[str], None] = lambda text: None,
                 train_size: int = 0, storage: str | None = None):
        optuna.logging.set_verbosity(optuna.logging.WARNING)   # its per-trial INFO lines would bury our progress
        self.config, self.name, self._message = config, config.sweep.strategy, message
        sweep = config.sweep
        self.objective = sweep.objective
        # A shared study's processes seed their samplers apart, or they would all propose the same points.
        self.study = optuna.create_study(
            study_name=STUDY_NAME, sampler=_sampler(config, os.getpid() if storage else 0),
            pruner=_pruner(config, train_size), direction="minimize" if minimize(sweep.objective) else "maximize",
            storage=None if storage is None else shared_storage(storage), load_if_exists=storage is not None)
        self.after_evaluation = self._judge if sweep.pruner != "none" else None
        self.expected_points = sweep.trials
        self.points = 0                                  # points asked so far, repeats included
        self.proposed = 0                                # trials proposed so far (TrialSpec.index)
        self._queue: list[TrialSpec] = []                # the current point's seeds still to propose
        self._point: optuna.Trial | None = None
        self._values: list[float] = []                   # the current point's seeds' objective values
        self._position = -1                              # where the current point's first seed last reported
        self._earlier: dict[tuple[int, float | None], tuple[int, float | None]] = {}   # params -> (point, score)
        self.conclusion = ""

    # ----- the interface the sweep loop calls
    def propose(self, finished: Mapping[str, TrialData]) -> TrialSpec | None:
        """The next trial to train, or None when the search is done. Trials already in `finished` (a resumed
        run's file) are not proposed again: their stored results are told in their place, so the sampler walks
        the same path as it did the first time."""
        while True:
            if self._queue:
                spec = self._queue.pop(0)
                if spec.name in finished:
                    self._replay(spec, finished[spec.name])
                    continue
                return spec
            # Every point of the study counts, those other processes sharing it asked for too.
            if len(self.study.get_trials(deepcopy=False)) >= self.config.sweep.trials:
                self.conclusion = self._conclude()
                return None
            self._ask()

    def tell(self, result: TrialResult) -> float:
        """Record a trial that ended; returns its own objective value (NaN: none)."""
        value = trial_objective(self.config.sweep, result.trial)
        self._values.append(value)
        if result.status == schema.PRUNED:
            self._queue.clear()           # a pruned point's other seeds are not worth training
            self.study.tell(self._point, state=optuna.trial.TrialState.PRUNED)
            self._close(None)
        elif not self._queue:
            score = point_score(self.objective, self._values)
            self.study.tell(self._point, score)
            self._close(score)
        return value

    # ----- inside
    def _ask(self) -> None:
        trial = self.study.ask()
        sweep = self.config.sweep
        if sweep.powers_of_two:
            sizes = powers_of_two(sweep.batch_size_min, sweep.batch_size_max)
            batch_size = sizes[trial.suggest_int("batch_size_index", 0, len(sizes) - 1)]
        else:
            batch_size = trial.suggest_int("batch_size", sweep.batch_size_min, sweep.batch_size_max, log=True)
        lr = trial.suggest_float("lr", sweep.lr_min, sweep.lr_max, log=True) if lr_searched(self.config) else None
        self.points += 1
        key = (batch_size, lr)
        if key in self._earlier:
            # Same point, same seeds, same numbers: tell the sampler the earlier score instead of training again.
            point, score = self._earlier[key]
            if score is None:
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                self.study.tell(trial, score)
            self._message(f"point {trial.number + 1} repeats point {point + 1} (batch size {batch_size}"
                          f"{'' if lr is None else f', lr {lr:.4g}'}): its result is reused")
            return
        self._point, self._values, self._position = trial, [], -1
        self._queue = point_trials(self.config, trial.number, batch_size, lr, self.proposed)
        self.proposed += len(self._queue)

    def _close(self, score: float | None) -> None:
        params = self._point.params
        sweep = self.config.sweep
        batch_size = (powers_of_two(sweep.batch_size_min, sweep.batch_size_max)[params["batch_size_index"]]
                      if "batch_size_index" in params else params["batch_size"])
        self._earlier[(batch_size, params.get("lr"))] = (self._point.number, score)
        self._point = None

    def _judge(self, spec: TrialSpec, metrics: Mapping[str, float]) -> str:
        """After an evaluation of a trial: '' to go on, or why the pruner stops it."""
        if self._point is None or spec.search_point != self._point.number or spec.seed != self.config.train.seeds[0]:
            return ""
        position = evaluation_position(metrics["samples"])
        if position <= self._position:     # a second evaluation at about the same number of examples
            return ""
        self._position = position
        value, measure = intermediate(self.objective, metrics)
        self._point.report(value, position)
        if not self._point.should_prune():
            return ""
        when = f"at step {int(metrics['step'])} ({int(metrics['samples']):,} examples seen)"
        if self.config.sweep.pruner == "median":
            earlier = [t.intermediate_values[position]
                       for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                       if position in t.intermediate_values]
            return (f"pruned {when}: its {measure} {value:.4g} was worse than the median {np.median(earlier):.4g} "
                    f"of the {len(earlier)} finished points after as many examples")
        return f"pruned {when}: its {measure} {value:.4g} was not among the best that Hyperband keeps after as many examples"

    def _replay(self, spec: TrialSpec, trial: TrialData) -> None:
        """Tell a stored trial's result as if it had just been trained, evaluations first (the pruner's history)."""
        steps = total_steps(self.config.train, trial.steps_per_epoch, trial.batch_size) if trial.steps_per_epoch \
            else math.inf
        evaluations = evaluation_rows(trial)
        for row in range(len(evaluations["step"])):
            metrics = {name: column[row].item() for name, column in evaluations.items()}
            # The hook ran after every evaluation but those at the end of the trial's budget.
            if metrics["step"] < steps:
                self._judge(spec, metrics)
        self.tell(TrialResult(spec, trial))

    def _conclude(self) -> str:
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in self.study.trials)
        repeats = self.points - len(self._earlier)
        words = f"the search tried its {len(self.study.trials)} points ({pruned} pruned" + \
            (f", {repeats} repeating an earlier one)" if repeats else ")")
        scored = [t for t in self.study.trials if t.state == optuna.trial.TrialState.COMPLETE
                  and math.isfinite(t.value)]
        return words if scored else words + "; none reached a score"
