"""`report` and `report --json` carry the critical batch, the noise scale and per-trial steps to target, on run
files built by hand (tests/science_runs.py)."""
from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.science.critical_batch import REGIME_FACTOR
from science_runs import steps_law, write_science_run

SIZES = [4, 16, 64, 256, 1024]


def _run(tmp_path, b_simple=None, seeds=(0, 1)):
    trials = []
    for batch_size in SIZES:
        for seed in seeds:
            jitter = 1 + 0.05 * (seed - 0.5)
            for base_lr, slower in ((0.1, 1.0), (0.01, 2.0)):
                spec = {"batch_size": batch_size, "seed": seed, "base_lr": base_lr,
                        "reach_step": steps_law(batch_size) * jitter * slower}
                if b_simple is not None:
                    spec["b_simple"] = b_simple
                trials.append(spec)
    return write_science_run(tmp_path / "science.h5", trials)


def _report(capsys, *args):
    code = main(["report", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_has_the_critical_batch_noise_scale_and_steps_to_target(tmp_path, capsys):
    path = _run(tmp_path, b_simple=80.0)
    code, out, _ = _report(capsys, path, "--target", 0.5, "--json", tmp_path / "report.json")
    assert code == 0
    document = json.loads((tmp_path / "report.json").read_text())
    fit = document["critical_batch"]
    assert fit["target"] == 0.5 and fit["tuned"] is True and fit["unavailable"] == ""
    # Evaluations are log-spaced, so the interpolated steps follow the law to within a few percent.
    assert fit["b_crit"] == pytest.approx(100, rel=0.15)
    assert fit["b_crit_low"] <= fit["b_crit"] <= fit["b_crit_high"] and fit["r2"] > 0.95
    assert fit["regimes"] == {"4": "perfect_scaling", "16": "perfect_scaling", "64": "diminishing_returns",
                              "256": "diminishing_returns", "1024": "no_gain"}
    assert f"Beyond batch size {REGIME_FACTOR * fit['b_crit']:,.0f}" in fit["advice"]
    assert document["noise_scale"]["b_simple"] == pytest.approx(80.0)
    assert len(document["noise_scale"]["trials"]) == len(document["trials"]) == 20
    for trial in document["trials"]:
        assert trial["steps_to_target"] == pytest.approx(trial["samples_to_target"] / trial["batch_size"])
        assert {"time_to_target_s", "best_val_accuracy", "status", "lr", "seed"} <= set(trial)
    verdicts = {f["claim_id"]: f["verdict"] for f in document["findings"]}
    assert len(verdicts) == 7
    assert verdicts["diminishing_returns_past_critical_batch"] == "supported"      # sizes up to 10 x B_crit
    assert verdicts["memory_linear_in_batch_size"] == "untestable"                  # a CPU run
    assert verdicts["small_batches_fewer_epochs"] == "supported"
    assert "Findings:" in out and "Supported: Returns diminish past a critical batch size" in out
    assert "Critical batch (steps to 50.0% validation accuracy, tuned" in out
    assert "Noise scale B_simple, averaged up to the target: 80" in out


def test_without_noise_or_enough_sizes_the_report_says_why(tmp_path, capsys):
    path = write_science_run(tmp_path / "small.h5", [
        {"batch_size": 8, "seed": 0, "base_lr": 0.1, "reach_step": 500},
        {"batch_size": 32, "seed": 0, "base_lr": 0.1, "reach_step": None}])
    code, out, _ = _report(capsys, path, "--target", 0.5, "--json", tmp_path / "report.json")
    document = json.loads((tmp_path / "report.json").read_text())
    assert code == 0
    assert document["critical_batch"]["b_crit"] is None and "the fit needs at least 3" in \
        document["critical_batch"]["unavailable"]
    assert document["critical_batch"]["regimes"] == {"32": "censored"}
    assert document["noise_scale"]["b_simple"] is None
    assert "set [science] noise_scale = true" in document["noise_scale"]["unavailable"]
    censored = [t for t in document["trials"] if t["batch_size"] == 32][0]
    assert censored["steps_to_target"] is None and censored["samples_to_target"] is None
    assert "unavailable: 1 batch size reached the target" in out


def test_batch_norm_trials_give_the_reason(tmp_path, capsys):
    path = write_science_run(tmp_path / "bn.h5", [
        {"batch_size": 8, "seed": 0, "base_lr": 0.1, "reach_step": 500,
         "batch_norm_reason": "batch normalization: each micro-batch would be normalized with its own statistics"}])
    _report(capsys, path, "--target", 0.5, "--json", tmp_path / "report.json")
    noise = json.loads((tmp_path / "report.json").read_text())["noise_scale"]
    assert noise["b_simple"] is None and "batch normalization" in noise["unavailable"]
