"""Evaluations on a schedule in examples seen ([science] eval_schedule): the same points for every batch size, real
training, stored in the trial's eval/ group with units, read back and checked like every dataset."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from engine import schema
from engine.config import ScienceConfig
from engine.errors import RunFileError
from engine.events import Evaluated
from engine.live import LiveRun
from engine.runfile import read_run
from engine.science.schedule import EvalSchedule, points_up_to
from engine.sweep import run_sweep


def test_log_schedule_points_are_log_spaced_from_100_examples():
    points = points_up_to(ScienceConfig(eval_schedule="log", eval_per_decade=4), 10_000)
    assert points == [100, 178, 317, 563, 1000, 1779, 3163, 5624, 10_000]


def test_every_schedule_and_epoch_schedule():
    assert points_up_to(ScienceConfig(eval_schedule="every", eval_every=300), 1000) == [300, 600, 900]
    assert points_up_to(ScienceConfig(eval_schedule="epoch"), 10**9) == []
    assert EvalSchedule(ScienceConfig(eval_schedule="epoch")).at_epochs


def test_a_step_that_passes_several_points_is_evaluated_once():
    schedule = EvalSchedule(ScienceConfig(eval_schedule="log", eval_per_decade=4))
    due = [samples for samples in range(512, 512 * 6, 512) if schedule.due(samples)]
    # 512 passes 100, 178, 317; 1024 passes 563, 1000; 1536 passes nothing; 2048 passes 1779.
    assert due == [512, 1024, 2048]


def test_every_batch_size_is_evaluated_at_the_first_step_past_each_point(tiny_config, tmp_path):
    events = []
    config = tiny_config(science={"eval_schedule": "log", "eval_per_decade": 6})
    run = read_run(run_sweep(config, tmp_path, on_event=events.append))
    for trial in run.trials:
        expected = []
        for point in points_up_to(config.science, int(trial.step["samples"][-1])):
            step = -(-point // trial.batch_size)
            if not expected or expected[-1] != step:
                expected.append(step)
        assert list(trial.eval["step"]) == expected, trial.name
        np.testing.assert_array_equal(trial.eval["samples"], trial.eval["step"] * trial.batch_size)
        # The evaluation's clock is the training clock at that step: evaluation time is left out.
        at_step = np.interp(trial.eval["step"], trial.step["step"], trial.step["wall_time_s"])
        np.testing.assert_allclose(trial.eval["wall_time_s"], at_step, rtol=0, atol=0.05)
        assert np.all((trial.eval["val_accuracy"] >= 0) & (trial.eval["val_accuracy"] <= 1))
    evaluated = [e for e in events if isinstance(e, Evaluated)]
    assert len(evaluated) == sum(len(t.eval["step"]) for t in run.trials)
    with h5py.File(run.path) as handle:
        group = handle[f"trials/{run.trials[0].name}/{schema.EVAL_GROUP}"]
        assert {name: group[name].attrs["units"] for name in group} == {m.name: m.units for m in schema.EVAL_METRICS}


def test_epoch_schedule_evaluates_once_per_epoch_with_the_epoch_values(tiny_config, tmp_path):
    run = read_run(run_sweep(tiny_config(science={"eval_schedule": "epoch"}, sweep={"batch_sizes": [32]}), tmp_path))
    trial = run.trials[0]
    for key in ("step", "samples", "wall_time_s", "val_loss", "val_accuracy"):
        np.testing.assert_array_equal(trial.eval[key], trial.epoch[key], err_msg=key)


def test_the_live_run_equals_the_file_with_evaluations_and_noise(tiny_config, tmp_path):
    live = LiveRun()
    config = tiny_config(science={"noise_scale": True, "noise_every": 3})
    saved = read_run(run_sweep(config, tmp_path, on_event=live.apply))
    for live_trial, saved_trial in zip(live.run.trials, saved.trials):
        assert len(saved_trial.eval["step"]) and len(saved_trial.noise["step"])
        for group in schema.TRIAL_GROUPS:
            for name, values in getattr(saved_trial, group).items():
                np.testing.assert_array_equal(getattr(live_trial, group)[name], values, err_msg=f"{group}/{name}")


def _file_with_evaluations(tiny_config, tmp_path):
    return run_sweep(tiny_config(sweep={"batch_sizes": [32]}), tmp_path)


def test_files_without_the_eval_group_read_with_no_evaluations(tiny_config, tmp_path):
    path = _file_with_evaluations(tiny_config, tmp_path)
    with h5py.File(path, "a") as handle:
        trial = handle["trials/bs00032_seed0"]
        del trial[schema.EVAL_GROUP], trial[schema.NOISE_GROUP]
        handle.attrs["format_version"] = 1
    trial = read_run(path).trials[0]
    assert len(trial.eval["step"]) == 0 and len(trial.noise["step"]) == 0 and len(trial.epoch["step"]) == 2


@pytest.mark.parametrize("damage, words", [
    (lambda group: group.__delitem__("val_accuracy"), "eval/val_accuracy: missing"),
    (lambda group: (group.__delitem__("step"), group.create_dataset("step", data=np.zeros((2, 2)))),
     "eval/step: shape (2, 2), expected one dimension"),
    (lambda group: (group.__delitem__("val_loss"), group.create_dataset("val_loss", data=np.array([b"x"]))),
     "eval/val_loss: values of type"),
])
def test_a_damaged_eval_group_is_one_clear_line(tiny_config, tmp_path, damage, words):
    path = _file_with_evaluations(tiny_config, tmp_path)
    with h5py.File(path, "a") as handle:
        damage(handle[f"trials/bs00032_seed0/{schema.EVAL_GROUP}"])
    with pytest.raises(RunFileError, match="damaged run file") as error:
        read_run(path)
    assert words in str(error.value) and "\n" not in str(error.value)
