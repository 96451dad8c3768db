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
    text = view.findings.text()
    assert text.count("<p>") == 7 and "Supported</b>: Returns diminish past a critical batch size" in text


def test_without_noise_or_a_fit_the_tab_says_why(qtbot, tmp_path):
    from engine.runfile import read_run
    from gui.science_view import ScienceView

    view = ScienceView()
    qtbot.addWidget(view)
    path = write_science_run(tmp_path / "small.h5", [{"batch_size": 8, "seed": 0, "base_lr": 0.1, "reach_step": 50}])
    view.set_runs([read_run(path)], 0.5)
    assert "unavailable (1 batch size reached the target 50.0%; the fit needs at least 3)" in view.headline.text()
    assert "set [science] noise_scale = true" in view.headline.text()
    assert not view.plots["noise"].getPlotItem().listDataItems()
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
    live.apply(SweepStarted(run_path="live.h5", config_text='name = "live"\n[data]\ndataset = "mnist1d"\n[model]\n'
                            'kind = "mlp"\n', created="", trials=(spec,), total_samples=3200, device="cpu",
                            device_name="cpu", train_size=3200, val_size=800))
    live.apply(TrialStarted(trial=spec, steps_per_epoch=100, total_steps=100, total_samples=3200, parameter_count=1))
    view = ScienceView()
    qtbot.addWidget(view)
    view.show()
    view.set_runs([live.run], 0.5)
    assert not view.plots["noise"].getPlotItem().listDataItems()
    steps = np.array([1, 11, 21])
    live.apply(NoiseMeasured(trial=spec, columns={"step": steps, "samples": steps * 32, "wall_time_s": steps * 0.01,
                                                  "micro_batch": np.full(3, 8.0), "grad_sq": np.ones(3),
                                                  "trace_sigma": np.full(3, 50.0), "b_simple": np.full(3, 50.0)}))
    qtbot.waitUntil(lambda: len(view.plots["noise"].getPlotItem().listDataItems()) == 1, timeout=5000)
