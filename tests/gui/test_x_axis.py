"""The x axis arithmetic of the live plots (gui/x_axis.py), on real run files, without Qt."""
from __future__ import annotations

import numpy as np
import pytest

from engine import schema
from engine.runfile import read_run
from gui.x_axis import X_AXES, data_range, map_range, x_values
from tests.gui.runfactory import write_run


@pytest.fixture(scope="module")
def trials(tmp_path_factory):
    path = tmp_path_factory.mktemp("x") / "run.h5"
    return read_run(write_run(path, batch_sizes=(16, 128), epochs=3, train_size=1024)).trials


def test_step_points_lie_between_epochs_on_the_epoch_axis(trials):
    trial = trials[0]
    x = x_values(trial, schema.STEP_GROUP, "epoch")
    assert x[trial.steps_per_epoch - 1] == 1.0 and x[-1] == 3.0
    with pytest.raises(ValueError):
        x_values(trial, schema.STEP_GROUP, "minutes")


def test_data_range_covers_every_point_and_only_positive_ones_on_request(trials):
    low, high = data_range(trials, "samples")
    assert low == min(t.step["samples"][0] for t in trials) and high == max(t.step["samples"][-1] for t in trials)
    assert data_range([], "epoch") is None
    assert data_range(trials, "epoch", positive=True)[0] > 0


def test_a_range_maps_through_each_trials_progress(trials):
    large = trials[1]
    # Epochs 1 to 2 in samples seen: the same samples for both (an epoch is the training set), in seconds not.
    assert map_range(trials, "epoch", "samples", 1.0, 2.0) == pytest.approx((1024, 2048), rel=0.02)
    low, high = map_range(trials, "epoch", "wall_time_s", 1.0, 2.0)
    for trial in trials:
        at = np.interp([1.0, 2.0], x_values(trial, schema.STEP_GROUP, "epoch"), trial.step["wall_time_s"])
        assert low <= at[0] + 1e-9 and at[1] <= high + 1e-9
    assert map_range(trials, "epoch", "step", 10.0, 20.0) is None          # past the end: nothing to keep
    for key in X_AXES:                                                     # and back again
        there = map_range(trials, "samples", key, 1024, 2048)
        assert map_range([large], key, "samples", *map_range([large], "samples", key, 1024, 2048)) == \
            pytest.approx((1024, 2048), rel=0.02)
        assert there is not None
