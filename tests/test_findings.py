"""A verdict for each claim (engine.science.findings): supported, contradicted and inconclusive on runs constructed
for each, and untestable (with the preset that would test it) where the run lacks what the claim needs."""
from __future__ import annotations

import numpy as np
import pytest

from engine import schema
from engine.resources import presets
from engine.runfile import RunData, RunHeader, TrialData
from engine.science.findings import (CONTRADICTED, INCONCLUSIVE, SUPPORTED, UNTESTABLE, batch_norm, critical,
                                     epochs, findings, generalization, lr_scaling, memory, throughput)
from engine.science.findings.evidence import context_of

TARGET = 0.5


def trial(batch_size, seed=0, base_lr=0.1, lr=None, gap=0.05, accuracy=0.9, samples_per_s=1000.0, memory_bytes=1e8,
          reach_step=None):
    """A finished trial: final val accuracy `accuracy`, train accuracy `accuracy + gap`, its throughput and peak
    memory; scheduled evaluations at 0.1 accuracy until `reach_step`, then `accuracy` (never: None)."""
    steps = np.unique(np.geomspace(1, 100_000, 80).astype(np.int64))
    curve = np.where(steps >= reach_step, accuracy, 0.1) if reach_step is not None else np.full(len(steps), 0.1)
    samples = int(steps[-1]) * batch_size
    epoch = {"epoch": [1], "step": [steps[-1]], "samples": [samples], "wall_time_s": [samples / samples_per_s],
             "train_loss": [0.5], "train_accuracy": [accuracy + gap], "val_loss": [0.6], "val_accuracy": [accuracy],
             "samples_per_s": [samples_per_s], "peak_memory_bytes": [memory_bytes]}
    made = TrialData(name=schema.trial_name(batch_size, seed, base_lr), batch_size=batch_size, seed=seed,
                     lr=lr if lr is not None else base_lr, base_lr=base_lr, status=schema.COMPLETED, error="",
                     parameter_count=1, steps_per_epoch=1,
                     epoch={m.name: np.asarray(epoch[m.name], m.dtype) for m in schema.EPOCH_METRICS},
                     step={m.name: np.zeros(0, m.dtype) for m in schema.STEP_METRICS})
    made.eval = {"step": steps, "samples": steps * batch_size, "wall_time_s": steps * 1e-3,
                 "val_loss": 2.3 - curve, "val_accuracy": curve}
    return made


def run_of(trials, device="cpu", batch_norm=False):
    config = f'name = "made"\n[model]\nbatch_norm = {str(batch_norm).lower()}\n'
    header = RunHeader(path=None, name="made", created="", status=schema.COMPLETED, dataset="mnist1d", model="mlp",
                       batch_sizes=sorted({t.batch_size for t in trials}), trial_count=len(trials),
                       trial_statuses={}, device_name=device)
    return RunData(path=None, header=header, config_text=config, environment={"device": device}, trials=trials)


def verdict(claim, trials, **run_options):
    return claim.judge(context_of(run_of(trials, **run_options), TARGET)).verdict


def two_seeds(batch_size, first, second, key, **rest):
    return [trial(batch_size, seed=0, **{key: first}, **rest), trial(batch_size, seed=1, **{key: second}, **rest)]


@pytest.mark.parametrize("small, large, expected", [
    ((0.02, 0.03), (0.10, 0.11), SUPPORTED), ((0.10, 0.11), (0.02, 0.03), CONTRADICTED),
    ((0.02, 0.22), (0.10, 0.11), INCONCLUSIVE)])
def test_generalization_gap(small, large, expected):
    trials = two_seeds(16, *small, "gap") + two_seeds(1024, *large, "gap")
    assert verdict(generalization, trials) == expected


@pytest.mark.parametrize("small, large, expected", [
    ((1000, 1010), (5000, 5100), SUPPORTED), ((5000, 5100), (1000, 1010), CONTRADICTED),
    ((1000, 1010), (600, 1500), INCONCLUSIVE)])
def test_throughput(small, large, expected):
    trials = two_seeds(16, *small, "samples_per_s") + two_seeds(1024, *large, "samples_per_s")
    assert verdict(throughput, trials) == expected


@pytest.mark.parametrize("small, large, expected", [
    # steps to reach: batch 16 needs 1000 steps (16,000 examples); batch 256 needs 200 (51,200) or 30 (7,680).
    ((1000, 1010), (200, 205), SUPPORTED), ((1000, 1010), (30, 31), CONTRADICTED),
    ((1000, 1010), (30, 400), INCONCLUSIVE)])
def test_fewer_epochs_at_small_batches(small, large, expected):
    trials = two_seeds(16, *small, "reach_step") + two_seeds(256, *large, "reach_step")
    assert verdict(epochs, trials) == expected


def _grid(best_small, best_large, spread=0.0):
    """Two rates at batch sizes 16 and 512: the named rate reaches the target in 100 steps, the other in 300."""
    trials = []
    for batch_size, best in ((16, best_small), (512, best_large)):
        for base_lr in (0.01, 0.1):
            steps = 100 if base_lr == best else 300
            trials += [trial(batch_size, seed=0, base_lr=base_lr, reach_step=steps),
                       trial(batch_size, seed=1, base_lr=base_lr, reach_step=steps + spread)]
    return trials


def test_learning_rate_grows_with_batch_size():
    assert verdict(lr_scaling, _grid(0.01, 0.1)) == SUPPORTED
    assert verdict(lr_scaling, _grid(0.1, 0.01)) == CONTRADICTED
    assert verdict(lr_scaling, _grid(0.01, 0.1, spread=400)) == INCONCLUSIVE
    assert verdict(lr_scaling, [trial(16, reach_step=10), trial(512, reach_step=10)]) == UNTESTABLE


@pytest.mark.parametrize("small, other, expected", [
    ((0.70, 0.71), (0.90, 0.91), SUPPORTED), ((0.95, 0.96), (0.90, 0.91), CONTRADICTED),
    ((0.70, 0.95), (0.90, 0.91), INCONCLUSIVE)])
def test_batch_norm_at_small_batches(small, other, expected):
    trials = two_seeds(2, *small, "accuracy") + two_seeds(64, *other, "accuracy")
    assert verdict(batch_norm, trials, batch_norm=True) == expected
    assert verdict(batch_norm, trials, batch_norm=False) == UNTESTABLE


@pytest.mark.parametrize("per_size, expected", [
    ({16: 1.0e8, 64: 1.2e8, 256: 2.0e8, 1024: 5.2e8}, SUPPORTED),      # 100 MB + 0.4 MB per example
    ({16: 1.0e8, 64: 1.0e8, 256: 1.01e8, 1024: 1.02e8}, CONTRADICTED),
    ({16: 1.0e8, 64: 4.0e8, 256: 1.0e8, 1024: 4.2e8}, INCONCLUSIVE)])
def test_memory_is_linear(per_size, expected):
    trials = [trial(size, memory_bytes=value) for size, value in per_size.items()]
    assert verdict(memory, trials, device="cuda:0") == expected
    assert verdict(memory, trials, device="cpu") == UNTESTABLE
    # Each trial's own step memory (measured on the CPU too) is judged, not the process's peak beside it.
    for made, value in zip(trials, per_size.values()):
        made.step_memory_bytes = value
        made.epoch["peak_memory_bytes"][:] = 3e8
    assert verdict(memory, trials, device="cpu") == expected


def _law(sizes, b_crit, s_min=100.0, seeds=(0, 1), wobble=0.02, scatter=None):
    trials = []
    for index, size in enumerate(sizes):
        for seed in seeds:
            steps = s_min * (1 + b_crit / size) * (1 + wobble * seed)
            if scatter is not None:
                steps *= scatter[index]
            trials.append(trial(size, seed=seed, reach_step=steps))
    return trials


def test_diminishing_returns_past_the_critical_batch():
    assert verdict(critical, _law([4, 16, 64, 256, 1024, 4096], 100)) == SUPPORTED
    assert verdict(critical, _law([4, 8, 16, 32, 64], 100_000, s_min=1)) == CONTRADICTED
    assert verdict(critical, _law([4, 16, 64, 256, 1024], 100, scatter=[1, 8, 0.3, 5, 1])) == INCONCLUSIVE
    assert verdict(critical, _law([4, 16], 100)) == UNTESTABLE


def test_every_finding_names_an_existing_preset_and_untestable_says_what_to_run():
    results = findings(run_of([trial(16, reach_step=10)]), TARGET)
    assert len(results) == 7 and len({f.claim_id for f in results}) == 7
    for finding in results:
        assert finding.preset in presets(), finding.preset
        if finding.verdict == UNTESTABLE:
            assert finding.evidence.startswith("Cannot be tested by this run:")
            assert f"Run the preset '{finding.preset}'" in finding.evidence
