"""The critical-batch fit (engine.science.critical_batch): exact on synthetic S(B), within a few percent with noise,
censored batch sizes left out, a bootstrap interval over seeds, regimes; on runs built by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine import schema
from engine.runfile import RunData, RunHeader, TrialData
from engine.science.critical_batch import (CENSORED, DIMINISHING, NO_GAIN, PERFECT, critical_batch, fit)

SIZES = [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]


def law(batch_sizes, s_min=200.0, e_min=20_000.0):
    return s_min + e_min / np.asarray(batch_sizes, float)


def test_exact_recovery_from_synthetic_steps():
    result = fit(SIZES, law(SIZES))
    assert result.s_min == pytest.approx(200, rel=1e-6) and result.e_min == pytest.approx(20_000, rel=1e-6)
    assert result.b_crit == pytest.approx(100, rel=1e-6) and result.r2 == pytest.approx(1.0)


def test_within_a_few_percent_with_noise():
    rng = np.random.default_rng(1)
    errors = []
    for _ in range(20):
        noisy = law(SIZES) * np.exp(rng.normal(0, 0.05, len(SIZES)))     # 5% noise on every point
        result = fit(SIZES, noisy)
        errors.append(abs(result.b_crit / 100 - 1))
        assert result.s_min == pytest.approx(200, rel=0.08) and result.e_min == pytest.approx(20_000, rel=0.08)
    assert np.median(errors) < 0.05


def test_censored_points_are_left_out_and_two_points_are_not_a_fit():
    steps = law(SIZES)
    steps[-3:] = np.nan
    assert fit(SIZES, steps).b_crit == pytest.approx(100, rel=1e-6)
    assert fit(SIZES[:2], law(SIZES[:2])) is None


def _trial(batch_size, seed, base_lr, steps_to_reach):
    """A trial whose validation accuracy is 0 until it jumps to 1 at `steps_to_reach` (None: never)."""
    steps = np.unique(np.geomspace(1, 100_000, 60).astype(np.int64))
    accuracy = np.zeros(len(steps)) if steps_to_reach is None else (steps >= steps_to_reach).astype(float)
    trial = TrialData(name=schema.trial_name(batch_size, seed, base_lr), batch_size=batch_size, seed=seed, lr=base_lr,
                      base_lr=base_lr, status=schema.COMPLETED, error="", parameter_count=1, steps_per_epoch=1,
                      epoch={m.name: np.zeros(0, m.dtype) for m in schema.EPOCH_METRICS},
                      step={m.name: np.zeros(0, m.dtype) for m in schema.STEP_METRICS})
    trial.eval = {"step": steps, "samples": steps * batch_size, "wall_time_s": steps * 0.001,
                  "val_loss": 1 - accuracy, "val_accuracy": accuracy}
    return trial


def make_run(trials):
    header = RunHeader(path=None, name="made", created="", status=schema.COMPLETED, dataset="mnist1d", model="mlp",
                       batch_sizes=sorted({t.batch_size for t in trials}), trial_count=len(trials), trial_statuses={},
                       device_name="cpu")
    return RunData(path=None, header=header, config_text="", environment={}, trials=trials)


def test_a_run_with_seeds_and_an_lr_grid_gives_b_crit_with_an_interval_and_regimes():
    rng = np.random.default_rng(0)
    trials = []
    for batch_size, steps in zip(SIZES, law(SIZES)):
        for seed in range(3):
            noisy = steps * math.exp(rng.normal(0, 0.1))
            trials.append(_trial(batch_size, seed, 0.1, noisy))            # the best rate
            trials.append(_trial(batch_size, seed, 0.01, noisy * 3))       # a worse one, never chosen
    result = critical_batch(make_run(trials), 0.5)
    assert result.available and result.tuned
    assert result.b_crit == pytest.approx(100, rel=0.2)
    assert result.b_crit_low < result.b_crit < result.b_crit_high
    assert result.b_crit_high / result.b_crit_low < 3
    assert result.regimes[4] == PERFECT and result.regimes[128] == DIMINISHING and result.regimes[2048] == NO_GAIN


def test_one_seed_has_no_interval_and_censored_sizes_say_so():
    trials = [_trial(b, 0, 0.1, s) for b, s in zip(SIZES, law(SIZES))] + [_trial(4096, 0, 0.1, None)]
    result = critical_batch(make_run(trials), 0.5)
    assert not result.tuned and math.isnan(result.b_crit_low) and math.isnan(result.b_crit_high)
    assert result.regimes[4096] == CENSORED and math.isnan(result.steps[-1])


def test_too_few_batch_sizes_reaching_the_target_is_unavailable_with_the_reason():
    trials = [_trial(4, 0, 0.1, 1000), _trial(8, 0, 0.1, 600), _trial(16, 0, 0.1, None)]
    result = critical_batch(make_run(trials), 0.5)
    assert not result.available and "2 batch sizes reached the target" in result.unavailable
    assert math.isnan(result.b_crit)
