"""The main window's commands: its actions (with shortcuts, icons and tips), the menu bar and the toolbar.

The actions are attributes of the window (window.run_action, window.tab_actions, ...), so tests and other parts
reach them by name; the help page lists their shortcuts (gui.help). Alt+number switches tabs because
Ctrl+number belongs to the x axis inside the plots.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QToolBar, QToolButton

from engine import APP_NAME, schema
from engine.resources import presets
from gui import theme
from gui.config_diff_view import show_config_diff
from gui.plots import X_AXES


def build_actions(window) -> None:
    """Every command of the window as a QAction (window.run_action, ...), with its shortcut, icon and tip."""
    window._icon_actions = []

    def action(text: str, slot, shortcut=None, icon: str = "", tip: str = "") -> QAction:
        result = QAction(text, window)
        if icon:
            result.setIcon(theme.icon(icon))
            window._icon_actions.append((result, icon))
        if shortcut is not None:
            result.setShortcut(QKeySequence(shortcut))
        if tip:
            result.setToolTip(tip)
            result.setStatusTip(tip)
        result.triggered.connect(slot)
        return result

    window.run_action = action("Run sweep", window.start_sweep, "Ctrl+R", "run", "Train every trial (Ctrl+R)")
    window.stop_action = action("Stop", window.stop_sweep, "Ctrl+.", "stop",
                                "Stop the sweep; the running trial is saved as cancelled (Ctrl+.)")
    window.find_max_batch_action = action("Find max batch…", window.find_max_batch, None, "",
                                          "Search the largest batch size of this experiment that fits in memory")
    window.open_config_action = action("Open config…", window.open_config_dialog, QKeySequence.StandardKey.Open,
                                       "open", "Load an experiment config (TOML)")
    window.save_config_action = action("Save config as…", window.save_config_dialog,
                                       QKeySequence.StandardKey.SaveAs, "save",
                                       "Save this experiment as a config file (TOML)")
    window.save_config_action.setShortcuts([QKeySequence("Ctrl+S"), QKeySequence("Ctrl+Shift+S")])
    window.open_run_action = action("Open run file…", window.open_run_dialog, "Ctrl+Shift+O", "run-file",
                                    "Show a saved run file in the plots and summary")
    window.workspace_action = action("Choose workspace folder…", window.choose_workspace_dialog, None, "",
                                     "The folder where run files are saved and listed")
    window.export_png_action = action("Export current plot as PNG…", lambda: window.export_plot_dialog("png"),
                                      None, "export", "Save the plot last clicked (or all plots) of the "
                                      "current tab as a PNG image")
    window.export_png_action.setIconText("Export plot")
    window.export_png_action.setShortcut(QKeySequence("Ctrl+E"))
    window.export_svg_action = action("Export current plot as SVG…", lambda: window.export_plot_dialog("svg"),
                                      "Ctrl+Alt+E")
    window.export_table_action = action("Export table as CSV…", lambda: window.export_table_dialog(),
                                        "Ctrl+Shift+E", "", "Save the table of the current tab (trials on Live, "
                                        "the per-batch-size summary on Summary, the run list on Runs) as CSV")
    window.compare_configs_action = action("Compare configs of the shown runs…",
                                           lambda: show_config_diff(window, window.shown_runs()), "Ctrl+Shift+D", "",
                                           "The settings that differ between the runs overlaid on screen, key by key "
                                           "(open two or more runs from the Runs tab)")
    for shown_changed in (window.runs_opened, window.sweep_started, window.sweep_finished):
        shown_changed.connect(lambda *_: window.compare_configs_action.setEnabled(len(window.shown_runs()) >= 2))
    window.compare_configs_action.setEnabled(False)
    window.show_folder_action = action("Show in file manager", window.show_in_file_manager, None, "",
                                       "Open the folder of the run on screen (or the workspace folder) in the "
                                       "system's file manager")
    window.quit_action = action("Quit", window.close, QKeySequence.StandardKey.Quit)
    window.help_action = action("Batch Size Lab help", window.show_help, QKeySequence.StandardKey.HelpContents,
                                "", "What each plot means, how to read the recommendation, and the shortcuts")
    window.about_action = action(f"About {APP_NAME}", window.show_about)
    # Alt+number for the tabs: Ctrl+number belongs to the x axis inside the plots.
    window.tab_actions = [action(f"Go to {window.tabs.tabText(index)}",
                                 lambda _checked=False, i=index: window.tabs.setCurrentIndex(i), f"Alt+{index + 1}")
                          for index in range(window.tabs.count())]

    window.theme_actions = QActionGroup(window)
    for name in theme.THEMES:
        item = QAction(name.capitalize(), window.theme_actions, checkable=True)
        item.setData(name)
        item.triggered.connect(lambda _checked=False, n=name: window.set_theme(n))
    window.x_axis_actions = QActionGroup(window)
    for key in X_AXES:
        item = QAction(schema.METRICS[key].label, window.x_axis_actions, checkable=True)
        item.setData(key)
        item.triggered.connect(lambda _checked=False, k=key: window.set_x_axis(k))


def build_menus(window) -> None:
    """The menu bar: File, Presets, Sweep, View, Help."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    for item in (window.open_config_action, window.save_config_action, None, window.open_run_action,
                 window.workspace_action, window.show_folder_action, None, window.export_png_action,
                 window.export_svg_action, window.export_table_action, None, window.quit_action):
        file_menu.addSeparator() if item is None else file_menu.addAction(item)
    window.presets_menu = bar.addMenu("&Presets")
    _fill_presets_menu(window, window.presets_menu)
    run_menu = bar.addMenu("&Sweep")
    run_menu.addAction(window.run_action)
    run_menu.addAction(window.stop_action)
    run_menu.addSeparator()
    run_menu.addAction(window.find_max_batch_action)
    view_menu = bar.addMenu("&View")
    theme_menu = view_menu.addMenu("Theme")
    theme_menu.addActions(window.theme_actions.actions())
    axis_menu = view_menu.addMenu("X axis")
    axis_menu.addActions(window.x_axis_actions.actions())
    view_menu.addSeparator()
    view_menu.addAction(window.compare_configs_action)
    view_menu.addSeparator()
    view_menu.addActions(window.tab_actions)
    view_menu.addSeparator()
    view_menu.addAction(window.setup_dock.toggleViewAction())
    view_menu.addAction(window.messages_dock.toggleViewAction())
    help_menu = bar.addMenu("&Help")
    help_menu.addAction(window.help_action)
    help_menu.addSeparator()
    help_menu.addAction(window.about_action)


def _fill_presets_menu(window, menu: QMenu) -> None:
    found = presets()
    if not found:
        empty = menu.addAction("No presets found")
        empty.setEnabled(False)
    for name, path in found.items():
        item = menu.addAction(name)
        item.setData(str(path))
        item.setToolTip(_preset_description(path))
        item.setStatusTip(item.toolTip())
        item.triggered.connect(lambda _checked=False, p=path: window.load_config_file(p))
    menu.setToolTipsVisible(True)


def _preset_description(path: Path) -> str:
    try:
        return str(tomllib.loads(path.read_text(encoding="utf-8")).get("description", ""))
    except (OSError, tomllib.TOMLDecodeError):
        return ""


def build_toolbar(window) -> None:
    """The toolbar: run and stop, configs, presets, run files, export."""
    toolbar = QToolBar("Main", window)
    toolbar.setObjectName("mainToolbar")
    toolbar.setMovable(False)
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    toolbar.addAction(window.run_action)
    toolbar.addAction(window.stop_action)
    toolbar.addSeparator()
    toolbar.addAction(window.open_config_action)
    toolbar.addAction(window.save_config_action)
    presets_button = QToolButton()
    presets_button.setText("Presets")
    presets_button.setToolTip("Start from a ready-made experiment")
    presets_button.setMenu(window.presets_menu)
    presets_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    presets_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    toolbar.addWidget(presets_button)
    toolbar.addSeparator()
    toolbar.addAction(window.open_run_action)
    toolbar.addAction(window.export_png_action)
    window.toolbar = toolbar
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
