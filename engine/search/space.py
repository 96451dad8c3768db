"""The search range of [sweep]: which batch sizes and learning rates a strategy may propose."""
from __future__ import annotations

import math

from engine import schema
from engine.config import ExperimentConfig, scaled_lr
from engine.events import TrialSpec


def powers_of_two(low: int, high: int) -> list[int]:
    """Every power of two in [low, high], smallest first."""
    return [2 ** k for k in range(max(0, math.ceil(math.log2(low))), int(math.log2(high)) + 1)
            if low <= 2 ** k <= high]


def lr_searched(config: ExperimentConfig) -> bool:
    return config.sweep.lr_min > 0 and config.sweep.lr_max > 0


def point_trials(config: ExperimentConfig, point: int, batch_size: int, lr: float | None,
                 first_index: int) -> list[TrialSpec]:
    """One trial per seed of a point. A searched learning rate is used as is; otherwise train.lr follows the
    LR rule to the batch size, as in a grid. Names carry the point's number, so a point proposed twice (a random
    draw can repeat) never overwrites another."""
    train, sweep = config.train, config.sweep
    base_lr = train.lr if lr is None else lr
    specs = []
    for seed in train.seeds:
        name = f"{schema.trial_name(batch_size, seed, lr)}_p{point:03d}"
        specs.append(TrialSpec(index=first_index + len(specs), name=name, batch_size=batch_size, seed=seed,
                               base_lr=base_lr, lr=base_lr if lr is not None else scaled_lr(train, base_lr, batch_size),
                               proposed_by=sweep.strategy, search_point=point))
    return specs
