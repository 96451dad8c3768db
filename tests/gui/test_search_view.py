"""The Search tab draws a real search's run file: every point where it belongs, pruned and unscored points marked
apart, a caption under every panel, and a plain sentence when the runs on screen are not searches."""
from __future__ import annotations

import math

import numpy as np
import pytest
import tomli_w
from PySide6.QtGui import QImage

from engine.config import parse_config
from engine.runfile import read_run
from engine.search.summary import summarize_search
from engine.sweep import run_sweep
from engine.search.summary import PANEL_CAPTIONS
from gui.search_view import NO_SCORE_SYMBOL, PRUNED_SYMBOL, SearchView
from tests.conftest import tiny_table


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    config = parse_config(tiny_table(train={"epochs": 3}, sweep={
        "strategy": "random", "trials": 8, "batch_size_min": 4, "batch_size_max": 128, "pruner": "median",
        "lr_min": 0.0005, "lr_max": 1.0, "device": "cpu"}))
    return read_run(run_sweep(config, tmp_path_factory.mktemp("search")))


def _items(view: SearchView, panel: str, symbol: str) -> list:
    return [item for item in view.plots[panel].listDataItems() if item.opts.get("symbol") == symbol]


def test_every_point_is_drawn_where_it_belongs_and_pruned_points_are_marked(qtbot, search_run):
    view = SearchView()
    qtbot.addWidget(view)
    view.set_runs([search_run])
    search = summarize_search(search_run)
    scores = np.array([p.score(search.objective) for p in search.points])
    assert search.pruned, "the fixture's search prunes some points"
    scored_where = _items(view, "where", "o")[0]
    x, y = scored_where.getData()
    # Log axes: the item holds log10 of what it was given.
    assert sorted(zip(np.round(10 ** x).astype(int), np.round(10 ** y, 9))) == sorted(
        (p.batch_size, round(p.lr, 9)) for p, s in zip(search.points, scores) if math.isfinite(s))
    pruned_where = _items(view, "where", PRUNED_SYMBOL)[0]
    assert len(pruned_where.getData()[0]) == len(search.pruned)
    best_line = [item for item in view.plots["progress"].listDataItems() if item.opts.get("symbol") is None][0]
    assert best_line.getData()[1][-1] == pytest.approx(search.best[0].score(search.objective))
    unscored = [p for p, s in zip(search.points, scores) if not math.isfinite(s) and not p.pruned]
    hollow = [item for item in _items(view, "progress", NO_SCORE_SYMBOL) if item.opts["symbolBrush"] is None]
    assert len(hollow) == (1 if unscored else 0)
    assert f"Best: batch size {search.best[0].batch_size}" in view.headline.text()
    assert [view.captions[key].text() for key in PANEL_CAPTIONS] == list(PANEL_CAPTIONS.values())


def test_a_grid_is_not_a_search_and_says_how_to_make_one(qtbot, tiny_config, tmp_path):
    grid = read_run(run_sweep(tiny_config(sweep={"batch_sizes": [32]}), tmp_path))
    view = SearchView()
    qtbot.addWidget(view)
    view.set_runs([grid])
    assert view.search is None and "strategy to random, bayesian or start-small" in view.headline.text()
    assert not any(plot.isVisibleTo(view) for plot in view.plots.values())


def test_the_search_tab_shows_the_opened_run_and_renders(qtbot, main_window, search_run, tmp_path):
    window = main_window
    window.open_runs([search_run.path])
    window.tabs.setCurrentWidget(window.search_view)
    assert window.search_view.search is not None
    assert window.tabs.tabText(window.tabs.indexOf(window.search_view)) == "Search"
    window.search_view.resize(1400, 520)
    path = tmp_path / "search.png"
    assert window.search_view.grab().save(str(path))
    image = QImage(str(path))
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 20, "the rendered tab is blank"


@pytest.mark.parametrize("preset, text", [
    ("bayesian-batch-and-lr", "a bayesian search, batch sizes 8 to 512: 14 points × 1 seed"),
    ("start-small", "a start-small search, batch sizes 8 to 1024: sizes doubled × 2 seeds")])
def test_the_setup_panel_says_what_a_search_will_train(qtbot, preset, text):
    from engine.config import load_config
    from engine.resources import presets
    from gui.setup_panel import SetupPanel
    panel = SetupPanel()
    qtbot.addWidget(panel)
    panel.set_config(load_config(presets()[preset]))
    assert panel.status_label.text() == f"✓ Ready to run: {text}."


def test_a_running_search_is_drawn_as_each_trial_gets_its_score(qtbot, main_window, monkeypatch):
    window = main_window
    drawn = []
    show = window.search_view.set_runs

    def counting(runs):
        show(runs)
        drawn.append(window.search_view.search and len(window.search_view.search.points))
    monkeypatch.setattr(window.search_view, "set_runs", counting)
    table = tiny_table(sweep={"strategy": "random", "trials": 3, "batch_size_min": 8, "batch_size_max": 64,
                              "lr_min": 0.01, "lr_max": 0.3, "device": "cpu"})
    # Looked at the moment the sweep starts (starting one shows the Live tab), before any trial's events are shown:
    # switching after waitSignal returns raced the worker, which may have scored every trial by then.
    window.sweep_started.connect(lambda _event: window.tabs.setCurrentWidget(window.search_view))
    with qtbot.waitSignal(window.sweep_finished, timeout=120_000):
        window.run_config_text(tomli_w.dumps(table))
    # Drawn when shown, then once per trial as it gets its score (1, 2, 3 points), then at the end once more.
    assert not drawn[0] and {1, 2, 3} <= set(drawn) and drawn[-1] == 3, drawn
