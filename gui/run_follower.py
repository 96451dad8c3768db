"""Following run files that another process is writing (a sweep started from the command line): each is read
again when it changes on disk, and the new RunData is handed on, until its writer closes it.

The check is a stat() per followed file on a timer (no HDF5 read unless the size or modification time moved);
the writer flushes whole epochs, so a change means a new epoch, a new trial or the end. A read that catches the
writer mid-flush is retried by engine.runfile; if it still fails, the next change tries again.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from engine.errors import RunFileError
from engine.runfile import RunData, read_run
from engine.runfile_reader import is_being_written

CHECK_INTERVAL_MS = 1000


class RunFollower(QObject):
    """Re-reads the followed run files when they change; `updated` gets each new RunData, `finished` its path
    once the writer has closed the file (or died: a `running` file no process holds any more)."""

    updated = Signal(object)     # RunData
    finished = Signal(object)    # Path

    def __init__(self, parent: QObject | None = None, interval_ms: int = CHECK_INTERVAL_MS,
                 read: Callable[[Path], RunData] = read_run):
        super().__init__(parent)
        self._read = read
        self._followed: dict[Path, tuple[int, int]] = {}
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)

    def follow(self, runs: list[RunData]) -> None:
        """Follow those of these runs that a process is writing now; stop following any others."""
        self._followed = {run.path: _signature(run.path) for run in runs if run.header.being_written}
        if self._followed:
            self._timer.start()
        else:
            self._timer.stop()

    def followed(self) -> list[Path]:
        return list(self._followed)

    def stop(self) -> None:
        self._followed.clear()
        self._timer.stop()

    def check(self) -> None:
        """Read again each followed file whose size or modification time changed, or whose writer let go of it
        (it closed the file, or died without closing it)."""
        for path, seen in list(self._followed.items()):
            now = _signature(path)
            if now == seen and is_being_written(path):
                continue
            try:
                run = self._read(path)
            except RunFileError:
                continue      # caught mid-write even after retries, or gone: try at the next change
            self._followed[path] = now
            self.updated.emit(run)
            if not run.header.being_written:
                del self._followed[path]
                self.finished.emit(path)
        if not self._followed:
            self._timer.stop()


def _signature(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)
