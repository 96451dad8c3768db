"""When a trial is evaluated: points in examples seen, the same for every batch size ([science] eval_schedule).

A point is taken at the first optimizer step whose examples seen reach it; a step that passes several points is
evaluated once. So a batch of 2048 is evaluated after every step until the points are further apart than one
batch, and steps-to-target is known as finely at every batch size as the schedule allows.
"""
from __future__ import annotations

import math

from engine.config import ScienceConfig

# The log schedule starts here: fewer examples than this teach a model nothing worth a validation pass.
LOG_START_SAMPLES = 100


class EvalSchedule:
    """`due(samples)` after each step: True when that step reached the next point (and moves past it)."""

    def __init__(self, science: ScienceConfig):
        self.kind = science.eval_schedule
        self._per_decade = science.eval_per_decade
        self._every = science.eval_every
        self._index = 0
        self.next_point = self._point(0)

    @property
    def at_epochs(self) -> bool:
        """True for the epoch schedule: the end-of-epoch evaluation is the scheduled one."""
        return self.kind == "epoch"

    def _point(self, index: int) -> float:
        if self.kind == "log":
            return math.ceil(LOG_START_SAMPLES * 10 ** (index / self._per_decade))
        if self.kind == "every":
            return self._every * (index + 1)
        return math.inf

    def due(self, samples: int) -> bool:
        if samples < self.next_point:
            return False
        while self.next_point <= samples:
            self._index += 1
            self.next_point = self._point(self._index)
        return True


def points_up_to(science: ScienceConfig, samples: int) -> list[int]:
    """Every point of the schedule up to `samples` examples (for docs and tests)."""
    schedule, points = EvalSchedule(science), []
    while schedule.next_point <= samples:
        points.append(int(schedule.next_point))
        schedule.due(int(schedule.next_point))
    return points
