"""Energy to target and GPU utilisation per trial (engine.hardware.energy), throughput against ranks
(engine.hardware.rank_scaling), and both in `report` and `report --json`."""
from __future__ import annotations

import dataclasses
import json
import math

import h5py
import numpy as np
import pytest

from engine import schema
from engine.analysis import summarize_trial
from engine.cli import main
from engine.hardware.energy import NO_TELEMETRY, NOT_REACHED, mean_gpu_utilization, trial_energy
from engine.hardware.rank_scaling import rank_scaling
from engine.runfile import RunData, TrialData, read_run
from engine.science.targets import crossing
from engine.sweep import run_sweep
from tests.test_targets import make_trial


def with_telemetry(trial: TrialData, cpu_energy_j, gpu_utilization=None, unavailable: str = "") -> TrialData:
    rows = len(cpu_energy_j)
    trial.telemetry = {m.name: np.full(rows, np.nan, m.dtype) for m in schema.TELEMETRY_METRICS}
    trial.telemetry["time_s"] = np.arange(rows, dtype=np.float64) * 0.1
    trial.telemetry["cpu_energy_j"] = np.asarray(cpu_energy_j, np.float64)
    if gpu_utilization is not None:
        trial.telemetry["gpu_utilization"] = np.asarray(gpu_utilization, np.float32)
    trial.telemetry_unavailable = unavailable
    trial.step = {"step": np.array([1000]), "samples": np.array([8000]), "wall_time_s": np.array([10.0]),
                  "loss": np.zeros(1, np.float32), "lr": np.zeros(1, np.float32), "grad_norm": np.zeros(1, np.float32)}
    return trial


def test_energy_to_target_is_energy_per_example_times_the_interpolated_examples_to_target():
    # 8000 examples trained on 16 J (the counter's last value, NaN rows skipped): 2 mJ per example. The target 0.7 is
    # half way in log-steps between steps 100 and 1000: 10 ** 2.5 steps of 8 examples.
    trial = with_telemetry(make_trial(batch_size=8), [0.0, 3.0, 9.5, np.nan, 16.0])
    summary = summarize_trial(trial, 0.7)
    assert summary.energy_j == 16.0 and summary.energy_per_example_j == 16.0 / 8000
    assert summary.energy_to_target_j == pytest.approx(16.0 / 8000 * 8 * 10 ** 2.5, rel=1e-12)
    assert summary.energy_to_target_j == pytest.approx(summary.energy_per_example_j * summary.samples_to_target)


def test_energy_to_target_is_unavailable_with_its_reason():
    found = crossing(make_trial(batch_size=8), 0.7)
    without_counter = with_telemetry(make_trial(batch_size=8), [np.nan] * 3,
                                     unavailable="cpu energy: RAPL counters not readable")
    energy = trial_energy(without_counter, 8000, found)
    assert math.isnan(energy.total_j) and math.isnan(energy.to_target_j)
    assert energy.unavailable == "cpu energy: RAPL counters not readable"
    old_file = make_trial(batch_size=8)                 # no telemetry group: written before it existed
    assert trial_energy(old_file, 8000, found).unavailable == NO_TELEMETRY
    missed = with_telemetry(make_trial(batch_size=8, accuracy=(0.2, 0.5, 0.6)), [0.0, 4.0])
    energy = trial_energy(missed, 8000, crossing(missed, 0.7))
    assert energy.total_j == 4.0 and math.isnan(energy.to_target_j) and energy.unavailable == NOT_REACHED


def test_gpu_utilisation_is_the_mean_of_the_sampled_rows_and_nan_without_a_gpu():
    assert mean_gpu_utilization(with_telemetry(make_trial(), [0.0] * 4, [np.nan, 40, 60, 80])) == 60.0
    assert math.isnan(mean_gpu_utilization(with_telemetry(make_trial(), [0.0] * 4)))
    assert math.isnan(mean_gpu_utilization(make_trial()))


def _run(trials: list[TrialData]) -> RunData:
    return RunData(path=None, header=None, config_text="", environment={}, trials=trials)


def _ranked(batch_size: int, ranks: int, samples_per_s: float, communication_s: float = math.nan) -> TrialData:
    trial = make_trial(batch_size=batch_size)
    trial.epoch = dict(trial.epoch, samples=np.array([500, 1000]), wall_time_s=np.array([500, 1000]) / samples_per_s)
    return dataclasses.replace(trial, ranks=ranks, communication_s=communication_s)


def test_throughput_against_ranks_has_the_ideal_line_and_the_efficiency():
    one, two = _run([_ranked(32, 1, 1000.0), _ranked(64, 1, 2000.0)]), \
        _run([_ranked(32, 2, 1500.0, communication_s=0.25), _ranked(64, 2, 4000.0, communication_s=0.1)])
    scaling = rank_scaling([one, two])
    assert scaling.rank_counts == [1, 2] and scaling.advice == ""
    small = {point.ranks: point for point in scaling.at(32)}
    assert small[1].efficiency == 1.0 and small[2].ideal_samples_per_s == pytest.approx(2000.0)
    assert small[2].samples_per_s == pytest.approx(1500.0) and small[2].efficiency == pytest.approx(0.75)
    assert small[2].communication_share == pytest.approx(0.25 / (1000 / 1500.0)) and math.isnan(small[1].communication_share)
    assert {p.ranks: p.efficiency for p in scaling.at(64)} == pytest.approx({1: 1.0, 2: 1.0})
    two.config_text = "[train]\nlr = 0.5\n"
    assert "differ in more than data_parallel (train.lr)" in rank_scaling([one, two]).advice
    alone = rank_scaling([two])
    assert alone.rank_counts == [2] and "data_parallel = 1, 2, 4" in alone.advice


def test_report_and_json_carry_energy_to_target(tmp_path, tiny_config, capsys):
    path = run_sweep(tiny_config(sweep={"batch_sizes": [16, 32]}, train={"epochs": 1}), tmp_path)
    # This machine cannot read its energy counters: give the file the counter a machine with RAPL would have written.
    with h5py.File(path, "r+") as handle:
        for trial in handle[schema.TRIALS_GROUP].values():
            counter = trial[f"{schema.TELEMETRY_GROUP}/cpu_energy_j"]
            counter[...] = np.linspace(0.0, 5.0, counter.shape[0])
    run = read_run(path)
    assert main(["report", str(path), "--target", "0.01", "--json", str(tmp_path / "report.json")]) == 0
    text = capsys.readouterr().out
    document = json.loads((tmp_path / "report.json").read_text())
    for trial, entry in zip(run.trials, document["trials"]):
        samples = int(trial.step["samples"][-1])
        found = crossing(trial, 0.01)
        assert entry["energy_per_example_j"] == pytest.approx(5.0 / samples)
        assert entry["energy_to_target_j"] == pytest.approx(5.0 / samples * found.samples)
        assert f"batch {trial.batch_size}: {entry['energy_to_target_j']:.3g} J" in text
    assert all("energy_to_target_j" in candidate for candidate in document["candidates"])
    assert "Energy to target (1.0%" in text and "J to target" in text
