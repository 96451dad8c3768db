"""Throughput against the number of data-parallel ranks (sweep.data_parallel), for the Summary's scaling view.

A sweep trains every trial on the same number of ranks, so scaling is seen by comparing runs of one experiment made
with data_parallel = 1, 2, 4, ... (opened together in the Summary). Per batch size and rank count: the throughput
averaged over seeds (engine.analysis.training_throughput), the ideal line (linear from the smallest rank count
measured at that batch size), scaling efficiency (measured over ideal) and the share of the training time the
gradient all-reduces were in flight (schema.RANK_ATTRS).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from engine import schema
from engine.analysis import training_throughput
from engine.config_diff import config_diff
from engine.runfile import RunData

NAN = math.nan
# Config keys that may differ between the runs compared without making them different experiments.
NOT_THE_EXPERIMENT = ("name", "description", "sweep.data_parallel")


@dataclass(frozen=True)
class RankPoint:
    batch_size: int
    ranks: int
    samples_per_s: float           # mean over seeds (and runs) of training examples per second
    ideal_samples_per_s: float     # the smallest rank count's throughput × ranks / that count
    efficiency: float              # samples_per_s / ideal_samples_per_s; 1 at the smallest rank count
    communication_share: float     # all-reduce seconds over training seconds; NaN on one rank (not measured)
    trials: int


@dataclass(frozen=True)
class RankScaling:
    points: list[RankPoint]
    rank_counts: list[int]
    advice: str                    # '' when several rank counts of one experiment are compared

    def at(self, batch_size: int) -> list[RankPoint]:
        return [point for point in self.points if point.batch_size == batch_size]


def rank_scaling(runs: list[RunData]) -> RankScaling:
    """Throughput per (batch size, rank count) over every trial that finished in `runs`."""
    throughputs: dict[tuple[int, int], list[float]] = defaultdict(list)
    shares: dict[tuple[int, int], list[float]] = defaultdict(list)
    for run in runs:
        for trial in run.trials:
            if trial.status != schema.COMPLETED:
                continue
            throughput = training_throughput(trial)
            if not math.isfinite(throughput):
                continue
            key = (trial.batch_size, trial.ranks)
            throughputs[key].append(throughput)
            seconds = float(trial.epoch["wall_time_s"][-1]) if len(trial.epoch["wall_time_s"]) else NAN
            if math.isfinite(trial.communication_s) and seconds > 0:
                shares[key].append(trial.communication_s / seconds)
    points = []
    for batch_size in sorted({size for size, _ in throughputs}):
        counts = sorted(ranks for size, ranks in throughputs if size == batch_size)
        base_ranks = counts[0]
        base = float(np.mean(throughputs[(batch_size, base_ranks)]))
        for ranks in counts:
            measured = float(np.mean(throughputs[(batch_size, ranks)]))
            ideal = base * ranks / base_ranks
            share = float(np.mean(shares[(batch_size, ranks)])) if shares[(batch_size, ranks)] else NAN
            points.append(RankPoint(batch_size, ranks, measured, ideal, measured / ideal, share,
                                    len(throughputs[(batch_size, ranks)])))
    rank_counts = sorted({point.ranks for point in points})
    differences = [d.key for d in config_diff([run.config for run in runs]) if d.differs
                   and d.key not in NOT_THE_EXPERIMENT] if len(runs) > 1 else []
    if len(rank_counts) > 1:
        advice = (f"These runs differ in more than data_parallel ({', '.join(differences)}): the lines mix "
                  "experiments." if differences else "")
    elif rank_counts:
        advice = (f"Every trial here ran on {rank_counts[0]} rank{'s' if rank_counts[0] > 1 else ''}: open runs of "
                  "this experiment made with data_parallel = 1, 2, 4 together to see scaling.")
    else:
        advice = "No finished trial to measure yet."
    return RankScaling(points, rank_counts, advice)
