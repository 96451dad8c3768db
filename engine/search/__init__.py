"""Search strategies: which trial to train next.

Every strategy has the same small surface, which the sweep loop (engine.sweep.train_trials) drives:

    propose(finished) -> TrialSpec | None    # the next trial, or None when done; `finished` maps the names of
                                             # trials already in the run file to their records: a strategy tells
                                             # itself those instead of proposing them (this is how a resumed
                                             # search walks the path of the first session)
    tell(result) -> float | None             # a trial ended: its own objective value (None for a grid)
    after_evaluation                         # None, or the pruner's hook (engine.train.TrialContext)
    conclusion                               # where and why the search ended, in words ('' for a grid)

grid: the planned trials (engine.search.grid). random, bayesian: Optuna (engine.search.optuna_search).
start-small: doubling from the smallest size (engine.search.start_small).
"""
from __future__ import annotations

from collections.abc import Callable

from engine.config import ExperimentConfig
from engine.events import TrialSpec
from engine.search.grid import GridStrategy
from engine.search.results import TrialResult

__all__ = ["GridStrategy", "TrialResult", "make_strategy"]


def make_strategy(config: ExperimentConfig, planned: list[TrialSpec],
                  message: Callable[[str], None] = lambda text: None, train_size: int = 0,
                  storage: str | None = None):
    """The strategy of config.sweep.strategy. `planned`: a grid's trials still to train (ignored by searches);
    `train_size`: the training examples, one epoch (a pruner spares a trial's first epoch); `storage`: a journal
    file whose study several processes share (random and bayesian only: engine.search.shared)."""
    if config.sweep.strategy == "grid":
        return GridStrategy(planned)
    if config.sweep.strategy == "start-small":
        from engine.search.start_small import StartSmallStrategy
        return StartSmallStrategy(config, message)
    from engine.search.optuna_search import SamplerStrategy   # imports Optuna only when a search asks for it
    return SamplerStrategy(config, message, train_size, storage)
