"""Start small and grow (the article's advice, as a procedure).

Train at the smallest batch size of the range; double it while the objective improves beyond the seeds' spread
(engine.search.results.better); the last size that improved is the best so far. Then refine: try the sizes
half-way (on a log scale) between the best and its neighbours, where whole numbers lie between them (never with
powers_of_two, whose neighbours are a doubling apart). The answer is the best point of all, and `conclusion`
says where the doubling stopped and why.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from engine.config import ExperimentConfig
from engine.events import TrialSpec
from engine.runfile import TrialData
from engine.search.results import OBJECTIVE_LABELS, TOLERANCE, TrialResult, better, point_score, trial_objective
from engine.search.space import point_trials, powers_of_two


def doublings(low: int, high: int, only_powers: bool) -> list[int]:
    """The batch sizes the growing phase may visit, smallest first."""
    if only_powers:
        return powers_of_two(low, high)
    sizes = [low]
    while sizes[-1] * 2 <= high:
        sizes.append(sizes[-1] * 2)
    return sizes


class StartSmallStrategy:
    name = "start-small"
    after_evaluation = None     # every point is trained fully: its comparison with the next needs its result

    def __init__(self, config: ExperimentConfig, message: Callable[[str], None] = lambda text: None):
        self.config, self._message = config, message
        sweep = config.sweep
        self.objective = sweep.objective
        self.ladder = doublings(sweep.batch_size_min, sweep.batch_size_max, sweep.powers_of_two)
        self.expected_points = len(self.ladder)
        self.values: dict[int, list[float]] = {}      # batch size -> its seeds' objective values
        self.order: list[int] = []                    # batch sizes in the order tried
        self._refine: list[int] | None = None         # the refining phase's sizes, once the growing phase ends
        self._queue: list[TrialSpec] = []
        self._current: list[float] = []
        self.proposed = 0
        self.conclusion = ""

    @property
    def best(self) -> int | None:
        scored = [size for size in self.order if math.isfinite(point_score(self.objective, self.values[size]))]
        if not scored:
            return None
        best = scored[0]
        for size in scored[1:]:
            if better(self.objective, self.values[size], self.values[best]):
                best = size
        return best

    def propose(self, finished: Mapping[str, TrialData]) -> TrialSpec | None:
        while True:
            if self._queue:
                spec = self._queue.pop(0)
                if spec.name in finished:
                    self.tell(TrialResult(spec, finished[spec.name]))
                    continue
                return spec
            size = self._next_size()
            if size is None:
                return None
            self.order.append(size)
            self._current = self.values.setdefault(size, [])
            self._queue = point_trials(self.config, len(self.order) - 1, size, None, self.proposed)
            self.proposed += len(self._queue)

    def tell(self, result: TrialResult) -> float:
        value = trial_objective(self.config.sweep, result.trial)
        self._current.append(value)
        return value

    def _next_size(self) -> int | None:
        if self._refine is None:
            if not self.order:
                return self.ladder[0]
            last = self.order[-1]
            step = self.ladder.index(last)
            label = OBJECTIVE_LABELS[self.objective]
            if len(self.order) > 1 and not better(self.objective, self.values[last], self.values[self.order[-2]]):
                self.conclusion = (f"doubling stopped at batch size {last}: its {label} was not better than batch "
                                   f"size {self.order[-2]}'s by more than the seeds' spread (and {TOLERANCE:.0%})")
            elif step + 1 < len(self.ladder):
                return self.ladder[step + 1]
            else:
                self.conclusion = f"doubling reached the largest batch size of the range, {last}, still improving"
            self._refine = self._refining_sizes()
            if self.best is None:
                self.conclusion += "; no batch size has a score (did any reach the target?)"
            elif not self._refine:
                self.conclusion += ("; no refining: " + ("powers_of_two leaves no size between neighbours"
                                                         if self.config.sweep.powers_of_two else
                                                         "no whole batch size lies between the best and its "
                                                         "neighbours"))
        while self._refine:
            size = self._refine.pop(0)
            if size not in self.values:
                return size
        best = self.best
        if best is not None:
            self.conclusion += f"; best batch size {best}"
        return None

    def _refining_sizes(self) -> list[int]:
        best = self.best
        if best is None or self.config.sweep.powers_of_two:
            return []
        tried = sorted(self.values)
        at = tried.index(best)
        sizes = []
        for neighbour in (tried[at - 1] if at > 0 else None, tried[at + 1] if at + 1 < len(tried) else None):
            if neighbour is not None:
                middle = round(math.sqrt(best * neighbour))
                if middle not in (best, neighbour):
                    sizes.append(middle)
        return sizes
