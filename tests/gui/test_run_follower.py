"""Following a run file that is being written: the window opened on it shows each new epoch, and stops
following once the writer closes it. The writer is the real RunWriter, holding HDF5's lock as a command-line
sweep does; the follower's timer is stepped by calling check()."""
from __future__ import annotations

import numpy as np
import pytest

from engine import schema
from engine.runfile import RunWriter, read_run
from gui.run_follower import RunFollower

CONFIG = 'name = "followed"\n[data]\ndataset = "synthetic"\n[model]\nkind = "mlp"\n'


class Sweep:
    """A run file written one epoch at a time, as engine.sweep writes it."""

    def __init__(self, path):
        self.writer = RunWriter(path, CONFIG, {"device_name": "test cpu"})
        self.writer.start_trial("bs00008_seed0", {"batch_size": 8, "seed": 0, "lr": 0.1, "base_lr": 0.1})
        self.epochs = 0

    def epoch(self) -> None:
        self.epochs += 1
        steps = np.arange(1, 11) + 10 * (self.epochs - 1)
        self.writer.add_steps("bs00008_seed0", {"step": steps, "samples": steps * 8, "wall_time_s": steps * 0.1,
                                                "loss": np.full(10, 1.0 / self.epochs, np.float32),
                                                "lr": np.full(10, 0.1, np.float32),
                                                "grad_norm": np.ones(10, np.float32)})
        self.writer.add_epoch("bs00008_seed0", {m.name: self.epochs for m in schema.EPOCH_METRICS})

    def finish(self) -> None:
        self.writer.end_trial("bs00008_seed0", schema.COMPLETED)
        self.writer.close(schema.COMPLETED)


@pytest.fixture
def sweep(tmp_path):
    sweep = Sweep(tmp_path / "followed.h5")
    sweep.epoch()
    yield sweep
    sweep.writer.close(schema.CANCELLED)


def test_follower_reads_again_only_when_the_file_changed(qtbot, sweep):
    follower = RunFollower()
    follower.follow([read_run(sweep.writer.path)])
    assert follower.followed() == [sweep.writer.path]
    updates = []
    follower.updated.connect(updates.append)
    follower.check()
    assert updates == []                                   # nothing new: no read
    sweep.epoch()
    follower.check()
    assert [run.trials[0].epochs_done for run in updates] == [2]
    assert updates[0].header.being_written
    sweep.finish()
    with qtbot.waitSignal(follower.finished, timeout=5000) as finished:
        follower.check()
    assert finished.args[0] == sweep.writer.path
    assert updates[-1].header.status == schema.COMPLETED and follower.followed() == []


def test_a_finished_run_is_not_followed(tmp_path, sweep):
    sweep.finish()
    follower = RunFollower()
    follower.follow([read_run(sweep.writer.path)])
    assert follower.followed() == []


def test_the_window_shows_each_new_epoch_of_an_opened_running_file(qtbot, sweep):
    from gui.main_window import MainWindow
    window = MainWindow()
    qtbot.addWidget(window)
    window.open_runs([sweep.writer.path])
    assert window.shown_runs()[0].trials[0].epochs_done == 1
    assert window.run_follower.followed() == [sweep.writer.path]
    sweep.epoch()
    sweep.epoch()
    window.run_follower.check()
    assert window.shown_runs()[0].trials[0].epochs_done == 3
    sweep.finish()
    window.run_follower.check()
    assert window.shown_runs()[0].header.status == schema.COMPLETED
    assert window.run_follower.followed() == []
    window.quit_without_asking()
