"""GUI test set-up: offscreen Qt, and nothing of the real user's settings, workspace or cache is touched.

Every test gets its own QSettings file (INI, under its tmp_path), its own workspace folder, and HOME /
XDG_CONFIG_HOME in tmp. Built-in datasets are cached once per session in a tmp folder, so they are
generated once for all tests.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from gui.app import keep_settings_in  # noqa: E402


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dataset-cache")


@pytest.fixture(scope="session", autouse=True)
def configured_app(qapp, tmp_path_factory, session_cache):
    """The session's QApplication, named and themed as the real app is, with settings kept in tmp."""
    os.environ["BATCH_SIZE_LAB_CACHE"] = str(session_cache)
    keep_settings_in(tmp_path_factory.mktemp("session-settings"))
    from gui.app import configure_application
    configure_application(qapp)
    return qapp


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch, session_cache, configured_app):
    """Per test: settings, workspace, HOME and XDG config in tmp; the light theme; the shared data cache."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("BATCH_SIZE_LAB_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.setenv("BATCH_SIZE_LAB_CACHE", str(session_cache))
    settings_dir = tmp_path / "settings"
    settings_dir.mkdir()
    keep_settings_in(settings_dir)
    from gui import theme
    theme.apply_theme(configured_app, theme.DEFAULT_THEME)
    yield settings_dir
    # pytest-qt closed this test's widgets with deleteLater, which outside an event loop waits for one: delete
    # them now, or every later theme change restyles (and redraws) all the windows of the tests before.
    from PySide6.QtCore import QEvent
    configured_app.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)


@pytest.fixture
def settings_dir(isolated_environment) -> Path:
    return isolated_environment


@pytest.fixture
def workspace(tmp_path) -> Path:
    return tmp_path / "workspace"


@pytest.fixture
def main_window(qtbot):
    """A shown MainWindow; at teardown any sweep is stopped and waited for, then the window is closed."""
    from gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    qtbot.waitExposed(window)
    yield window
    if window.is_running():
        with qtbot.waitSignal(window.sweep_finished, timeout=30_000):
            window.stop_sweep()
    window.close()


@pytest.fixture
def fill_form(qtbot):
    """fill_form(window, batch_sizes=..., num_samples=..., epochs=..., name=..., dataset=...)."""
    return lambda window, **options: fill_tiny_sweep(qtbot, window, **options)


def fill_tiny_sweep(qtbot, window, *, batch_sizes=(16, 32, 64), num_samples=200, epochs=1, name="tiny",
                    dataset="synthetic") -> None:
    """Fill the setup form through its widgets, as a user would: a small, fast sweep on the CPU."""
    from PySide6.QtCore import Qt

    panel = window.setup
    name_edit = panel.editor("name")
    name_edit.selectAll()
    qtbot.keyClicks(name_edit, name)
    dataset_edit = panel.editor("data.dataset").lineEdit()
    dataset_edit.selectAll()
    qtbot.keyClicks(dataset_edit, dataset)
    if dataset in ("synthetic", "sequence", "mnist1d"):
        panel.editor("data.num_samples").setValue(num_samples)
    panel.editor("train.epochs").setValue(epochs)
    for size, button in panel._bindings["sweep.batch_sizes"].buttons.items():
        if button.isChecked() != (size in batch_sizes):
            qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    device = panel.editor("sweep.device")
    device.setCurrentIndex(device.findData("cpu"))
    assert panel.problems() == [], panel.problems()
