"""The main window: setup panel on the left, Live / Summary / Runs tabs in the centre, messages below.

Training runs in the worker thread (gui/worker.py); every engine event arrives here on the GUI thread, is
folded into one `engine.live.LiveRun` per sweep, and the views are told what changed. The plots redraw on
their own timer, so however fast events come, this window only does bookkeeping per event.
"""
from __future__ import annotations

import html
import tomllib
from pathlib import Path

import tomli_w
from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QDesktopServices
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QHBoxLayout, QLabel, QMainWindow, QMessageBox,
                               QPushButton, QSplitter, QTabWidget, QVBoxLayout, QWidget)

from engine import APP_NAME, __version__, schema
from engine.config import ConfigError, load_config
from engine.errors import RunFileError, UserError
from engine.events import (EpochEnded, Message, StepsLogged, SweepEnded, SweepStarted, TrialEnded, TrialScored,
                           TrialStarted)
from engine.live import LiveRun
from engine.progress import SweepProgress
from engine.runfile import RunData, read_run
from gui import theme
from gui.dialogs import config_problems_box
from gui.experiment_panel import ExperimentPanel
from gui.export_routing import ExportRouting
from gui.help import HelpDialog
from gui.main_menus import build_actions, build_menus, build_toolbar
from gui.message_log import MessageLog, trial_outcome
from gui.plots import X_AXES, LivePlots
from gui.run_follower import RunFollower
from gui.runs_browser import RunsBrowser
from gui.science_view import ScienceView
from gui.search_view import SearchView
from gui.setup_panel import SetupPanel
from gui.summary import SummaryView
from gui.sweep_status import SweepStatus
from gui.trial_table import TrialTable
from gui.window_settings import WindowSettings
from gui.worker import WorkerThread


class MainWindow(QMainWindow):
    """The workbench. Signals for callers and tests, emitted on the GUI thread after the window has acted:"""

    sweep_started = Signal(object)      # SweepStarted
    trial_ended = Signal(object)        # TrialEnded
    sweep_finished = Signal(str)        # the run file's path, or "" when the sweep could not start
    runs_opened = Signal(list)          # list[RunData] now shown

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"{APP_NAME} {__version__}")
        self.setWindowIcon(theme.app_icon())
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self._settings = WindowSettings(self)
        self.exports = ExportRouting(self)
        self._help: HelpDialog | None = None
        # One handler per kind of engine event (steps arrive batched, through _on_steps).
        self._event_handlers = {SweepStarted: self._show_sweep_started, TrialStarted: self._show_trial_changed,
                                EpochEnded: self._show_trial_changed, TrialEnded: self._show_trial_ended,
                                SweepEnded: self._show_sweep_ended, Message: self._show_message,
                                TrialScored: self._show_trial_scored}
        self._summary_stale = False
        self._worker_thread = WorkerThread()
        self.worker = self._worker_thread.worker
        self._live: LiveRun | None = None
        self._shown_runs: list[RunData] = []
        # Runs opened while another process writes them (a command-line sweep) are re-read as they grow.
        self.run_follower = RunFollower(self)
        self.run_follower.updated.connect(self._show_followed_run)
        self._running = False
        self._stopping = False
        self._close_when_stopped = False
        self._config_path: Path | None = None
        self._progress = SweepProgress()
        self._restored = False              # settings applied (until then, changes are not news to log)

        self._build_views()
        build_actions(self)
        build_menus(self)
        build_toolbar(self)
        self._build_status_bar()
        self._connect()
        self._default_layout_pending = self._settings.restore()
        self._show_form_experiment()
        self._restored = True
        self._update_run_state()

    # --- building --------------------------------------------------------------------------------------
    def _build_views(self) -> None:
        self.setup = SetupPanel()
        self.setup_dock = QDockWidget("Setup", self)
        self.setup_dock.setObjectName("setupDock")
        self.setup_dock.setWidget(self.setup)
        self.setup_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                    | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.setup_dock.setMinimumWidth(290)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.setup_dock)

        self.plots = LivePlots()
        self.trial_table = TrialTable()
        table_panel = QWidget()
        table_layout = QVBoxLayout(table_panel)
        table_layout.setContentsMargins(8, 6, 8, 8)
        table_layout.setSpacing(4)
        table_header = QHBoxLayout()
        table_title = QLabel("Trials")
        table_title.setStyleSheet("font-weight: 600;")
        self.table_hint = QLabel("Press Run sweep to train, or open a run file from the Runs tab.")
        self.table_hint.setObjectName("hint")
        export_button = QPushButton(theme.icon("export"), "Export CSV…")
        self._icon_buttons = [(export_button, "export")]
        export_button.setToolTip("Save this table as a CSV file.")
        export_button.clicked.connect(lambda: self.export_table_dialog("trials"))
        table_header.addWidget(table_title)
        table_header.addSpacing(8)
        table_header.addWidget(self.table_hint, 1)
        table_header.addWidget(export_button)
        table_layout.addLayout(table_header)
        table_layout.addWidget(self.trial_table, 1)

        self.live_splitter = QSplitter(Qt.Orientation.Vertical)
        self.live_splitter.setObjectName("liveSplitter")
        self.live_splitter.addWidget(self.plots)
        self.live_splitter.addWidget(table_panel)
        self.live_splitter.setStretchFactor(0, 5)
        self.live_splitter.setStretchFactor(1, 3)
        self.live_splitter.setChildrenCollapsible(False)

        self.summary = SummaryView()
        self.runs_browser = RunsBrowser()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.live_splitter, "Live")
        self.tabs.addTab(self.summary, "Summary")
        self.tabs.addTab(self.runs_browser, "Runs")
        self.experiment = ExperimentPanel()
        self.tabs.addTab(self.experiment, "Experiment")
        self.search_view = SearchView()
        self.tabs.addTab(self.search_view, "Search")
        self.science_view = ScienceView()
        self.tabs.addTab(self.science_view, "Science")
        self.tabs.setTabToolTip(self.tabs.indexOf(self.science_view),
                                "Why batch sizes are fast or slow: steps and examples to the target, the critical "
                                "batch, the gradient noise scale, and a verdict for each claim of the usual advice.")
        self.tabs.setTabToolTip(0, "Curves of every trial as it trains, and the table of trials.")
        self.tabs.setTabToolTip(1, "One point per batch size: accuracy, time and samples to a target, "
                                   "throughput and memory.")
        self.tabs.setTabToolTip(2, "Run files in the workspace folder: open one or several to compare.")
        self.tabs.setTabToolTip(3, "What the experiment on screen tests (its description) and its whole config.")
        self.tabs.setTabToolTip(4, "A search's points: what it tried, how each scored, what was pruned, where it "
                                   "ended.")
        self.setCentralWidget(self.tabs)

        self.messages = MessageLog()
        self.messages_dock = QDockWidget("Messages", self)
        self.messages_dock.setObjectName("messagesDock")
        self.messages_dock.setWidget(self.messages)
        self.messages_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                       | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.messages_dock)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        self.sweep_status = SweepStatus(bar)
        status = self.sweep_status
        self.trial_label, self.trial_progress = status.trial_label, status.trial_progress
        self.sweep_label, self.sweep_progress = status.sweep_label, status.sweep_progress

    def _connect(self) -> None:
        self.worker.steps_logged.connect(self._on_steps)
        self.worker.event_received.connect(self._on_event)
        self.worker.failed.connect(self._on_failed)
        self.worker.finished.connect(self._on_finished)
        self.setup.run_clicked.connect(self.start_sweep)
        self.setup.find_max_batch_clicked.connect(self.find_max_batch)
        self.setup.stop_clicked.connect(self.stop_sweep)
        self.setup.validity_changed.connect(lambda _valid: self._update_run_state())
        self.setup.notice.connect(lambda text: self.log(text, "warning"))
        self.runs_browser.open_requested.connect(self.open_runs)
        self.runs_browser.resume_requested.connect(self.resume_sweep)
        self.runs_browser.workspace_changed.connect(self._workspace_changed)
        self.runs_browser.files_deleted.connect(
            lambda paths: self.log(f"Deleted {', '.join(Path(p).name for p in paths)}"))
        self.runs_browser.annotated.connect(self._show_annotated_run)
        self.plots.x_axis_changed.connect(self._x_axis_shown)
        self.trial_table.selectionModel().selectionChanged.connect(self._show_selected_telemetry)
        self.setup.config_edited.connect(self._show_form_experiment)
        self.runs_opened.connect(lambda _runs: self.experiment.show_runs(self.shown_runs()))
        self.sweep_started.connect(lambda _event: self.experiment.show_runs(self.shown_runs()))
        self.sweep_finished.connect(lambda _path: self.experiment.show_runs(self.shown_runs()))
        self.experiment.load_requested.connect(self.load_config_text)
        self.experiment.run_again_requested.connect(self.run_config_text)
        self.tabs.currentChanged.connect(lambda _index: self.fresh_summary()
                                         if self.tabs.currentWidget() is self.summary else None)
        # Drawn when looked at, from the runs on screen then (a live search too), and again when a sweep ends.
        def show_search(*_args) -> None:
            if self.tabs.currentWidget() is self.search_view:
                self.search_view.set_runs(self._shown_runs)
        self.tabs.currentChanged.connect(show_search)
        self.sweep_finished.connect(show_search)

        def show_science(*_args) -> None:
            if self.tabs.currentWidget() is self.science_view:
                self.science_view.set_runs(self._shown_runs, self.summary.target_accuracy())
        self.tabs.currentChanged.connect(show_science)
        self.sweep_finished.connect(show_science)

    # --- settings --------------------------------------------------------------------------------------
    def save_settings(self) -> None:
        self._settings.save()

    def workspace(self) -> Path:
        """Where sweeps write their run files: the folder the runs browser lists."""
        return self.runs_browser.workspace()

    def _workspace_changed(self, folder) -> None:
        self._settings.remember_workspace(folder)
        if self._restored:
            self.log(f"Workspace: {folder}")

    # --- running ---------------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self._running

    def start_sweep(self) -> None:
        if self._running:
            return
        try:
            config = self.setup.config()
        except ConfigError as error:
            self.log(f"Cannot run: {error}", "error")
            return
        self._sweep_begins(f"Preparing the data set {Path(config.data.dataset).name}…")
        self.statusBar().showMessage(f"Preparing {config.name}…")
        self.log(f"Starting “{config.name}”: {len(config.sweep.batch_sizes)} batch sizes × "
                 f"{len(config.train.seeds)} seed(s); run file in {self.workspace()}")
        self.worker.start_sweep(config, self.workspace())

    def resume_sweep(self, run_file: Path) -> None:
        """Go on with an interrupted or stopped run in its own file, with the config stored there."""
        if self._running:
            self.log(f"{Path(run_file).name} can be resumed once the running sweep has ended.", "warning")
            return
        self._sweep_begins(f"Reading {Path(run_file).name}…")
        self.log(f"Resuming {Path(run_file).name}: finished trials are kept, the interrupted one is trained again")
        self.worker.resume_sweep(run_file)

    def _sweep_begins(self, preparing: str) -> None:
        self._live = LiveRun()
        self._running, self._stopping = True, False
        self._reset_progress()
        self._progress.start(preparing)
        self.sweep_status.show(self._progress)
        self.table_hint.setText(preparing)
        self.tabs.setCurrentWidget(self.live_splitter)
        self._update_run_state()

    def find_max_batch(self) -> None:
        """The largest batch size of the experiment in the form that fits (gui/max_batch_dialog.py)."""
        from gui.max_batch_dialog import RUNS_SUBFOLDER, MaxBatchDialog
        if self._running:
            self.log("Find max batch can run once the sweep has ended: both would compete for memory.", "warning")
            return
        try:
            config = self.setup.config()
        except ConfigError as error:
            self.log(f"Cannot search: {error}", "error")
            return
        self.max_batch_dialog = MaxBatchDialog(config, self.workspace() / RUNS_SUBFOLDER, self)
        self.max_batch_dialog.batch_sizes_chosen.connect(self.setup.set_batch_sizes)
        self.max_batch_dialog.open()

    def stop_sweep(self) -> None:
        if not self._running or self._stopping:
            return
        self._stopping = True
        self.worker.stop()
        self.statusBar().showMessage("Stopping… the running trial will be saved as cancelled.")
        self.log("Stopping the sweep…")
        self._update_run_state()

    def _on_steps(self, batch: list[StepsLogged]) -> None:
        live = self._live
        if live is None:
            return
        changed: set[str] = set()
        for event in batch:
            changed |= live.apply(event)
            self._progress.apply(event)
        last = batch[-1]
        elapsed = float(last.wall_time_s[-1]) if len(last.wall_time_s) else None
        self.trial_table.table_model.set_progress(live.run, last.trial.name, last.epoch_fraction,
                                                  self._progress.trial_epochs, elapsed)
        self.plots.mark_dirty(changed)
        self.sweep_status.show(self._progress)

    def _on_event(self, event) -> None:
        """Every engine event but steps: folded into the live run and the progress, then shown by its handler."""
        live = self._live
        if live is None:
            return
        changed = live.apply(event)
        self._progress.apply(event)
        handler = self._event_handlers.get(type(event))
        if handler is not None:
            handler(event, changed)
        self.sweep_status.show(self._progress)
        if changed:
            self.plots.mark_dirty(changed)

    def _show_sweep_started(self, event: SweepStarted, _changed: set[str]) -> None:
        run = self._live.run
        self._shown_runs = [run]
        self.trial_table.table_model.show_runs([run], planned=event.trials)
        self.plots.set_runs(self._shown_runs)
        self.summary.set_runs(self._shown_runs)
        self.table_hint.setText(f"{run.header.name} · {len(event.trials)} trials on {event.device_name}")
        self.statusBar().clearMessage()
        self.log(f"Training {len(event.trials)} trials on {event.device_name} ({event.train_size:,} training "
                 f"and {event.val_size:,} validation examples).")
        self.sweep_started.emit(event)

    def _show_trial_changed(self, _event: TrialStarted | EpochEnded, changed: set[str]) -> None:
        self.trial_table.table_model.update_trials(self._live.run, changed)
        self._summary_changed()

    def _show_trial_ended(self, event: TrialEnded, changed: set[str]) -> None:
        self.trial_table.table_model.update_trials(self._live.run, changed)
        self._summary_changed(runs_changed=True)
        outcome = trial_outcome(event)
        if outcome is not None:
            self.log(*outcome)
        self.trial_ended.emit(event)

    def _show_trial_scored(self, _event: TrialScored, _changed: set[str]) -> None:
        """A search's trial got its score (after it ended): the Search tab, when looked at, shows it at once."""
        if self.tabs.currentWidget() is self.search_view:
            self.search_view.set_runs(self._shown_runs)

    def _show_sweep_ended(self, event: SweepEnded, _changed: set[str]) -> None:
        self.trial_table.table_model.mark_not_run()
        self._summary_changed(runs_changed=True)     # the run is no longer "so far"
        counts: dict[str, int] = {}
        for status in event.trial_statuses.values():
            counts[status] = counts.get(status, 0) + 1
        summary = ", ".join(f"{n} {schema.STATUS_LABELS.get(s, s)}" for s, n in sorted(counts.items()))
        self.log(f"Sweep {event.status}: {summary or 'no trials'}. Saved {event.run_path}",
                 "info" if event.status == schema.COMPLETED else "warning")

    def _show_message(self, event: Message, _changed: set[str]) -> None:
        self.log(event.text, event.level)

    def _on_failed(self, message: str) -> None:
        self.log(message, "error")
        self.statusBar().showMessage("The sweep could not run: see Messages.", 10_000)
        self.messages_dock.show()
        self.messages_dock.raise_()

    def _on_finished(self, path: str) -> None:
        self._running = self._stopping = False
        self.trial_table.table_model.mark_not_run()
        self.plots.redraw_now()         # the final curves at once, not on the next redraw tick
        self._update_run_state()
        if path:
            self.statusBar().showMessage(f"Saved {path}", 10_000)
            self.runs_browser.refresh()
            self.sweep_status.finished(self._progress)
        else:
            self._reset_progress()
        self.sweep_finished.emit(path)
        if self._close_when_stopped:
            self.close()

    def _reset_progress(self) -> None:
        self._progress = SweepProgress()
        self.sweep_status.reset()

    # --- the Summary is recomputed only when seen: a refresh takes ~0.1 s of the GUI thread ---------------
    def _summary_changed(self, runs_changed: bool = False) -> None:
        if self.tabs.currentWidget() is not self.summary:
            self._summary_stale = True
        elif runs_changed:
            self.summary.set_runs(self._shown_runs)
        else:
            self.summary.mark_dirty()

    def fresh_summary(self) -> SummaryView:
        """The Summary, brought up to date with the runs shown if a sweep changed them while it was hidden."""
        if self._summary_stale:
            self._summary_stale = False
            self.summary.set_runs(self._shown_runs)
        return self.summary

    @property
    def progress(self) -> SweepProgress:
        """The running (or last) sweep's progress and estimated time left."""
        return self._progress

    def _update_run_state(self) -> None:
        valid = self.setup.is_valid()
        self.run_action.setEnabled(valid and not self._running)
        self.stop_action.setEnabled(self._running and not self._stopping)
        self.setup.set_running(self._running)
        self.setup.stop_button.setEnabled(self._running and not self._stopping)
        self.sweep_status.set_visible(self._running, bool(self._progress.planned))
        self.experiment.set_running(self._running)

    # --- opening and saving ----------------------------------------------------------------------------
    def open_runs(self, paths: list[Path]) -> list[RunData]:
        """Show run files in the plots, the summary and the table (overlaid when several)."""
        runs = []
        for path in paths:
            try:
                runs.append(read_run(path))
            except RunFileError as error:
                self.log(str(error), "error")
        if not runs:
            return []
        live_run = self._live.run if (self._running and self._live and self._live.run) else None
        self._shown_runs = ([live_run] if live_run else []) + runs
        planned = self._progress.planned if live_run else ()
        self.trial_table.table_model.show_runs(self._shown_runs, planned=planned)
        self.plots.set_runs(self._shown_runs)
        self.summary.set_runs(self._shown_runs)
        names = ", ".join(run.header.name for run in runs)
        self.table_hint.setText(f"{names}" if len(runs) == 1 else f"{len(runs)} runs overlaid: {names}")
        self.log(f"Opened {', '.join(str(run.path.name) for run in runs)}")
        self.tabs.setCurrentWidget(self.live_splitter)
        self.runs_opened.emit(runs)
        self.run_follower.follow(runs)
        return runs

    def _show_followed_run(self, run: RunData) -> None:
        """A shown run file that another process writes has grown: show it as it is now."""
        self._shown_runs = [run if shown.path == run.path else shown for shown in self._shown_runs]
        self.trial_table.table_model.show_runs(self._shown_runs,
                                               planned=self._progress.planned if self._running else ())
        self.plots.set_runs(self._shown_runs)
        self.summary.set_runs(self._shown_runs)

    def _show_annotated_run(self, path: Path) -> None:
        """A run on screen got a new name, notes or tags in the Runs tab: show it under its new name."""
        if not any(shown.path == path for shown in self._shown_runs):
            return
        try:
            run = read_run(path)
        except RunFileError as error:
            self.log(str(error), "error")
            return
        self._show_followed_run(run)
        names = ", ".join(shown.header.name for shown in self._shown_runs)
        count = len(self._shown_runs)
        self.table_hint.setText(names if count == 1 else f"{count} runs overlaid: {names}")
        self.experiment.show_runs(self.shown_runs())

    def shown_runs(self) -> list[RunData]:
        return list(self._shown_runs)

    def open_run_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open run files", str(self.workspace()),
                                                "Run files (*.h5 *.hdf5);;All files (*)")
        if paths:
            self.open_runs([Path(p) for p in paths])

    def load_config_file(self, path: Path) -> bool:
        """Load a config (or preset) into the form; a bad file is explained in a dialog, nothing changes."""
        try:
            config = load_config(path)
        except UserError as error:
            problems = getattr(error, "problems", [str(error)])
            config_problems_box(self, Path(path).name, problems).exec()
            return False
        self._config_path = Path(path)
        self.setup.set_config(config)
        self._show_form_experiment()
        self.log(f"Loaded config {Path(path).name}")
        return True

    def open_config_dialog(self) -> None:
        start = str(self._config_path.parent) if self._config_path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open experiment config", start,
                                              "Experiment configs (*.toml);;All files (*)")
        if path:
            self.load_config_file(Path(path))

    def save_config(self, path: Path) -> None:
        """Write the form as TOML: the engine's canonical text when valid, else what was typed."""
        if self.setup.is_valid():
            text = self.setup.config().to_toml()
        else:
            text = tomli_w.dumps(self.setup.table())
        Path(path).write_text(text, encoding="utf-8")
        self._config_path = Path(path)

    def save_config_dialog(self) -> None:
        if not self.setup.is_valid():
            answer = QMessageBox.question(
                self, "Save a config with problems?",
                "This experiment still has problems (see the list under the form). Save it anyway?")
            if answer != QMessageBox.StandardButton.Yes:
                return
        name = self.setup.table().get("name") or "experiment"
        start = self._config_path.parent if self._config_path else Path.home()
        path, _ = QFileDialog.getSaveFileName(self, "Save experiment config", str(start / f"{name}.toml"),
                                              "Experiment configs (*.toml)")
        if not path:
            return
        if not path.endswith(".toml"):
            path += ".toml"
        try:
            self.save_config(Path(path))
        except OSError as error:
            QMessageBox.warning(self, "Cannot save", f"{path}: {error.strerror or error}")
            return
        self.log(f"Saved config {path}")

    def choose_workspace_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Workspace folder for run files", str(self.workspace()))
        if folder:
            self.runs_browser.set_workspace(Path(folder))

    # --- exporting (gui/export_routing.py decides which view the current tab exports) -------------------
    def current_export_target(self) -> QWidget:
        """The view whose plot the export menu items write: Summary on its tab, else Live."""
        return self.exports.plot_view()

    def export_plot(self, path: Path) -> None:
        """The current tab's plot as PNG or SVG: the plot last clicked there (all plots when none was)."""
        self.exports.export_plot(Path(path))

    def export_plot_dialog(self, kind: str) -> None:
        self.exports.export_plot_dialog(kind)

    def export_table(self, path: Path, which: str = "") -> None:
        """A table as CSV: which = "trials", "summary" or "runs"; by default the current tab's."""
        self.exports.export_table(Path(path), which)

    def export_table_dialog(self, which: str = "") -> None:
        self.exports.export_table_dialog(which)

    # --- view ------------------------------------------------------------------------------------------
    def set_x_axis(self, key: str) -> None:
        if key not in X_AXES:
            key = "epoch"
        if self.plots.x_axis() != key:
            self.plots.set_x_axis(key)
        self._x_axis_shown(key)

    def _show_selected_telemetry(self, *_selection) -> None:
        """The telemetry strip shows the trial selected in the table; with none selected, the running one."""
        table = self.trial_table
        selected = table.selectionModel().selectedRows()
        name = table.table_model.rows()[table.proxy.mapToSource(selected[0]).row()].name if selected else None
        self.plots.telemetry_strip().choose_trial(name)

    def _x_axis_shown(self, key: str) -> None:
        for item in self.x_axis_actions.actions():
            item.setChecked(item.data() == key)

    def set_theme(self, name: str) -> None:
        applied = theme.apply_theme(QApplication.instance(), name)
        for item in self.theme_actions.actions():
            item.setChecked(item.data() == applied)
        for item, icon_name in self._icon_actions + self._icon_buttons:
            item.setIcon(theme.icon(icon_name))
        self.setup.restyle()
        # The plots and summary restyle themselves on the palette change; the table's swatches just repaint.
        self.trial_table.viewport().update()

    def log(self, text: str, level: str = "info") -> None:
        """Add a line to the message area (info, warning or error)."""
        self.messages.add(text, level)

    def message_texts(self, level: str | None = None) -> list[str]:
        return self.messages.texts(level)

    def show_help(self) -> HelpDialog:
        """The offline help page with the shortcut list, in its own window."""
        if self._help is None:
            self._help = HelpDialog(self)
        self._help.show()
        self._help.raise_()
        return self._help

    def run_folder(self) -> Path:
        """The folder of the (first) run on screen, else the workspace: what Show in file manager opens."""
        runs = self.shown_runs()
        return runs[0].path.parent if runs else self.workspace()

    def show_in_file_manager(self) -> None:
        folder = self.run_folder()
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self.log(f"No file manager could open {folder}", "warning")

    def _show_form_experiment(self) -> None:
        table = self.setup.table()
        self.experiment.show_form(str(table.get("name", "")), tomli_w.dumps(table))

    def load_config_text(self, text: str) -> bool:
        """Put a run's config (TOML text) into the setup form; False, with a message, when it cannot be."""
        try:
            self.setup.set_config(tomllib.loads(text))
        except tomllib.TOMLDecodeError as error:
            self.log(f"This run's config cannot be read: {error}", "error")
            return False
        self.log(f"Loaded the config of “{self.setup.table().get('name', '')}” into the setup form")
        return True

    def run_config_text(self, text: str) -> None:
        """Run a run's config again, as it was, into a new run file."""
        if self._running:
            self.log("A sweep is running: stop it before running another.", "warning")
            return
        if self.load_config_text(text):
            if self.setup.is_valid():
                self.start_sweep()
            else:
                self.log("Cannot run this config again: " + "; ".join(map(str, self.setup.problems())), "error")

    def show_about(self) -> None:
        import platform

        import torch
        from PySide6 import __version__ as pyside_version
        import pyqtgraph

        QMessageBox.about(
            self, f"About {APP_NAME}",
            f"<h3>{APP_NAME} {__version__}</h3>"
            "<p>Set up a batch-size experiment, watch every batch size train live, and read the answer: "
            "accuracy, time and samples to a target, throughput and memory per batch size.</p>"
            f"<p style='color:gray'>Python {html.escape(platform.python_version())} · PyTorch "
            f"{html.escape(torch.__version__)} · PySide6 {pyside_version} · pyqtgraph {pyqtgraph.__version__}</p>")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._default_layout_pending:
            # Dock sizes only take once the window has its size: a wide setup panel, a short message log.
            self._default_layout_pending = False
            setup_width = 390 if self.width() >= 1300 else 300
            self.resizeDocks([self.setup_dock], [setup_width], Qt.Orientation.Horizontal)
            self.resizeDocks([self.messages_dock], [72], Qt.Orientation.Vertical)

    # --- closing ---------------------------------------------------------------------------------------
    def quit_without_asking(self) -> None:
        """Close now; a running sweep is stopped first (its trial saved as cancelled), then the window closes."""
        if self._running:
            self._close_when_stopped = True
            self.stop_sweep()
        else:
            self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._running:
            event.ignore()
            if self._close_when_stopped:
                return
            box = QMessageBox(QMessageBox.Icon.Question, "Stop the sweep and quit?",
                              "A sweep is running. Stop it and close the window?",
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
            box.setObjectName("confirmCloseDialog")
            box.setInformativeText("Every finished epoch is already saved; the running trial is saved as "
                                   "cancelled.")
            box.setDefaultButton(QMessageBox.StandardButton.No)
            if box.exec() != QMessageBox.StandardButton.Yes:
                return
            self._close_when_stopped = True
            self.stop_sweep()
            # The window closes itself when the worker reports that the sweep has ended (_on_finished).
            return
        self.save_settings()
        self._worker_thread.shutdown()
        super().closeEvent(event)
