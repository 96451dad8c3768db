"""The runs browser: every run file (*.h5) in the workspace folder, with what it was and how it ended (the
columns and the cells of a row are gui/runs_rows.py's).

Headers are read with engine.runfile.read_header (no metric arrays), cached by modification time and size, so
refreshing a folder of many runs re-reads only what changed. A file that is not a run file is listed,
greyed, with the reason, never raised. The folder is watched and the list refreshes by itself.

A run's name, notes and tags are kept in its file (engine.annotations writes them; this view only asks), and
the filter box shows the rows whose name, tags, dataset, model, status or file name hold every word typed.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QMessageBox, QPushButton, QSizePolicy, QTableWidget, QVBoxLayout, QWidget)

from engine import schema
from engine.annotations import annotate
from engine.errors import RunFileError, UserError
from engine.resources import default_workspace
from engine.run_listing import matches, run_files, short_error
from engine.runfile import RunHeader, read_header
from gui.config_diff_view import ComparedRun, ConfigDiffDialog
from gui.export import export_table_csv
from gui.run_details_dialog import RunDetailsDialog
from gui.runs_rows import (COLUMNS, CREATED, FILE, FILTERED_COLUMNS, NAME, NOTES, PATH_ROLE, SIZES, STATUS, TAGS,
                           RunEntry, row_items)

REFRESH_DELAY_MS = 300


class RunsBrowser(QWidget):
    """A sortable table of the run files in a workspace folder; open several to overlay, delete with
    confirmation, change the folder."""

    open_requested = Signal(list)        # list[Path]: run files the user opened
    workspace_changed = Signal(object)   # Path: the folder now listed (for the shell's settings)
    files_deleted = Signal(list)         # list[Path]: run files the user deleted
    resume_requested = Signal(object)    # Path: an interrupted or stopped run to go on with, in its own file
    annotated = Signal(object)           # Path: a run file whose name, notes or tags the user changed

    def __init__(self, workspace: Path | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self._workspace: Path | None = None
        self._entries: list[RunEntry] = []
        self._cache: dict[Path, tuple[tuple[int, int], RunEntry]] = {}
        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(self._schedule_refresh)
        self._watcher.fileChanged.connect(self._schedule_refresh)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_DELAY_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        self._build()
        self.set_workspace(Path(workspace) if workspace is not None else default_workspace())

    # ---------------------------------------------------------------- public interface

    def set_workspace(self, folder: Path) -> None:
        """List the run files in this folder (created if missing) and watch it."""
        folder = Path(folder).expanduser()
        problem = ""
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            problem = f"The folder cannot be created: {error.strerror or error}"
        changed = folder != self._workspace
        self._workspace = folder
        self._folder_label.setText(str(folder))
        self._folder_label.setToolTip(str(folder))
        self._problem = problem
        if changed:
            self._cache.clear()
        self.refresh()
        if changed:
            self.workspace_changed.emit(folder)

    def workspace(self) -> Path:
        return self._workspace

    def refresh(self) -> None:
        """Re-read the folder now (headers of unchanged files come from the cache)."""
        self._refresh_timer.stop()
        selected = set(self.selected_paths(include_errors=True))
        folder = self._workspace
        paths: list[Path] = []
        if folder is not None and folder.is_dir():
            try:
                paths = run_files(folder)
            except OSError as error:
                self._problem = f"The folder cannot be read: {error.strerror or error}"
        elif folder is not None and not self._problem:
            self._problem = "The folder does not exist."
        self._entries = [self._entry(path) for path in paths]
        self._cache = {path: cached for path, cached in self._cache.items() if path in set(paths)}
        self._watch(folder, paths)
        self._fill(selected)

    def entries(self) -> list[RunEntry]:
        """Every listed file, in folder order (not the table's sort order)."""
        return list(self._entries)

    def paths(self) -> list[Path]:
        """The listed files in the table's current order."""
        return [self._row_path(row) for row in range(self._table.rowCount())]

    def selected_paths(self, include_errors: bool = False) -> list[Path]:
        """The selected run files, in table order (files that are not run files only when asked)."""
        rows = sorted({index.row() for index in self._table.selectionModel().selectedRows()})
        paths = [self._row_path(row) for row in rows]
        if include_errors:
            return paths
        readable = {entry.path for entry in self._entries if entry.is_run}
        return [path for path in paths if path in readable]

    def select_paths(self, paths: list[Path]) -> None:
        """Select these files in the table (others are deselected)."""
        wanted = {Path(path) for path in paths}
        selection = self._table.selectionModel()
        self._table.clearSelection()
        flags = selection.SelectionFlag.Select | selection.SelectionFlag.Rows
        for row in range(self._table.rowCount()):
            if self._row_path(row) in wanted:
                selection.select(self._table.model().index(row, 0), flags)
        self._update_buttons()

    def open_selected(self) -> None:
        """Ask to open the selected run files (emits open_requested)."""
        paths = self.selected_paths()
        if paths:
            self.open_requested.emit(paths)

    def resumable_path(self) -> Path | None:
        """The selected run when it is exactly one that did not complete (interrupted, stopped or failed)."""
        paths = self.selected_paths()
        if len(paths) != 1:
            return None
        header = next(entry.header for entry in self._entries if entry.path == paths[0])
        # A run another process is writing is not interrupted: its sweep is still going.
        return paths[0] if header.status != schema.COMPLETED and not header.being_written else None

    def resume_selected(self) -> None:
        """Ask to go on with the selected run (emits resume_requested)."""
        path = self.resumable_path()
        if path is not None:
            self.resume_requested.emit(path)

    def editable_header(self) -> RunHeader | None:
        """The selected run when it is exactly one that no sweep is writing: its name, notes and tags can change."""
        paths = self.selected_paths()
        if len(paths) != 1:
            return None
        header = self._header(paths[0])
        return None if header is None or header.being_written else header

    def edit_selected(self, focus: str = "name") -> bool:
        """Ask for the selected run's name, notes and tags and write them into its file; True when saved.
        focus: the field the dialog starts in ('name', 'tags' or 'notes')."""
        header = self.editable_header()
        if header is None:
            return False
        dialog = RunDetailsDialog(header, self, focus)
        if dialog.exec() != RunDetailsDialog.DialogCode.Accepted:
            return False
        typed = dialog.values()
        return self.annotate_run(header.path, name=typed.name, notes=typed.notes, tags=typed.tags)

    def annotate_run(self, path: Path, **values) -> bool:
        """engine.annotations.annotate on one run file, its refusal shown in a message box; True when written."""
        try:
            annotate(path, **values)
        except UserError as error:
            QMessageBox.warning(self, "Name, notes and tags not saved", short_error(str(error), Path(path)))
            self.refresh()
            return False
        # Read it again whatever its modification time says: on a file system that keeps whole seconds, a change
        # within the second of the last one leaves time and size as they were.
        self._cache.pop(Path(path), None)
        self.refresh()
        self.annotated.emit(Path(path))
        return True

    def compare_selected(self) -> ConfigDiffDialog | None:
        """Show how the configs of the selected runs differ (two or more runs)."""
        headers = [self._header(path) for path in self.selected_paths()]
        if len(headers) < 2:
            return None
        dialog = ConfigDiffDialog([ComparedRun(header.name, header.path.name, header.config_text)
                                   for header in headers], self)
        dialog.show()
        return dialog

    def set_filter(self, text: str) -> None:
        """Show only the runs whose name, tags, dataset, model, status or file name hold every word of text."""
        self._filter_edit.setText(text)

    def visible_paths(self) -> list[Path]:
        """The listed files that the filter shows, in the table's order."""
        return [self._row_path(row) for row in range(self._table.rowCount()) if not self._table.isRowHidden(row)]

    def delete_selected(self) -> list[Path]:
        """Delete the selected files after a confirmation; returns what was deleted."""
        paths = self.selected_paths(include_errors=True)
        if not paths:
            return []
        names = "\n".join(f"  {path.name}" for path in paths[:12])
        if len(paths) > 12:
            names += f"\n  … and {len(paths) - 12} more"
        question = (f"Delete {'this run file' if len(paths) == 1 else f'these {len(paths)} run files'} from "
                    f"{self._workspace}?\n\n{names}\n\nThis cannot be undone.")
        answer = QMessageBox.question(self, "Delete run files", question,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return []
        deleted, problems = [], []
        for path in paths:
            try:
                path.unlink()
                deleted.append(path)
            except FileNotFoundError:
                deleted.append(path)
            except OSError as error:
                problems.append(f"{path.name}: {error.strerror or error}")
        self.refresh()
        if deleted:
            self.files_deleted.emit(deleted)
        if problems:
            QMessageBox.warning(self, "Some files were not deleted", "\n".join(problems))
        return deleted

    def choose_workspace(self) -> None:
        """Let the user pick another folder (a folder dialog)."""
        folder = QFileDialog.getExistingDirectory(self, "Choose the folder with your run files",
                                                  str(self._workspace or Path.home()))
        if folder:
            self.set_workspace(Path(folder))

    def table_widget(self) -> QTableWidget:
        return self._table

    def table_headers(self) -> list[str]:
        return list(COLUMNS)

    def table_rows(self) -> list[list]:
        """The listing as shown, the rows the filter hides left out (for CSV export)."""
        return [[self._table.item(row, column).text() for column in range(len(COLUMNS))]
                for row in range(self._table.rowCount()) if not self._table.isRowHidden(row)]

    def export_table(self, path: Path) -> None:
        export_table_csv(self.table_headers(), self.table_rows(), Path(path))

    # ---------------------------------------------------------------- building

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        top = QHBoxLayout()
        top.setSpacing(6)
        folder_title = QLabel("Workspace:")
        top.addWidget(folder_title)
        self._folder_label = QLabel()
        self._folder_label.setObjectName("workspacePath")
        self._folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._folder_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        top.addWidget(self._folder_label, 1)
        self._change_button = QPushButton("Change folder…")
        self._change_button.setToolTip("List the run files of another folder")
        self._change_button.clicked.connect(self.choose_workspace)
        top.addWidget(self._change_button)
        self._refresh_button = QPushButton("Refresh")
        self._refresh_button.setToolTip("Read the folder again (it is also watched for changes)")
        self._refresh_button.clicked.connect(self.refresh)
        top.addWidget(self._refresh_button)
        layout.addLayout(top)

        self._filter_edit = QLineEdit()
        self._filter_edit.setObjectName("runsFilter")
        self._filter_edit.setPlaceholderText("Filter by name, tag, dataset, model or status (every word must match)")
        self._filter_edit.setToolTip("Shows the runs whose name, tags, dataset, model, status or file name hold "
                                     "every word typed, without regard to case")
        self._filter_edit.setClearButtonEnabled(True)
        self._filter_edit.textChanged.connect(self._apply_filter)
        layout.addWidget(self._filter_edit)

        self._table = QTableWidget(0, len(COLUMNS))
        self._table.setObjectName("runsTable")
        self._table.setHorizontalHeaderLabels(list(COLUMNS))
        self._table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self._table.setAlternatingRowColors(True)
        self._table.setSortingEnabled(True)
        self._table.setWordWrap(False)
        self._table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self._table.verticalHeader().setVisible(False)
        header = self._table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setSortIndicatorShown(True)
        self._table.sortByColumn(CREATED, Qt.SortOrder.DescendingOrder)
        self._table.itemSelectionChanged.connect(self._update_buttons)
        self._table.cellDoubleClicked.connect(self._double_clicked)
        layout.addWidget(self._table, 1)

        # The selected run's notes in full: the Notes column shows their first line only, and on a narrow window
        # lies beyond the scroll.
        self._notes_label = QLabel()
        self._notes_label.setObjectName("runNotes")
        self._notes_label.setWordWrap(True)
        self._notes_label.setTextFormat(Qt.TextFormat.PlainText)
        self._notes_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._notes_label.setMaximumHeight(self.fontMetrics().lineSpacing() * 4 + 8)
        layout.addWidget(self._notes_label)

        self._empty_label = QLabel()
        self._empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty_label.setWordWrap(True)
        self._empty_label.setEnabled(False)
        layout.addWidget(self._empty_label)

        bottom = QHBoxLayout()
        self._count_label = QLabel()
        self._count_label.setObjectName("runsCount")
        self._count_label.setEnabled(False)
        bottom.addWidget(self._count_label, 1)
        self._details_button = QPushButton("Name, notes and tags…")
        self._details_button.setObjectName("runDetailsButton")
        self._details_button.setToolTip("Rename the selected run, write notes about it, tag it (F2). Kept in the "
                                        "run file; not while a sweep is writing it")
        self._details_button.clicked.connect(lambda: self.edit_selected("name"))
        bottom.addWidget(self._details_button)
        self._delete_button = QPushButton("Delete…")
        self._delete_button.setToolTip("Delete the selected run files (asks first)")
        self._delete_button.clicked.connect(self.delete_selected)
        bottom.addWidget(self._delete_button)
        self._resume_button = QPushButton("Resume")
        self._resume_button.setToolTip("Go on with the selected interrupted or stopped run in its own file: "
                                       "finished trials are kept, the interrupted one is trained again from its "
                                       "start (its partial epochs are kept as an earlier attempt), then the rest")
        self._resume_button.clicked.connect(self.resume_selected)
        bottom.addWidget(self._resume_button)
        self._open_button = QPushButton("Open")
        self._open_button.setDefault(True)
        self._open_button.setToolTip("Show the selected runs; several are overlaid for comparison")
        self._open_button.clicked.connect(self.open_selected)
        bottom.addWidget(self._open_button)
        layout.addLayout(bottom)
        self._table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self._row_actions = []
        for text, slot, button in (("Open", self.open_selected, self._open_button),
                                   ("Resume", self.resume_selected, self._resume_button),
                                   ("Delete…", self.delete_selected, self._delete_button)):
            row_action = QAction(text, self._table)
            row_action.setToolTip(button.toolTip())
            row_action.triggered.connect(slot)
            self._table.addAction(row_action)
            self._row_actions.append((row_action, button))
        separator = QAction(self._table)
        separator.setSeparator(True)
        self._table.addAction(separator)
        edit_tip = ("Kept in the run file; the file keeps its name on disk. Not while a sweep is writing the run.")
        self.rename_action = QAction("Rename…", self._table)
        self.rename_action.setShortcut("F2")
        self.rename_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.rename_action.setToolTip(f"Give the selected run a name of its own. {edit_tip}")
        self.rename_action.triggered.connect(lambda: self.edit_selected("name"))
        self.notes_action = QAction("Notes and tags…", self._table)
        self.notes_action.setToolTip(f"Write notes about the selected run and tag it. {edit_tip}")
        self.notes_action.triggered.connect(lambda: self.edit_selected("notes"))
        self.compare_action = QAction("Compare configs…", self._table)
        self.compare_action.setToolTip("Show the settings that differ between the selected runs (two or more)")
        self.compare_action.triggered.connect(self.compare_selected)
        for row_action in (self.rename_action, self.notes_action, self.compare_action):
            self._table.addAction(row_action)
        self._update_buttons()

    # ---------------------------------------------------------------- listing

    def _entry(self, path: Path) -> RunEntry:
        try:
            stat = path.stat()
        except OSError as error:
            return RunEntry(path, None, error.strerror or str(error), 0.0)
        signature = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == signature:
            return cached[1]
        try:
            entry = RunEntry(path, read_header(path), "", stat.st_mtime)
        except RunFileError as error:
            entry = RunEntry(path, None, short_error(str(error), path), stat.st_mtime)
        except OSError as error:
            entry = RunEntry(path, None, f"cannot be read ({error.strerror or error})", stat.st_mtime)
        except Exception as error:  # noqa: BLE001 — one file must never stop the listing, nor the app's start
            entry = RunEntry(path, None, f"cannot be read ({type(error).__name__}: {error})".split("\n")[0],
                             stat.st_mtime)
        self._cache[path] = (signature, entry)
        return entry

    def _watch(self, folder: Path | None, paths: list[Path]) -> None:
        watched = set(self._watcher.directories()) | set(self._watcher.files())
        wanted = {str(path) for path in paths}
        if folder is not None and folder.is_dir():
            wanted.add(str(folder))
        stale = [item for item in watched if item not in wanted]
        if stale:
            self._watcher.removePaths(stale)
        new = [item for item in wanted if item not in watched]
        if new:
            self._watcher.addPaths(new)

    def _schedule_refresh(self, *_args) -> None:
        self._refresh_timer.start()

    def _fill(self, selected: set[Path]) -> None:
        table = self._table
        sort_column = table.horizontalHeader().sortIndicatorSection()
        sort_order = table.horizontalHeader().sortIndicatorOrder()
        table.setSortingEnabled(False)
        table.clearContents()
        table.setRowCount(len(self._entries))
        disabled = self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        for row, entry in enumerate(self._entries):
            for column, item in enumerate(row_items(entry, disabled)):
                item.setData(PATH_ROLE, str(entry.path))
                table.setItem(row, column, item)
        table.setSortingEnabled(True)
        table.sortByColumn(sort_column, sort_order)
        if selected:
            self.select_paths(list(selected))
        runs = sum(entry.is_run for entry in self._entries)
        others = len(self._entries) - runs
        count = f"{runs} run{'s' if runs != 1 else ''}"
        if others:
            count += f", {others} unreadable file{'s' if others != 1 else ''}"
        self._count_text = count
        self._apply_filter()
        if self._problem:
            self._empty_label.setText(self._problem)
        elif not self._entries:
            self._empty_label.setText("No run files here yet. Runs you start are saved in this folder; "
                                      "use “Change folder…” to look elsewhere.")
        self._empty_label.setVisible(bool(self._problem) or not self._entries)
        if self._entries and table.columnWidth(NAME) < 60:
            self._fit_columns()
        self._update_buttons()

    def _fit_columns(self) -> None:
        self._table.resizeColumnsToContents()
        # Long statuses, notes and names are elided (their tooltips hold them whole), so that at 1280 pixels the
        # columns up to the notes fit beside the setup panel.
        for column, limit in ((NAME, 200), (TAGS, 160), (SIZES, 150), (STATUS, 200), (NOTES, 200),
                              (FILE, 260)):
            if self._table.columnWidth(column) > limit:
                self._table.setColumnWidth(column, limit)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._entries:
            self._fit_columns()

    def _row_path(self, row: int) -> Path:
        return Path(self._table.item(row, NAME).data(PATH_ROLE))

    def _header(self, path: Path) -> RunHeader | None:
        return next((entry.header for entry in self._entries if entry.path == path), None)

    def _apply_filter(self) -> None:
        words = self._filter_edit.text().split()
        table = self._table
        hidden_selected = False
        for row in range(table.rowCount()):
            hide = bool(words) and not matches([table.item(row, column).text() for column in FILTERED_COLUMNS],
                                               words)
            table.setRowHidden(row, hide)
            hidden_selected = hidden_selected or (hide and table.selectionModel().isRowSelected(row))
        if hidden_selected:
            # What the filter hides must not be opened or deleted by a button the user presses next.
            visible = set(self.visible_paths())
            self.select_paths([path for path in self.selected_paths(include_errors=True) if path in visible])
        shown = len(self.visible_paths())
        self._count_label.setText(self._count_text if shown == table.rowCount()
                                  else f"{self._count_text} · {shown} shown by the filter")

    def _update_buttons(self) -> None:
        self._open_button.setEnabled(bool(self.selected_paths()))
        self._resume_button.setEnabled(self.resumable_path() is not None)
        self._delete_button.setEnabled(bool(self.selected_paths(include_errors=True)))
        for row_action, button in self._row_actions:
            row_action.setEnabled(button.isEnabled())
        editable = self.editable_header() is not None
        busy = len(self.selected_paths()) == 1 and not editable
        self._details_button.setEnabled(editable)
        for row_action in (self.rename_action, self.notes_action):
            row_action.setEnabled(editable)
            row_action.setText(row_action.text().split(" (")[0] + (" (a sweep is writing it)" if busy else ""))
        self.compare_action.setEnabled(len(self.selected_paths()) >= 2)
        selected = self.selected_paths()
        header = self._header(selected[0]) if len(selected) == 1 else None
        self._notes_label.setText(f"Notes on {header.name}: {header.notes}" if header and header.notes else "")
        self._notes_label.setVisible(bool(header and header.notes))

    def _double_clicked(self, row: int, _column: int) -> None:
        path = self._row_path(row)
        if any(entry.path == path and entry.is_run for entry in self._entries):
            self.open_requested.emit([path])

