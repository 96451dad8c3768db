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
from engine.hardware.energy import (NO_TELEMETRY, NO_TRAINING_CLOCK, NOT_REACHED, mean_gpu_utilization,
                                   telemetry_time_at, trial_energy)
from engine.hardware.rank_scaling import rank_scaling
from engine.runfile import RunData, TrialData, read_run
from engine.science.targets import crossing
from engine.sweep import run_sweep
from tests.test_targets import make_trial


def with_telemetry(trial: TrialData, cpu_energy_j, gpu_utilization=None, unavailable: str = "", gpu_energy_j=None,
                   clock=()) -> TrialData:
    """Telemetry rows one second apart, and training-clock marks (telemetry time, training time)."""
    rows = len(cpu_energy_j)
    trial.telemetry = {m.name: np.full(rows, np.nan, m.dtype) for m in schema.TELEMETRY_METRICS}
    trial.telemetry["time_s"] = np.arange(rows, dtype=np.float64)
    trial.telemetry["cpu_energy_j"] = np.asarray(cpu_energy_j, np.float64)
    if gpu_energy_j is not None:
        trial.telemetry["gpu_energy_j"] = np.asarray(gpu_energy_j, np.float64)
    if gpu_utilization is not None:
        trial.telemetry["gpu_utilization"] = np.asarray(gpu_utilization, np.float32)
    trial.telemetry_unavailable = unavailable
    trial.training_clock = {"time_s": np.array([mark[0] for mark in clock], np.float64),
                            "training_time_s": np.array([mark[1] for mark in clock], np.float64)}
    trial.step = {"step": np.array([1000]), "samples": np.array([8000]), "wall_time_s": np.array([10.0]),
                  "loss": np.zeros(1, np.float32), "lr": np.zeros(1, np.float32), "grad_norm": np.zeros(1, np.float32)}
    return trial


# Setup until 0.3 s; steps logged at training time 0.1 (telemetry 0.4), then an evaluation until 0.6; logged at 1.0
# (1.5), an evaluation until 2.0; logged at 6.0 (7.0) and 10.0 (11.0), a last evaluation until 11.5.
CLOCK = ((0.4, 0.1), (0.6, 0.1), (1.5, 1.0), (2.0, 1.0), (7.0, 6.0), (11.0, 10.0), (11.5, 10.0))


def test_the_training_clock_is_placed_on_the_telemetry_clock_between_marks():
    clock = {"time_s": np.array([m[0] for m in CLOCK]), "training_time_s": np.array([m[1] for m in CLOCK])}
    assert telemetry_time_at(clock, 5.5) == pytest.approx(2.0 + 0.9 * 5.0)      # 4.5 of the 5 s trained from 2.0 on
    assert telemetry_time_at(clock, 1.0) == 1.5              # reached before the evaluation that followed, not after
    assert telemetry_time_at(clock, 0.05) == pytest.approx(0.35)   # before the first mark: trained up to it
    assert math.isnan(telemetry_time_at(clock, 10.5))


def test_energy_to_target_reads_the_counters_where_training_reached_the_target():
    # Target 0.7 is half way in log-steps between the evaluations at steps 100 and 1000, at training time
    # 1.0 + 0.5 × 9.0 = 5.5 s, which the marks place at 6.5 s on the telemetry clock. There the CPU counter (3 W,
    # a NaN sample skipped) reads 19.5 J and the GPU's (t² J) 42.5 J, between its samples of 36 and 49 J.
    seconds = np.arange(13, dtype=np.float64)
    cpu = 3 * seconds
    cpu[4] = np.nan
    trial = with_telemetry(make_trial(batch_size=8), cpu, gpu_energy_j=seconds ** 2, clock=CLOCK)
    summary = summarize_trial(trial, 0.7)
    assert summary.time_to_target_s == pytest.approx(5.5)
    assert summary.energy_to_target_j == pytest.approx(19.5 + 42.5, rel=1e-12)
    assert summary.energy_j == 36.0 + 144.0 and summary.energy_per_example_j == 180.0 / 8000
    assert summary.energy_unavailable == ""


def test_energy_to_target_is_unavailable_with_its_reason():
    found = crossing(make_trial(batch_size=8), 0.7)
    without_counter = with_telemetry(make_trial(batch_size=8), [np.nan] * 3, clock=CLOCK,
                                     unavailable="cpu energy: RAPL counters not readable")
    energy = trial_energy(without_counter, 8000, found)
    assert math.isnan(energy.total_j) and math.isnan(energy.to_target_j)
    assert energy.unavailable == "cpu energy: RAPL counters not readable"
    old_file = make_trial(batch_size=8)                 # no telemetry group: written before it existed
    assert trial_energy(old_file, 8000, found).unavailable == NO_TELEMETRY
    no_clock = with_telemetry(make_trial(batch_size=8), [0.0, 4.0])       # energy, but no training clock
    energy = trial_energy(no_clock, 8000, found)
    assert energy.total_j == 4.0 and math.isnan(energy.to_target_j) and energy.unavailable == NO_TRAINING_CLOCK
    missed = with_telemetry(make_trial(batch_size=8, accuracy=(0.2, 0.5, 0.6)), [0.0, 4.0], clock=CLOCK)
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


def test_a_sweep_marks_its_training_clock_and_report_carries_energy_to_target(tmp_path, tiny_config, capsys):
    path = run_sweep(tiny_config(sweep={"batch_sizes": [32]}, train={"epochs": 1}), tmp_path)
    # This machine cannot read its energy counters: give the file a 2 W counter, as a machine with RAPL would have.
    with h5py.File(path, "r+") as handle:
        for trial in handle[schema.TRIALS_GROUP].values():
            telemetry = trial[schema.TELEMETRY_GROUP]
            telemetry["cpu_energy_j"][...] = 2.0 * telemetry["time_s"][()]
    run = read_run(path)
    for trial in run.trials:
        clock = trial.training_clock
        assert len(clock["time_s"]) >= 3 and np.all(np.diff(clock["time_s"]) >= 0)
        assert np.all(np.diff(clock["training_time_s"]) >= 0)
        assert clock["training_time_s"][-1] == trial.epoch["wall_time_s"][-1]     # the last epoch's end
        assert np.all(clock["time_s"] >= clock["training_time_s"])   # setup and evaluations are on one clock only
    assert main(["report", str(path), "--target", "0.01", "--json", str(tmp_path / "report.json")]) == 0
    text = capsys.readouterr().out
    document = json.loads((tmp_path / "report.json").read_text())
    for trial, entry in zip(run.trials, document["trials"]):
        found = crossing(trial, 0.01)
        assert entry["energy_per_example_j"] == pytest.approx(entry["energy_j"] / int(trial.step["samples"][-1]))
        # 2 W from the trial's start: at least the training time to the target, at most the whole trial.
        assert 2.0 * found.time_s <= entry["energy_to_target_j"] <= entry["energy_j"]
        assert f"batch {trial.batch_size}: {entry['energy_to_target_j']:.3g} J" in text
    assert all("energy_to_target_j" in candidate for candidate in document["candidates"])
    assert "Energy to target (1.0%" in text and "J to target" in text
