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


GRID = [0.005 * 2**k for k in range(12)]       # 0.005 to 10.24, doubling: fine enough to tell ½ from 1


def _lr_grid(best_rate, sizes=(16, 64, 256, 1024), rates=GRID, seeds=(0, 1)):
    """Every rate of `rates` at each batch size; seed s reaches the target in 100 steps at best_rate(size, s) and
    100 more per grid step away from it."""
    trials = []
    for batch_size in sizes:
        for seed in seeds:
            best = best_rate(batch_size, seed)
            for rate in rates:
                away = abs(round(np.log2(rate / best)))
                trials.append(trial(batch_size, seed=seed, base_lr=rate, reach_step=100 * (1 + away)))
    return trials


def lr_finding(trials):
    return lr_scaling.judge(context_of(run_of(trials), TARGET))


@pytest.mark.parametrize("best_rate, expected, rule", [
    (lambda size, seed: 0.02 * size / 16, SUPPORTED, lr_scaling.LINEAR),
    (lambda size, seed: 0.02 * (size / 16) ** 0.5, SUPPORTED, lr_scaling.SQUARE_ROOT),
    (lambda size, seed: 0.08, CONTRADICTED, lr_scaling.NO_GROWTH),
    (lambda size, seed: 0.01 * (size / 16) ** 1.5, CONTRADICTED, lr_scaling.NEITHER),
    # One seed follows the linear rule, the other no rule at all: the bootstrap over seeds holds every slope.
    (lambda size, seed: 0.02 * size / 16 if seed == 0 else 0.08, INCONCLUSIVE, lr_scaling.UNDECIDED)])
def test_learning_rate_rule_from_the_slope_of_the_best_rates(best_rate, expected, rule):
    finding = lr_finding(_lr_grid(best_rate))
    assert (finding.verdict, finding.numbers["rule"]) == (expected, rule), finding.evidence
    assert finding.numbers["slope_low"] <= finding.numbers["slope"] <= finding.numbers["slope_high"]
    assert f"slope {finding.numbers['slope']:.2f}, 95% interval" in finding.evidence


def test_learning_rate_rule_needs_a_grid_fine_and_wide_enough_to_tell():
    linear = lambda size, seed: 0.02 * size / 16  # noqa: E731
    # A tenfold grid over 16..1024 is too coarse to tell ½ from 1, even with a single seed (no bootstrap).
    coarse = lr_finding(_lr_grid(linear, rates=[0.002, 0.02, 0.2, 2.0, 20.0], seeds=(0,)))
    assert coarse.verdict == INCONCLUSIVE and "the linear rule (slope 1) and the square-root" in coarse.evidence
    # The largest batch size's best is the grid's top rate: the slope could be larger still.
    edge = lr_finding(_lr_grid(linear, rates=GRID[:9]))
    assert edge.numbers["slope_high"] == float("inf")
    assert "the grid's largest rate is the best at batch size 1024, so the true best may lie beyond" in edge.evidence
    assert verdict(lr_scaling, [trial(16, reach_step=10), trial(512, reach_step=10)]) == UNTESTABLE


def test_the_learning_rate_plot_shows_each_seed_and_both_rules():
    plot = lr_finding(_lr_grid(lambda size, seed: 0.02 * size / 16 * (2 if seed else 1))).plot
    assert list(zip(plot.batch_sizes, plot.values))[:2] == [(16, 0.02), (16, 0.04)]     # each seed's own best
    assert len(plot.values) == 8 and plot.log_y
    linear, square_root = plot.lines[2], plot.lines[3]
    assert linear.name == "linear rule" and linear.values[-1] == pytest.approx(linear.values[0] * 64)
    assert square_root.name == "square-root rule" and square_root.values[-1] == pytest.approx(square_root.values[0] * 8)


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


def test_each_finding_returns_the_series_its_plot_draws_per_seed_with_their_mean():
    gaps = lambda: two_seeds(16, 0.02, 0.03, "gap") + two_seeds(1024, 0.10, 0.11, "gap")  # noqa: E731
    plot = generalization.judge(context_of(run_of(gaps()), TARGET)).plot
    assert plot.batch_sizes == [16, 16, 1024, 1024]
    assert plot.values == pytest.approx([2, 3, 10, 11]) and plot.lines[0].values == pytest.approx([2.5, 10.5])
    speeds = two_seeds(16, 1000, 1010, "samples_per_s") + two_seeds(1024, 5000, 5100, "samples_per_s")
    plot = throughput.judge(context_of(run_of(speeds), TARGET)).plot
    assert plot.values == pytest.approx([1000, 1010, 5000, 5100]) and plot.log_y
    plot = epochs.judge(context_of(run_of(two_seeds(16, 1000, 1010, "reach_step")), TARGET)).plot
    assert plot is None                                        # untestable: one batch size, nothing to draw
    sizes = {16: 1.0e8, 64: 1.2e8, 256: 2.0e8, 1024: 5.2e8}
    plot = memory.judge(context_of(run_of([trial(size, memory_bytes=value) for size, value in sizes.items()],
                                          device="cuda:0"), TARGET)).plot
    assert plot.values == pytest.approx([value / 2**20 for value in sizes.values()])
    fit = plot.lines[1]
    assert fit.dashed and fit.values[0] == pytest.approx(1.0e8 / 2**20, rel=0.05)
    plot = critical.judge(context_of(run_of(_law([4, 16, 64, 256, 1024, 4096], 100)), TARGET)).plot
    assert len(plot.values) == 12 and [line.name for line in plot.lines] == ["median over seeds", "S_min + E_min/B"]
    document = plot.document()
    assert document["points"][0] == {"batch_size": 4, "value": plot.values[0]} and document["log_y"]


def test_the_json_report_holds_each_findings_plotted_series():
    import json

    from engine.science.report import analyse, science_document

    trials = two_seeds(16, 0.02, 0.03, "gap") + two_seeds(1024, 0.10, 0.11, "gap")
    science = analyse(run_of(trials), TARGET)
    document = json.loads(json.dumps(science_document(science), allow_nan=False))
    for finding, entry in zip(science.findings, document["findings"]):
        assert entry["plot"] == (finding.plot.document() if finding.plot is not None else None)
    gap = next(entry for entry in document["findings"] if entry["claim_id"] == generalization.CLAIM_ID)
    assert [point["value"] for point in gap["plot"]["points"]] == pytest.approx([2, 3, 10, 11])



def test_report_png_draws_every_findings_evidence_beside_the_summary(tmp_path):
    from pathlib import Path

    from engine.figures import findings_figure, findings_figure_path

    context = context_of(run_of(two_seeds(16, 0.02, 0.03, "gap") + two_seeds(1024, 0.10, 0.11, "gap")), TARGET)
    results = [generalization.judge(context), batch_norm.judge(context)]       # a plot, and an untestable claim
    assert results[0].plot is not None and results[1].plot is None
    destination = findings_figure_path(Path(tmp_path / "out.png"))
    assert destination == tmp_path / "out-findings.png"
    findings_figure(results, destination)
    assert destination.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
