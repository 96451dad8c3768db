"""The Summary's hardware views on a real tiny run file: energy to target, GPU utilisation (only where a GPU was
sampled) and throughput against ranks (runs of one experiment with different data_parallel compared)."""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import Qt

from engine import schema
from engine.analysis import by_batch_size, summarize_run
from engine.config import parse_config
from engine.hardware.rank_scaling import rank_scaling
from engine.runfile import read_run
from engine.sweep import run_sweep
from gui.summary import SummaryView
from tests.conftest import tiny_table


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return run_sweep(parse_config(tiny_table(sweep={"batch_sizes": [16, 64]}, train={"epochs": 1})),
                     tmp_path_factory.mktemp("trained"))


@pytest.fixture
def run_path(trained, tmp_path):
    """A copy of one real tiny run file per test, which the test may change."""
    return Path(shutil.copy(trained, tmp_path / "run.h5"))


def measured_elsewhere(path, gpu: bool, ranks: int = 1) -> None:
    """What a machine with readable energy counters (and a GPU, and ranks) would have written into the file."""
    with h5py.File(path, "r+") as handle:
        for trial in handle[schema.TRIALS_GROUP].values():
            telemetry = trial[schema.TELEMETRY_GROUP]
            rows = telemetry["time_s"].shape[0]
            telemetry["cpu_energy_j"][...] = np.linspace(0.0, trial.attrs["batch_size"] / 4, rows)
            if gpu:
                telemetry["gpu_utilization"][...] = np.full(rows, trial.attrs["batch_size"] / 2)
            if ranks > 1:
                trial.attrs["ranks"], trial.attrs["communication_s"] = ranks, 0.01


def test_energy_to_target_and_gpu_cards_show_the_engine_figures(qtbot, run_path):
    view = SummaryView()
    qtbot.addWidget(view)
    view.resize(1300, 900)
    view.show()
    view.set_runs([read_run(run_path)])
    assert "gpu_utilization" not in view.plot_names()        # no GPU sampled: no card of × marks, no column
    assert not [h for h in view.table_headers() if h.startswith("GPU")]
    assert {p.reason for p in view.missing("energy_to_target")} <= {"not measured here (no readable energy counter)",
                                                                    "not reached"}

    measured_elsewhere(run_path, gpu=True)
    run = read_run(run_path)
    view.set_runs([run])
    view.set_target_accuracy(0.01)
    expected = {entry.batch_size: entry.mean for entry in by_batch_size(summarize_run(run, 0.01))}
    energy = {p.batch_size: p.mean for p in view.points("energy_to_target")}
    assert energy == {size: pytest.approx(mean["energy_to_target_j"]) for size, mean in expected.items()}
    assert all(value > 0 for value in energy.values())
    assert "gpu_utilization" in view.plot_names()
    assert {p.batch_size: p.mean for p in view.points("gpu_utilization")} == {16: 8.0, 64: 32.0}
    assert "GPU utilisation (%) mean" in view.table_headers()
    column = view.table_headers().index("Energy to target (J) mean")
    assert {row[0]: row[column] for row in view.table_rows()} == energy
    for name in ("energy_to_target", "gpu_utilization"):
        card = view.card(name)
        assert card.caption.text() and card.plot_item().getAxis("bottom").labelText == "Batch size"
        assert "(J)" in card.title.text() or "(%)" in card.title.text()


def test_throughput_against_ranks_compares_runs_and_says_how_to_see_scaling(qtbot, run_path, tmp_path):
    view = SummaryView()
    qtbot.addWidget(view)
    view.resize(1300, 900)
    view.show()
    view.set_runs([read_run(run_path)])
    card = view.card("rank_scaling")
    assert "data_parallel = 1, 2, 4" in card.note.text()
    assert len(view.points("rank_scaling")) == 2              # each batch size's throughput at its one rank count

    two_ranks = tmp_path / "two-ranks.h5"
    shutil.copy(run_path, two_ranks)
    measured_elsewhere(two_ranks, gpu=False, ranks=2)
    runs = [read_run(run_path), read_run(two_ranks)]
    view.set_runs(runs)
    scaling = rank_scaling(runs)
    assert sorted((p.batch_size, p.mean) for p in view.points("rank_scaling")) == \
        sorted((p.batch_size, p.samples_per_s) for p in scaling.points)
    assert len(scaling.points) == 4 and "Scaling efficiency at 2 ranks: batch 16" in card.note.text()
    assert "All-reduce in flight at 2 ranks" in card.note.text()
    assert card.plot_item().getAxis("bottom").labelText.startswith("Ranks")
    ideal = [item for item in card.plot_item().items if isinstance(item, pg.PlotDataItem)
             and pg.mkPen(item.opts["pen"]).style() == Qt.PenStyle.DashLine]      # one ideal line per batch size
    assert len(ideal) == 2
