"""The Science tab shows the critical-batch fit, the noise scale and the findings of the run on screen, at the
Summary's target, from a real run file (tests/science_runs.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pyqtgraph as pg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from science_runs import steps_law, write_science_run  # noqa: E402


def _science_file(path, b_simple=None):
    trials = []
    for batch_size in (4, 16, 64, 256, 1024, 4096):
        for seed in (0, 1):
            spec = {"batch_size": batch_size, "seed": seed, "base_lr": 0.1,
                    "reach_step": steps_law(batch_size) * (1 + 0.05 * seed)}
            if b_simple is not None:
                spec["b_simple"] = b_simple
            trials.append(spec)
    return write_science_run(path, trials)


def test_the_science_tab_shows_the_fit_the_noise_scale_and_every_finding(qtbot, main_window, tmp_path):
    window = main_window
    window.open_runs([_science_file(tmp_path / "science.h5", b_simple=70.0)])
    window.summary.set_target_accuracy(0.5)
    window.tabs.setCurrentWidget(window.science_view)
    view = window.science_view
    assert view.science is not None and view.science.critical_batch.target == 0.5
    assert "Critical batch at 50.0% validation accuracy: 10" in view.headline.text()
    assert "Noise scale B_simple up to the target: 70" in view.headline.text()
    steps_items = view.plots["steps"].getPlotItem().items
    assert sum(isinstance(item, pg.LinearRegionItem) for item in steps_items) == 3      # the three regimes
    assert any(isinstance(item, pg.InfiniteLine) for item in steps_items)              # B_simple marked
    assert len(view.plots["noise"].getPlotItem().listDataItems()) == 12                # one curve per trial
    cards = view.findings.cards
    assert [card.finding for card in cards] == view.science.findings and len(cards) == 7
    critical = cards[-1]
    assert critical.verdict.text().endswith(">Supported</b>") and "Returns diminish" in critical.claim.text()


def test_without_noise_or_a_fit_the_tab_says_why(qtbot, tmp_path):
    from PySide6.QtGui import QColor, QPalette

    from engine.runfile import read_run
    from gui.science_view import ScienceView

    view = ScienceView()
    qtbot.addWidget(view)
    path = write_science_run(tmp_path / "small.h5", [{"batch_size": 8, "seed": 0, "base_lr": 0.1, "reach_step": 50}])
    view.set_runs([read_run(path)], 0.5)
    assert "unavailable (1 batch size reached the target 50.0%; the fit needs at least 3)" in view.headline.text()
    assert "set [science] noise_scale = true" in view.headline.text()
    noise = view.plots["noise"]
    assert not noise.getPlotItem().listDataItems()
    # An empty state in words, not axes numbered around nothing.
    assert view.noise_empty in noise.getPlotItem().items
    assert view.noise_empty.textItem.toPlainText().startswith("No noise-scale measurement in this run: turn on "
                                                              "science.noise_scale")
    assert not noise.getAxis("left").style["showValues"] and not noise.getAxis("bottom").style["showValues"]
    # A theme switch (a new palette) redraws the plots on its background: they stayed white in the dark theme.
    dark = QColor("#1e1f22")
    palette = QPalette(view.palette())
    palette.setColor(QPalette.ColorRole.Base, dark)
    palette.setColor(QPalette.ColorRole.Text, QColor("#e6e6e6"))
    view.setPalette(palette)
    assert all(plot.backgroundBrush().color() == dark for plot in view.plots.values())
    assert all(plot.getPlotItem().titleLabel.opts["color"] == QColor("#e6e6e6") for plot in view.plots.values())
    view.set_runs([], None)
    assert view.science is None and "Open a run" in view.headline.text()


def test_the_setup_panel_offers_the_science_keys_from_their_metadata(qtbot):
    from PySide6.QtWidgets import QCheckBox, QGroupBox, QLabel

    from gui.setup_panel import SetupPanel

    panel = SetupPanel()
    qtbot.addWidget(panel)
    panel.show()
    box = next(group for group in panel.findChildren(QGroupBox) if group.title() == "Science")

    def shown():
        return [label.text() for label in box.findChildren(QLabel) if label.isVisible()]

    assert shown() == ["Evaluate", "Evaluations per decade", "Measure noise scale"]
    box.findChildren(QCheckBox)[0].setChecked(True)
    qtbot.waitUntil(lambda: "Noise every (steps)" in shown())
    assert shown()[-2:] == ["Noise every (steps)", "Micro-batches"]


def test_the_noise_scale_curves_follow_a_run_being_trained(qtbot):
    import numpy as np

    from engine.events import NoiseMeasured, SweepStarted, TrialSpec, TrialStarted
    from engine.live import LiveRun
    from gui.science_view import ScienceView

    live = LiveRun()
    spec = TrialSpec(index=0, name="bs00032_seed0", batch_size=32, seed=0, base_lr=0.1, lr=0.1)
    # The run asked for the noise scale: until its first measurement, the plot says one is coming.
    live.apply(SweepStarted(run_path="live.h5", config_text='name = "live"\n[data]\ndataset = "mnist1d"\n[model]\n'
                            'kind = "mlp"\n[science]\nnoise_scale = true\n', created="", trials=(spec,),
                            total_samples=3200, device="cpu", device_name="cpu", train_size=3200, val_size=800))
    live.apply(TrialStarted(trial=spec, steps_per_epoch=100, total_steps=100, total_samples=3200, parameter_count=1))
    view = ScienceView()
    qtbot.addWidget(view)
    view.show()
    view.set_runs([live.run], 0.5)
    assert not view.plots["noise"].getPlotItem().listDataItems()
    assert view.noise_empty.textItem.toPlainText().startswith("No noise-scale measurement yet")
    steps = np.array([1, 11, 21])
    live.apply(NoiseMeasured(trial=spec, columns={"step": steps, "samples": steps * 32, "wall_time_s": steps * 0.01,
                                                  "micro_batch": np.full(3, 8.0), "grad_sq": np.ones(3),
                                                  "trace_sigma": np.full(3, 50.0), "b_simple": np.full(3, 50.0)}))
    qtbot.waitUntil(lambda: len(view.plots["noise"].getPlotItem().listDataItems()) == 1, timeout=5000)
    assert view.noise_empty not in view.plots["noise"].getPlotItem().items
    assert view.plots["noise"].getAxis("left").style["showValues"]


def test_each_finding_has_a_card_whose_plot_draws_the_findings_own_series(qtbot, tmp_path):
    import numpy as np
    from PySide6.QtGui import QColor, QPalette

    from engine.runfile import read_run
    from gui.science_view import ScienceView

    trials = []
    for batch_size in (16, 64, 256):
        for base_lr in (0.05, 0.2, 0.8):
            best = 0.05 * batch_size / 16               # the linear rule
            for seed in (0, 1):
                away = abs(round(np.log(base_lr / best) / np.log(4)))
                trials.append({"batch_size": batch_size, "seed": seed, "base_lr": base_lr,
                               "reach_step": steps_law(batch_size) * (1 + away) * (1 + 0.05 * seed),
                               "train_accuracy": 0.92 + 0.01 * seed + batch_size / 20_000})
    view = ScienceView()
    qtbot.addWidget(view)
    view.set_runs([read_run(write_science_run(tmp_path / "grid.h5", trials))], 0.5)
    findings = view.science.findings

    def cards_draw_the_findings():
        cards = view.findings.cards
        assert len(cards) == len(findings) == 7
        for card, finding in zip(cards, findings):
            if finding.plot is None:
                assert not card.shows_plot() and finding.verdict == "untestable"
                continue
            assert card.shows_plot()
            points, *lines = card.plot.getPlotItem().listDataItems()       # nothing left from an earlier draw
            x, y = points.getOriginalDataset()
            assert list(x) == finding.plot.batch_sizes and list(y) == finding.plot.values    # every seed's point
            assert [list(line.getOriginalDataset()[1]) for line in lines] == [line.values
                                                                             for line in finding.plot.lines]
            assert card.plot.getAxis("left").labelText == finding.plot.y_label
            assert finding.plot.caption in card.caption.text()
        return cards

    cards = cards_draw_the_findings()
    drawn = {card.finding.claim_id for card in cards if card.shows_plot()}
    assert {"large_batches_generalize_worse", "lr_grows_with_batch_size"} <= drawn
    rates = next(card for card in cards if card.finding.claim_id == "lr_grows_with_batch_size")
    assert "linear&nbsp;rule" in rates.caption.text() and "square-root&nbsp;rule" in rates.caption.text()
    # A new palette refills the same cards (built once: a plot widget is slow to make).
    view.setPalette(QPalette(QColor("#303030")))
    assert cards_draw_the_findings() == cards
    view.set_runs([], None)
    assert view.findings.cards == []
