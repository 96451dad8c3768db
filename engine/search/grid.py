"""The grid: every planned trial, in plan order, whatever the earlier ones scored."""
from __future__ import annotations

from collections.abc import Mapping

from engine.events import TrialSpec
from engine.search.results import TrialResult


class GridStrategy:
    """Proposes the planned trials one at a time; nothing it is told changes what comes next."""

    name = "grid"
    after_evaluation = None     # a grid never prunes
    conclusion = ""

    def __init__(self, trials: list[TrialSpec]):
        self.planned = list(trials)
        self._queue = list(trials)

    def propose(self, finished: Mapping[str, TrialResult]) -> TrialSpec | None:
        return self._queue.pop(0) if self._queue else None

    def tell(self, result: TrialResult) -> float | None:
        return None
