"""One long-lived child process that reads run files for this process.

A damaged HDF5 file can crash the HDF5 library (one flipped byte gave SIGSEGV), and no check before the read
can rule that out. So files are read in a child: if it crashes or hangs, the file is reported as damaged,
the child is replaced, and the app or the command line carries on. One child serves every read (it starts
once, ~0.3 s, and then answers each read for the cost of the read itself plus sending the arrays back);
docs/run-files.md has the figures.
"""
from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import RunFileError, UserError

# A read is allowed this long, plus time in proportion to the file's size, before it counts as a hang (a
# damaged file can send HDF5 into an endless loop). Reading a header takes milliseconds, a 1 GB run ~10 s.
BASE_TIMEOUT_S = 10.0
SECONDS_PER_MB = 0.1
# Starting the child (a Python with h5py and numpy) takes ~0.3 s, much more on a loaded machine.
START_TIMEOUT_S = 120.0


def _serve(connection) -> None:
    """The child's loop: call each requested function and send back its result or its user error."""
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))   # a crash is expected here: no core file
    except (ImportError, ValueError, OSError):
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is for the parent, which then ends this child
    import engine.runfile_reader  # noqa: F401 — imported before "ready", so that read timeouts leave it out
    connection.send("ready")
    while True:
        try:
            function, args = connection.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", function(*args))
        except UserError as error:
            reply = ("user_error", str(error))
        except Exception:  # noqa: BLE001 — a bug: the parent raises it with this traceback
            import traceback
            reply = ("bug", traceback.format_exc())
        connection.send(reply)


class ReaderProcess:
    """Calls functions in one child process; a crash or a hang there becomes a RunFileError here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process = None
        self._connection = None

    def call(self, function: Callable[..., Any], path: Path, timeout_s: float | None = None) -> Any:
        """function(path) in the child. function must be importable by name (a module-level function)."""
        path = Path(path)
        if timeout_s is None:
            try:
                size_mb = path.stat().st_size / 1e6
            except OSError:
                size_mb = 0.0
            timeout_s = BASE_TIMEOUT_S + SECONDS_PER_MB * size_mb
        with self._lock:
            connection = self._started()
            try:
                connection.send((function, (path,)))
                finished = connection.poll(timeout_s)
                if not finished:
                    self._stop()
                    raise RunFileError(f"{path}: damaged run file (reading it did not finish in {timeout_s:.0f} s)")
                kind, value = connection.recv()
            except (EOFError, OSError):
                how = self._crash_description()
                raise RunFileError(f"{path}: damaged run file (reading it crashed the HDF5 library: {how})") from None
        if kind == "ok":
            return value
        if kind == "user_error":
            raise RunFileError(value)
        raise RuntimeError(f"reading {path} failed in the reader process:\n{value}")

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _started(self):
        if self._process is not None and self._process.is_alive():
            return self._connection
        self._stop()
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_serve, args=(child_end,), name="run-file-reader", daemon=True)
        process.start()
        child_end.close()
        self._process, self._connection = process, parent_end
        try:
            if parent_end.poll(START_TIMEOUT_S) and parent_end.recv() == "ready":
                return parent_end
        except (EOFError, OSError):
            pass
        how = self._crash_description()
        raise RuntimeError(f"the run file reader process did not start ({how})")

    def _crash_description(self) -> str:
        process = self._process
        process.join(5)
        code = process.exitcode
        self._stop()
        if code is not None and code < 0:
            try:
                return signal.Signals(-code).name
            except ValueError:
                return f"signal {-code}"
        return f"the reader process ended with exit status {code}"

    def _stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(5)
        self._process = self._connection = None


_reader = ReaderProcess()


def call(function: Callable[..., Any], path: Path, timeout_s: float | None = None) -> Any:
    """function(path) in this process's reader child (started on first use, replaced after a crash)."""
    return _reader.call(function, path, timeout_s)
