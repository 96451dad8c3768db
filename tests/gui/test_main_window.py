"""The main window with real widgets, real training and real files (offscreen)."""
from __future__ import annotations

import csv
import time
import tomllib
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from engine import __version__, schema
from engine.config import iter_fields, load_config
from engine.data import HEAD_ROWS
from engine.resources import presets
from engine.runfile import read_run
from gui.main_window import MainWindow

SWEEP_TIMEOUT_MS = 60_000


def click(qtbot, widget):
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


def answer_next_dialog(button: QMessageBox.StandardButton, seen: list[str]) -> None:
    """Press a button of the next modal message box (it runs its own event loop), recording its text."""

    def press():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, press)
            return
        seen.append(box.text() + "\n" + box.informativeText())
        box.button(button).click()

    QTimer.singleShot(0, press)


def wait_for_steps(qtbot, window):
    """Until the window has drawn step data of the running trial (polls the window's own state)."""
    qtbot.waitUntil(lambda: window.progress.trial_samples_seen > 0, timeout=SWEEP_TIMEOUT_MS)


def test_title_icon_and_a_labelled_tooltipped_editor_for_every_config_field(main_window):
    assert main_window.windowTitle() == f"Batch Size Lab {__version__}"
    assert not main_window.windowIcon().isNull()
    panel = main_window.setup
    for key, field in iter_fields():
        editor = panel.editor(key)
        assert field.metadata["help"].split(":")[0][:20] in editor.toolTip().replace("&#x27;", "'"), key
    assert panel.is_valid()
    assert main_window.run_action.isEnabled() and panel.run_button.isEnabled()
    assert not main_window.stop_action.isEnabled()
    assert not panel.problem_list.isVisible()


def test_rarely_used_and_irrelevant_fields_are_hidden_until_needed(qtbot, main_window):
    panel = main_window.setup
    form_row_visible = lambda key: panel.editor(key).isVisibleTo(panel)   # noqa: E731
    assert not form_row_visible("train.weight_decay") and not form_row_visible("data.num_features")
    assert form_row_visible("train.lr") and form_row_visible("data.num_samples")
    panel.show_all.setChecked(True)
    assert form_row_visible("train.weight_decay") and form_row_visible("sweep.learning_rates")
    panel.show_all.setChecked(False)
    dataset = panel.editor("data.dataset").lineEdit()
    dataset.selectAll()
    qtbot.keyClicks(dataset, "synthetic")
    assert form_row_visible("data.num_features") and form_row_visible("data.label_noise")
    assert not form_row_visible("data.sequence_length")
    # A problem in a hidden field shows that field: here a config asking for a bad weight decay.
    panel.set_config({"train": {"weight_decay": 5.0}})
    assert form_row_visible("train.weight_decay")
    assert any(p.startswith("train.weight_decay") for p in panel.problems())


def test_about_dialog_names_the_version(qtbot, main_window):
    seen: list[str] = []
    answer_next_dialog(QMessageBox.StandardButton.Ok, seen)
    main_window.show_about()
    assert seen and __version__ in seen[0]


def test_tiny_sweep_trains_live_saves_and_reopens(qtbot, fill_form, main_window, workspace, tmp_path):
    window = main_window
    fill_form(window, batch_sizes=(16, 32, 64), num_samples=200, epochs=1)
    assert "3 trials" in window.setup.status_label.text()
    with qtbot.waitSignal(window.sweep_started, timeout=SWEEP_TIMEOUT_MS):
        click(qtbot, window.setup.run_button)
    assert window.is_running()
    assert not window.setup.run_button.isEnabled() and window.stop_action.isEnabled()
    with qtbot.waitSignal(window.sweep_finished, timeout=SWEEP_TIMEOUT_MS) as finished:
        pass
    path = Path(finished.args[0])
    assert path.parent == workspace and path.exists()
    assert not window.is_running() and window.run_action.isEnabled()

    run = read_run(path)
    assert [t.batch_size for t in run.trials] == [16, 32, 64]
    assert all(t.status == schema.COMPLETED for t in run.trials)

    # The table: one completed row per trial with its measurements.
    rows = window.trial_table.table_model.rows()
    assert [(r.batch_size, r.status, r.epochs_done) for r in rows] == [(16, "completed", 1), (32, "completed", 1),
                                                                       (64, "completed", 1)]
    assert all(0 <= r.best_val_accuracy <= 1 and r.samples_per_s > 0 for r in rows)
    # The plots: every trial's curves hold its data.
    qtbot.waitUntil(lambda: all(len(item.getData()[0] or []) > 0 for item in window.plots.curves("accuracy")),
                    timeout=5_000)
    assert len(window.plots.curves("accuracy")) == 2 * len(run.trials)
    assert all(len(item.getData()[0]) > 0 for item in window.plots.curves("grad_norm"))
    assert window.summary.runs()[0].path == path
    assert window.sweep_progress.value() == window.sweep_progress.maximum()
    assert any("Sweep completed" in text for text in window.message_texts())

    # Switching the x axis applies to the plots and shows in the View menu.
    for key in ("samples", "wall_time_s", "step", "epoch"):
        window.set_x_axis(key)
        assert window.plots.x_axis() == key
        assert [a.data() for a in window.x_axis_actions.actions() if a.isChecked()] == [key]
    window.plots.set_x_axis("samples")
    assert [a.data() for a in window.x_axis_actions.actions() if a.isChecked()] == ["samples"]

    # Exports: the trial table as CSV, the plots as PNG and SVG.
    window.export_table(tmp_path / "trials.csv")
    with open(tmp_path / "trials.csv", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    assert table[0][:2] == ["Batch size", "Seed"] and [row[0] for row in table[1:]] == ["16", "32", "64"]
    for suffix in ("png", "svg"):
        window.export_plot(tmp_path / f"plots.{suffix}")
        assert (tmp_path / f"plots.{suffix}").stat().st_size > 1000

    # The run file is listed in the browser and reopens there: what it shows equals what was shown live.
    browser = window.runs_browser
    assert browser.workspace() == workspace
    assert path in browser.paths()
    browser.select_paths([path])
    with qtbot.waitSignal(window.runs_opened, timeout=10_000):
        browser.open_selected()
    shown = window.shown_runs()
    assert [r.path for r in shown] == [path]
    assert [(t.name, t.status, t.epochs_done) for t in shown[0].trials] == [(t.name, t.status, t.epochs_done)
                                                                           for t in run.trials]
    assert [(r.batch_size, r.status) for r in window.trial_table.table_model.rows()] == [
        (16, "completed"), (32, "completed"), (64, "completed")]


def test_stop_mid_trial_saves_it_as_cancelled(qtbot, fill_form, main_window):
    window = main_window
    fill_form(window, batch_sizes=(4, 64), num_samples=4000, epochs=40, name="stopped")
    click(qtbot, window.setup.run_button)
    wait_for_steps(qtbot, window)
    started = time.monotonic()
    with qtbot.waitSignal(window.sweep_finished, timeout=10_000) as finished:
        click(qtbot, window.setup.stop_button)
        assert not window.stop_action.isEnabled()       # pressed once; the button says it is stopping
    assert time.monotonic() - started < 2.5
    run = read_run(finished.args[0])
    assert run.header.status == schema.CANCELLED
    assert [(t.batch_size, t.status) for t in run.trials] == [(4, schema.CANCELLED)]
    rows = window.trial_table.table_model.rows()
    assert [(r.batch_size, r.status) for r in rows] == [(4, "cancelled"), (64, "not_run")]
    model = window.trial_table.table_model
    assert model.data(model.index(1, 4)) == "not run"          # never started, and will not start
    assert any("stopped" in text for text in window.message_texts())
    assert window.run_action.isEnabled()


def test_failed_trials_show_in_table_and_messages_and_the_sweep_goes_on(qtbot, fill_form, main_window):
    window = main_window
    fill_form(window, batch_sizes=(16, 64), num_samples=200, epochs=1, name="diverging")
    panel = window.setup
    panel.editor("train.lr_scaling").setCurrentIndex(panel.editor("train.lr_scaling").findData("none"))
    lr = panel.editor("train.lr")
    lr.selectAll()
    qtbot.keyClicks(lr, "100")
    with qtbot.waitSignal(window.sweep_finished, timeout=SWEEP_TIMEOUT_MS) as finished:
        click(qtbot, panel.run_button)
    run = read_run(finished.args[0])
    assert [(t.batch_size, t.status) for t in run.trials] == [(16, schema.DIVERGED), (64, schema.COMPLETED)]
    rows = window.trial_table.table_model.rows()
    assert [(r.batch_size, r.status) for r in rows] == [(16, "diverged"), (64, "completed")]
    model = window.trial_table.table_model
    status = model.index(0, 4)
    assert "nan" in model.data(status, Qt.ItemDataRole.ToolTipRole)
    assert model.data(status, Qt.ItemDataRole.ForegroundRole) != model.data(model.index(1, 4),
                                                                            Qt.ItemDataRole.ForegroundRole)
    warnings = window.message_texts("warning")
    assert any("batch size 16" in text and "diverged" in text and "nan" in text for text in warnings)


def test_invalid_fields_disable_run_and_are_named(qtbot, main_window):
    window = main_window
    panel = window.setup
    lr = panel.editor("train.lr")
    lr.selectAll()
    qtbot.keyClicks(lr, "0")
    assert not panel.run_button.isEnabled() and not window.run_action.isEnabled()
    assert panel.problem_list.isVisible()
    texts = [panel.problem_list.item(i).text() for i in range(panel.problem_list.count())]
    assert len(texts) == 1 and "train.lr" in texts[0] and "Learning rate" in texts[0]
    assert lr.property("invalid") is True
    qtbot.keyClicks(lr, ".1")
    assert panel.is_valid() and panel.run_button.isEnabled() and lr.property("invalid") is False

    # No batch size at all: the engine says so, naming the key.
    for button in panel._bindings["sweep.batch_sizes"].buttons.values():
        if button.isChecked():
            click(qtbot, button)
    assert not panel.run_button.isEnabled()
    assert any("sweep.batch_sizes" in p for p in panel.problems())
    click(qtbot, panel.batch_size_button(256))
    assert panel.is_valid()

    # Text where a number belongs, and a custom batch size larger than the dataset.
    custom = panel._bindings["sweep.batch_sizes"].custom
    qtbot.keyClicks(custom, "24, 10000")
    assert any("10000" in p and "sweep.batch_sizes" in p for p in panel.problems())
    custom.clear()
    qtbot.keyClicks(custom, "24")
    assert panel.table()["sweep"]["batch_sizes"] == [24, 256]
    assert panel.is_valid()
    momentum = panel.editor("train.momentum")
    momentum.selectAll()
    qtbot.keyClicks(momentum, "lots")
    assert any(p.startswith("train.momentum") for p in panel.problems()) and not panel.is_valid()


def test_a_data_problem_at_run_time_is_a_message_not_a_crash(qtbot, fill_form, main_window, tmp_path):
    window = main_window
    # Its head is fine (the form checks only the first rows when the file is chosen); a row further down is not.
    data_file = tmp_path / "late-text.csv"
    data_file.write_text("a,b,label\n" + "1,2,0\n3,4,1\n" * HEAD_ROWS + "5,six,0\n", encoding="utf-8")
    fill_form(window, batch_sizes=(4,), dataset=str(data_file))
    with qtbot.waitSignal(window.sweep_finished, timeout=SWEEP_TIMEOUT_MS) as finished:
        click(qtbot, window.setup.run_button)
    assert finished.args == [""]
    errors = window.message_texts("error")
    assert len(errors) == 1 and "late-text.csv" in errors[0] and "'six'" in errors[0]
    assert "Traceback" not in errors[0]
    assert window.run_action.isEnabled() and not window.is_running()


def test_closing_mid_run_asks_then_stops_and_closes_cleanly(qtbot, fill_form, main_window):
    window = main_window
    fill_form(window, batch_sizes=(4,), num_samples=4000, epochs=40, name="closed")
    with qtbot.waitSignal(window.sweep_started, timeout=SWEEP_TIMEOUT_MS) as started:
        click(qtbot, window.setup.run_button)
    run_path = Path(started.args[0].run_path)
    wait_for_steps(qtbot, window)

    # "No" keeps the window and the sweep.
    seen: list[str] = []
    answer_next_dialog(QMessageBox.StandardButton.No, seen)
    window.close()
    assert seen and "sweep is running" in seen[0]
    assert window.isVisible() and window.is_running()

    answer_next_dialog(QMessageBox.StandardButton.Yes, seen)
    with qtbot.waitSignal(window.sweep_finished, timeout=10_000):
        window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)
    assert window._worker_thread.thread.isFinished()
    run = read_run(run_path)
    assert run.header.status == schema.CANCELLED
    assert [t.status for t in run.trials] == [schema.CANCELLED]


def test_config_files_round_trip_and_bad_ones_explain_themselves(qtbot, fill_form, main_window, tmp_path):
    window = main_window
    fill_form(window, batch_sizes=(8, 32), num_samples=300, epochs=3, name="saved")
    custom = window.setup._bindings["sweep.batch_sizes"].custom
    qtbot.keyClicks(custom, "24")
    path = tmp_path / "saved.toml"
    window.save_config(path)
    saved = load_config(path)
    assert saved.name == "saved" and saved.sweep.batch_sizes == [8, 24, 32] and saved.train.epochs == 3

    window.setup.set_config({"name": "other"})
    assert window.setup.table()["name"] == "other"
    assert window.load_config_file(path)
    assert window.setup.config().to_dict() == saved.to_dict()

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[train]\nlr = -1\nlearning_rate = 3\n', encoding="utf-8")
    seen: list[str] = []
    answer_next_dialog(QMessageBox.StandardButton.Ok, seen)
    assert not window.load_config_file(bad)
    assert "train.lr" in seen[0] and "train.learning_rate" in seen[0]
    assert window.setup.config().to_dict() == saved.to_dict()       # the form is unchanged

    garbage = tmp_path / "garbage.toml"
    garbage.write_text("this is [not toml", encoding="utf-8")
    answer_next_dialog(QMessageBox.StandardButton.Ok, seen)
    assert not window.load_config_file(garbage)
    assert "not valid TOML" in seen[-1]


def test_every_preset_is_in_the_menu_and_loads_valid(qtbot, main_window):
    window = main_window
    found = presets()
    assert found
    menu_paths = [Path(a.data()) for a in window.presets_menu.actions() if a.data()]
    assert menu_paths == list(found.values())
    for action in window.presets_menu.actions():
        action.trigger()
        assert window.setup.is_valid(), (action.text(), window.setup.problems())
        assert window.setup.config().to_dict() == load_config(Path(action.data())).to_dict()


def test_settings_persist_in_the_test_folder_only(qtbot, settings_dir, tmp_path):
    first = MainWindow()
    qtbot.addWidget(first)
    first.show()
    assert Path(QSettings().fileName()).is_relative_to(settings_dir)
    first.set_theme("dark")
    first.setup.set_config({"name": "remembered", "train": {"lr": 0.0}, "sweep": {"batch_sizes": [8, 24]}})
    other_workspace = tmp_path / "elsewhere"
    other_workspace.mkdir()
    first.runs_browser.set_workspace(other_workspace)
    first.set_x_axis("samples")
    first.messages_dock.hide()
    first.close()
    saved_geometry = QSettings().value("window/geometry")

    second = MainWindow()
    qtbot.addWidget(second)
    second.show()
    try:
        from gui import theme
        assert theme.current_theme().name == "dark"
        assert [a.data() for a in second.theme_actions.actions() if a.isChecked()] == ["dark"]
        table = second.setup.table()
        assert table["name"] == "remembered" and table["sweep"]["batch_sizes"] == [8, 24]
        assert not second.setup.is_valid()          # what was typed comes back, problems and all
        assert second.workspace() == other_workspace
        assert second.plots.x_axis() == "samples"
        # Layout: docks come back as they were; the geometry is saved (offscreen's 800×800 virtual screen
        # clamps a restored size, so the size itself is not compared).
        assert not second.messages_dock.isVisible() and second.setup_dock.isVisible()
        assert not saved_geometry.isEmpty()
    finally:
        second.set_theme("light")
        second.close()
    assert tomllib.loads(QSettings().value("config/last"))["name"] == "remembered"


def test_a_garbled_remembered_config_never_stops_the_window_opening(qtbot, settings_dir):
    QSettings().setValue("config/last", 'name = "x"\n[train]\nepochs = "many"\nseeds = 3\n[sweep]\n'
                                        'batch_sizes = "all"\ndevice = "tpu"\n')
    window = MainWindow()
    qtbot.addWidget(window)
    table = window.setup.table()
    assert table["name"] == "x" and table["train"]["epochs"] == 5 and table["train"]["seeds"] == [0]
    assert table["sweep"]["device"] == "auto"
    assert any("train.epochs" in text for text in window.message_texts("warning"))
    window.close()


def test_opening_several_runs_overlays_them(qtbot, main_window, tmp_path):
    from tests.gui.runfactory import write_run

    window = main_window
    first = write_run(tmp_path / "a.h5", name="first", batch_sizes=(16, 64))
    second = write_run(tmp_path / "b.h5", name="second", batch_sizes=(32,))
    window.open_runs([first, second, tmp_path / "missing.h5"])
    assert [r.header.name for r in window.shown_runs()] == ["first", "second"]
    assert [r.header.name for r in window.plots.runs()] == ["first", "second"]
    assert not window.trial_table.isColumnHidden(0)      # the Run column tells the runs apart
    assert sorted(r.batch_size for r in window.trial_table.table_model.rows()) == [16, 32, 64]
    assert any("missing.h5" in text for text in window.message_texts("error"))


@pytest.mark.parametrize("size", [(1400, 900), (1100, 700)])
def test_window_renders_at_common_sizes(qtbot, main_window, tmp_path, size):
    main_window.resize(*size)
    QApplication.processEvents()
    image = main_window.grab()
    assert (image.width(), image.height()) == size
    assert image.save(str(tmp_path / "window.png"))
