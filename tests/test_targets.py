"""Steps to target (engine.science.targets): interpolation in log-steps, censoring, the epoch fallback, and the
tuned value per batch size over a learning-rate grid, on trials built by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine import schema
from engine.analysis import summarize_trial
from engine.runfile import TrialData
from engine.science.targets import EPOCH_SOURCE, EVAL_SOURCE, crossing, first_crossing, tuned


def make_trial(batch_size=8, seed=0, base_lr=0.1, steps=(10, 100, 1000), accuracy=(0.2, 0.5, 0.9), eval_group=True,
               status=schema.COMPLETED):
    steps = np.asarray(steps, np.int64)
    columns = {"step": steps, "samples": steps * batch_size, "wall_time_s": steps * 0.01,
               "val_loss": np.ones(len(steps)), "val_accuracy": np.asarray(accuracy, float)}
    epoch = {m.name: np.zeros(2, m.dtype) for m in schema.EPOCH_METRICS}
    if eval_group:   # epochs that end where the schedule has evaluated: the same passes
        epoch.update({key: values[-2:] for key, values in columns.items()})
    else:
        epoch.update({"step": np.array([500, 1000]), "samples": np.array([500, 1000]) * batch_size,
                      "wall_time_s": np.array([5.0, 10.0]), "val_accuracy": np.array([0.6, 0.95])})
    trial = TrialData(name=schema.trial_name(batch_size, seed, base_lr), batch_size=batch_size, seed=seed, lr=base_lr,
                      base_lr=base_lr, status=status, error="", parameter_count=1, steps_per_epoch=500,
                      epoch=epoch, step={m.name: np.zeros(0, m.dtype) for m in schema.STEP_METRICS})
    if eval_group:
        trial.eval = columns
    return trial


def test_the_crossing_is_interpolated_in_log_steps():
    # 0.5 at step 100, 0.9 at step 1000: 0.7 is half way, at 10 ** 2.5 steps.
    steps, seconds = first_crossing(np.array([10, 100, 1000]), np.array([0.1, 1.0, 10.0]),
                                    np.array([0.2, 0.5, 0.9]), 0.7)
    assert steps == pytest.approx(10 ** 2.5) and seconds == pytest.approx(5.5)
    # Exactly at an evaluation: that evaluation's step.
    assert first_crossing(np.array([10, 100]), np.array([1.0, 2.0]), np.array([0.2, 0.5]), 0.5) == (100.0, 2.0)
    # Reached at the first evaluation: nothing earlier to interpolate from.
    assert first_crossing(np.array([10, 100]), np.array([1.0, 2.0]), np.array([0.8, 0.9]), 0.5) == (10.0, 1.0)
    # The first crossing counts, not a later one after a dip.
    steps, _ = first_crossing(np.array([1, 10, 100, 1000]), np.zeros(4), np.array([0.1, 0.9, 0.3, 0.95]), 0.5)
    assert steps == pytest.approx(10 ** 0.5)


def test_a_trial_that_never_reaches_the_target_is_censored_not_given_a_number():
    found = crossing(make_trial(accuracy=(0.2, 0.5, 0.6)), 0.7)
    assert found.censored and math.isnan(found.steps) and math.isnan(found.samples) and math.isnan(found.time_s)
    summary = summarize_trial(make_trial(accuracy=(0.2, 0.5, 0.6)), 0.7)
    assert math.isnan(summary.steps_to_target)


def test_samples_and_time_follow_the_crossing():
    found = crossing(make_trial(batch_size=8), 0.7)
    assert found.source == EVAL_SOURCE and not found.censored
    assert found.samples == pytest.approx(8 * 10 ** 2.5) and found.time_s == pytest.approx(5.5)
    assert summarize_trial(make_trial(batch_size=8), 0.7).steps_to_target == pytest.approx(10 ** 2.5)


def test_files_without_evaluations_fall_back_to_the_first_epoch_that_reached_it():
    found = crossing(make_trial(eval_group=False), 0.7)
    assert found.source == EPOCH_SOURCE and found.steps == 1000 and found.time_s == 10.0


def test_an_epoch_that_ended_after_the_last_scheduled_evaluation_counts():
    # The schedule's last point (step 1000) is below the target; the last epoch's pass (step 1200) is above it:
    # reached, between the two, not censored beside a best accuracy above the target.
    trial = make_trial(accuracy=(0.2, 0.5, 0.6))
    trial.epoch.update({"step": np.array([600, 1200]), "samples": np.array([600, 1200]) * 8,
                        "wall_time_s": np.array([6.0, 12.0]), "val_loss": np.ones(2),
                        "val_accuracy": np.array([0.55, 0.8])})
    found = crossing(trial, 0.7)
    assert not found.censored and found.source == EVAL_SOURCE
    # 0.6 at step 1000, 0.8 at step 1200: 0.7 half way in log-steps.
    assert found.steps == pytest.approx(math.exp((math.log(1000) + math.log(1200)) / 2))
    # The epoch at step 600 sits between scheduled points, in step order: 0.55 there is below 0.7.
    assert crossing(trial, 0.56).steps == pytest.approx(math.exp(math.log(600) + (0.01 / 0.05) * math.log(1000 / 600)))


def test_tuned_takes_the_median_over_seeds_then_the_best_learning_rate():
    trials = [
        # lr 0.1: seeds reach 0.7 at 10**2.5 twice and never once -> median 10**2.5
        make_trial(seed=0, base_lr=0.1), make_trial(seed=1, base_lr=0.1),
        make_trial(seed=2, base_lr=0.1, accuracy=(0.2, 0.5, 0.6)),
        # lr 0.2: faster in two seeds of three (0.7 half way between 10 and 100) -> median 10**1.5
        make_trial(seed=0, base_lr=0.2, accuracy=(0.5, 0.9, 0.9)), make_trial(seed=1, base_lr=0.2, accuracy=(0.5, 0.9, 0.9)),
        make_trial(seed=2, base_lr=0.2, accuracy=(0.1, 0.1, 0.1)),
        # lr 0.4: mostly censored -> censored median
        make_trial(seed=0, base_lr=0.4, accuracy=(0.9, 0.9, 0.9)), make_trial(seed=1, base_lr=0.4, accuracy=(0, 0, 0)),
        make_trial(seed=2, base_lr=0.4, accuracy=(0, 0, 0)),
        # another batch size that never reaches it at any rate
        make_trial(batch_size=64, accuracy=(0.1, 0.2, 0.3)),
    ]
    small, large = tuned(trials, 0.7)
    assert small.batch_size == 8 and small.base_lr == 0.2 and small.steps == pytest.approx(10 ** 1.5)
    assert small.seeds_reached == 2 and small.seeds == 3 and small.rates_tried == 3
    assert large.batch_size == 64 and large.censored and math.isnan(large.base_lr) and math.isnan(large.samples)


def test_trials_without_a_result_are_no_seed_at_all():
    trials = [make_trial(seed=0), make_trial(seed=1, status=schema.OUT_OF_MEMORY, accuracy=(0, 0, 0))]
    (point,) = tuned(trials, 0.7)
    assert point.seeds == 1 and point.steps == pytest.approx(10 ** 2.5)
