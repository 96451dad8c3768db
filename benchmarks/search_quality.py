"""How many points each search strategy needs to find a batch size and learning rate within 5% of the best, on
an analytic objective (no training, so the comparison is about the strategies, not about noise in training).

The objective is a made-up best validation accuracy with one smooth optimum in (log batch size, log lr) and a
valley between learning rate and batch size, as the linear scaling rule predicts: the best lr grows with the
batch size. Each strategy runs as the sweep runs it (engine.search.make_strategy, with the settings of a real
search: TPE's start-up share, multivariate TPE), once per optimizer seed. Figures go in the README's
performance section.

    .venv/bin/python benchmarks/search_quality.py [--seeds 20] [--budget 60]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import schema  # noqa: E402
from engine.config import parse_config  # noqa: E402
from engine.runfile import TrialData  # noqa: E402
from engine.search import make_strategy  # noqa: E402
from engine.search.results import TrialResult  # noqa: E402

BEST = 0.9
WITHIN = 0.05


def accuracy(batch_size: int, lr: float) -> float:
    """Best at batch size 64 with lr 0.1; along the valley lr ∝ batch size it falls off slowly, across it fast."""
    along = math.log2(batch_size / 64)
    across = math.log10(lr / 0.1) - along * math.log10(2)     # 0 on the line lr = 0.1 × batch size / 64
    return BEST * math.exp(-0.5 * (along / 2.0) ** 2 - 0.5 * (across / 0.25) ** 2)


def config(strategy: str, seed: int, budget: int):
    return parse_config({
        "name": "bench", "data": {"dataset": "synthetic", "num_samples": 4000},
        "train": {"epochs": 1, "seeds": [0]},
        "sweep": {"strategy": strategy, "trials": budget, "batch_size_min": 8, "batch_size_max": 2048,
                  "powers_of_two": False, "lr_min": 0.001, "lr_max": 1.0, "objective": "best_val_accuracy",
                  "search_seed": seed}})


def trial(spec, value: float) -> TrialData:
    epoch = {m.name: np.zeros(1, dtype=m.dtype) for m in schema.EPOCH_METRICS}
    epoch["val_accuracy"][0] = value
    return TrialData(name=spec.name, batch_size=spec.batch_size, seed=spec.seed, lr=spec.lr, base_lr=spec.base_lr,
                     status=schema.COMPLETED, error="", parameter_count=1, steps_per_epoch=1, epoch=epoch,
                     step={m.name: np.empty(0, m.dtype) for m in schema.STEP_METRICS})


def points_to_within(strategy: str, seed: int, budget: int) -> int | None:
    """How many points the strategy trained before one scored within WITHIN of BEST; None if none did."""
    search = make_strategy(config(strategy, seed, budget), [])
    count = 0
    while (spec := search.propose({})) is not None:
        count += 1
        value = accuracy(spec.batch_size, spec.lr)
        search.tell(TrialResult(spec, trial(spec, value)))
        if value >= (1 - WITHIN) * BEST:
            return count
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=60)
    args = parser.parse_args()
    results = {}
    for strategy in ("random", "bayesian"):
        counts = [points_to_within(strategy, seed, args.budget) for seed in range(args.seeds)]
        found = [c for c in counts if c is not None]
        results[strategy] = found
        # A search that never got there counts as the whole budget: the median stays honest about misses.
        median = statistics.median([c if c is not None else args.budget for c in counts])
        print(f"{strategy:>8}: within {WITHIN:.0%} of the optimum in {len(found)}/{args.seeds} searches of "
              f"{args.budget} points; points needed: median {median:g}, mean of those found "
              f"{statistics.mean(found) if found else float('nan'):.1f}, worst {max(found) if found else '-'}")
    random_median = statistics.median(results["random"] + [args.budget] * (args.seeds - len(results["random"])))
    tpe_median = statistics.median(results["bayesian"] + [args.budget] * (args.seeds - len(results["bayesian"])))
    print(f"random / bayesian median points: {random_median / tpe_median:.2f}")


if __name__ == "__main__":
    main()
