"""Where File → Export goes: the plot and the table of the tab on screen, to a file the user chooses.

Plots: the Summary's on its tab, the live plots elsewhere (the plot last clicked, or all). Tables: the trials
on Live, the per-batch-size table on Summary, the run list on Runs. Suggested file names start with the run
shown, named as in the tables (its file name without the suffix).
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox

from engine.errors import UserError
from gui.export import export_table_csv
from gui.trial_table import run_label

TABLES = ("trials", "summary", "runs")


class ExportRouting:
    """Export actions of a MainWindow, routed by its current tab."""

    def __init__(self, window):
        self._window = window

    def plot_view(self):
        """The view whose plot the export items write: Summary on its tab, else the live plots."""
        window = self._window
        return window.summary if window.tabs.currentWidget() is window.summary else window.plots

    def table_name(self) -> str:
        """"trials", "summary" or "runs": the table of the current tab (trials for every other tab)."""
        window = self._window
        return {window.summary: "summary", window.runs_browser: "runs"}.get(window.tabs.currentWidget(), "trials")

    def export_plot(self, path: Path) -> None:
        view = self.plot_view()
        if view is self._window.summary:
            self._window.fresh_summary()
        view.export_current(Path(path))

    def export_table(self, path: Path, which: str = "") -> None:
        """A table as CSV: which = "trials", "summary" or "runs"; by default the current tab's."""
        window, which = self._window, which or self.table_name()
        if which == "summary":
            window.fresh_summary().export_table(Path(path))
        elif which == "runs":
            window.runs_browser.export_table(Path(path))
        else:
            headers, rows = window.trial_table.export_rows()
            export_table_csv(headers, rows, Path(path))

    def suggested_name(self, what: str, suffix: str) -> str:
        runs = self._window.shown_runs()
        prefix = f"{run_label(runs[0])}-" if len(runs) == 1 and what != "runs" else ""
        return f"{prefix}{what}.{suffix}"

    def export_plot_dialog(self, kind: str) -> None:
        label = "PNG image (*.png)" if kind == "png" else "SVG drawing (*.svg)"
        what = "summary" if self.plot_view() is self._window.summary else "plots"
        self._save(f"Export {what} as {kind.upper()}", self.suggested_name(what, kind), label, kind,
                   self.export_plot)

    def export_table_dialog(self, which: str = "") -> None:
        which = which or self.table_name()
        self._save(f"Export {which} table as CSV", self.suggested_name(which, "csv"), "CSV (*.csv)", "csv",
                   lambda path: self.export_table(path, which))

    def _save(self, title: str, name: str, file_filter: str, suffix: str, write) -> None:
        window = self._window
        path, _ = QFileDialog.getSaveFileName(window, title, str(window.workspace() / name), file_filter)
        if not path:
            return
        if not path.lower().endswith(f".{suffix}"):
            path += f".{suffix}"
        try:
            write(Path(path))
        except (OSError, UserError) as error:
            QMessageBox.warning(window, "Cannot export", str(error))
            return
        window.log(f"Exported {path}")
