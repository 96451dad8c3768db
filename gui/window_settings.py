"""What the main window remembers between sessions, in QSettings (an INI file: see gui.app): the theme, the
workspace folder, the experiment last in the form, the x axis, and the window's layout.

One class reads and writes every key, so the list of what is remembered is in one place.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import tomli_w
from PySide6.QtCore import QByteArray, QSettings

from engine.resources import default_workspace
from gui import theme

THEME = "theme"
WORKSPACE = "workspace"
LAST_CONFIG = "config/last"
X_AXIS = "view/x_axis"
GEOMETRY = "window/geometry"
STATE = "window/state"
LIVE_SPLITTER = "window/live_splitter"
DEFAULT_SIZE = (1400, 900)


class WindowSettings:
    """Restores and saves a MainWindow's remembered state through its public parts."""

    def __init__(self, window):
        self._window = window
        self._settings = QSettings()

    def restore(self) -> bool:
        """Apply what was saved; True when there was no saved dock layout (the window lays its docks out
        itself once it is shown)."""
        window, settings = self._window, self._settings
        name = str(settings.value(THEME, theme.current_theme().name))
        for item in window.theme_actions.actions():
            item.setChecked(item.data() == name)
        if name != theme.current_theme().name:      # restyling the whole application costs start-up time
            window.set_theme(name)
        workspace = settings.value(WORKSPACE, "")
        window.runs_browser.set_workspace(Path(workspace) if workspace else default_workspace())
        last_config = str(settings.value(LAST_CONFIG, "") or "")
        if last_config:
            try:
                window.setup.set_config(tomllib.loads(last_config))
            except tomllib.TOMLDecodeError:
                window.log("The last experiment could not be restored; starting from the defaults.", "warning")
        window.set_x_axis(str(settings.value(X_AXIS, window.plots.x_axis())))
        geometry = settings.value(GEOMETRY)
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            window.restoreGeometry(geometry)
        else:
            window.resize(*DEFAULT_SIZE)
        state = settings.value(STATE)
        restored_docks = isinstance(state, QByteArray) and not state.isEmpty() and window.restoreState(state)
        splitter = settings.value(LIVE_SPLITTER)
        if isinstance(splitter, QByteArray) and not splitter.isEmpty():
            window.live_splitter.restoreState(splitter)
        else:
            # Three parts plots, two parts table: the table keeps four rows in view in a 640-pixel-high window.
            window.live_splitter.setSizes([540, 360])
        return not restored_docks

    def save(self) -> None:
        window, settings = self._window, self._settings
        settings.setValue(GEOMETRY, window.saveGeometry())
        settings.setValue(STATE, window.saveState())
        settings.setValue(LIVE_SPLITTER, window.live_splitter.saveState())
        settings.setValue(WORKSPACE, str(window.runs_browser.workspace()))
        settings.setValue(THEME, theme.current_theme().name)
        settings.setValue(X_AXIS, window.plots.x_axis())
        settings.setValue(LAST_CONFIG, tomli_w.dumps(window.setup.table()))
        settings.sync()

    def remember_workspace(self, folder) -> None:
        """Saved at once: another window opened before this one closes lists the same folder."""
        self._settings.setValue(WORKSPACE, str(folder))
