"""The Summary's memory card shows each trial's step memory where the runs measured it, with the sweep's memory
model in its caption; runs without it keep the process peak."""
from __future__ import annotations

import math

import h5py
import pyqtgraph as pg
import pytest

from engine import schema
from engine.config import parse_config
from engine.runfile import read_run
from engine.sweep import run_sweep
from engine.hardware.memory_model import sweep_memory
from engine.hardware.telemetry import energy_j
from gui.summary import SummaryView
from gui.summary_cards import MEMORY_FIT_NAME, MEMORY_LIMIT_NAME
from tests.conftest import tiny_table


def test_the_memory_card_plots_step_memory_with_the_fit_and_falls_back_without_it(qtbot, tmp_path):
    view = SummaryView()
    qtbot.addWidget(view)
    view.resize(1200, 800)
    view.show()
    path = run_sweep(parse_config(tiny_table(sweep={"batch_sizes": [16, 64, 128]})), tmp_path)
    run = read_run(path)
    view.set_runs([run])
    card = view.card("memory")
    assert "Memory per training step" in card.title.text()
    assert "per example" in card.caption.text() and "will not fit" in card.caption.text()
    points = {point.batch_size: point.mean for point in view.points("memory")}
    measured = {trial.batch_size: trial.step_memory_bytes for trial in run.trials}
    scale = 1 / 2**20   # the card shows MiB
    assert points == {size: value * scale for size, value in measured.items()}
    assert any(isinstance(item, pg.PlotDataItem) for item in view.plot_item("memory").items)   # joined: comparable
    fit = [item for item in view.plot_item("memory").items
           if isinstance(item, pg.PlotDataItem) and item.name() == MEMORY_FIT_NAME]
    assert len(fit) == 1
    xs, ys = fit[0].getData()
    model = sweep_memory(run).model
    assert ys[0] == pytest.approx(model.bytes_at(16) * scale) and ys[-1] == pytest.approx(model.bytes_at(128) * scale)
    limit = [item for item in view.plot_item("memory").items if isinstance(item, pg.InfiniteLine)]
    assert [line.value() for line in limit] == [pytest.approx(sweep_memory(run).device_bytes * scale)]
    assert MEMORY_LIMIT_NAME in limit[0].toolTip()
    # The table shows the trial's own figure, its source in the header's tooltip; not the process peak.
    headers = view.table_headers()
    assert "Memory per step (MiB) mean" in headers and not [h for h in headers if h.startswith("Peak memory")]
    table = view.table_widget()
    titles = {table.horizontalHeaderItem(i).text(): table.horizontalHeaderItem(i) for i in range(table.columnCount())}
    assert run.trials[0].step_memory_method in titles["Memory per step (MiB)"].toolTip()
    column = headers.index("Memory per step (MiB) mean")
    assert {row[0]: row[column] for row in view.table_rows()} == points

    with h5py.File(path, "r+") as handle:                  # as written before step memory was recorded
        for trial in handle[schema.TRIALS_GROUP].values():
            for key in schema.TRIAL_MEMORY_ATTRS:
                del trial.attrs[key]
    view.set_runs([read_run(path)])
    assert "Peak memory, whole process" in card.title.text()
    headers = view.table_headers()                         # the process peak is then the only figure, named so
    assert "Peak memory, whole process (MiB) mean" in headers and "Memory per step (MiB) mean" not in headers
    assert not [item for item in view.plot_item("memory").items
                if isinstance(item, pg.PlotDataItem) and item.name() == MEMORY_FIT_NAME]


def test_the_energy_card_shows_joules_per_example_or_says_why_there_are_none(qtbot, tmp_path):
    view = SummaryView()
    qtbot.addWidget(view)
    view.resize(1200, 800)
    view.show()
    run = read_run(run_sweep(parse_config(tiny_table(sweep={"batch_sizes": [16, 64]})), tmp_path))
    view.set_runs([run])
    measured = {t.batch_size: t for t in run.trials}
    points = {point.batch_size: point.mean for point in view.points("energy")}
    missing = {point.batch_size: point.reason for point in view.missing("energy")}
    for batch_size, trial in measured.items():
        energy = energy_j(trial.telemetry)
        if math.isfinite(energy):        # a machine with readable RAPL counters or a GPU
            assert points[batch_size] > 0
        else:
            assert missing[batch_size] == "not measured here (no readable energy counter)"
