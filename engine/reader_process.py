"""One long-lived child process that reads run files for this process.

A damaged HDF5 file can crash the HDF5 library (one flipped byte gave SIGSEGV) or send it into an endless loop,
and no check before the read can rule that out. So files are read in a child: if it crashes or hangs, the file
is reported as damaged, the child is replaced, and the app or the command line carries on. One child serves
every read (it starts once, ~0.3-1 s, and then answers each read for the cost of the read itself plus sending
the arrays back); docs/run-files.md has the figures.

The child is `python -m engine.reader_process` talking over its stdin and stdout, so that it never imports
the caller's own main script (multiprocessing's spawn would, and a user's script without a
`if __name__ == "__main__"` guard would then start over in it). A packaged app has no Python to start that
way; there, and on Windows, the child is a multiprocessing spawn child (main.py calls freeze_support).
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

from engine.errors import RunFileError, UserError

# A read is allowed this much of the child's CPU time, plus time in proportion to the file's size, before it
# counts as a hang (a damaged file can send HDF5 into an endless loop, which burns CPU). Reading a header takes
# milliseconds, a 1 GB run ~10 s. CPU time, not wall time: on a busy machine a sound read can wait seconds for a
# core, and was then called a damaged file. A read that waits without working (a stalled disk) is a hang after
# HANG_WALL_S, or ten times its CPU allowance if longer.
BASE_TIMEOUT_S = 10.0
SECONDS_PER_MB = 0.1
HANG_WALL_S = 120.0
_POLL_S = 0.25
# Starting the child (a Python with h5py and numpy) takes ~0.3 s, much more on a loaded machine.
START_TIMEOUT_S = 120.0


def _serve(receive: Connection, send: Connection) -> None:
    """The child's loop: call each requested function and send back its result or its user error."""
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))   # a crash is expected here: no core file
    except (ImportError, ValueError, OSError):
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is for the parent, which then ends this child
    import engine.runfile_reader  # noqa: F401 — imported before "ready", so that read timeouts leave it out
    send.send("ready")
    while True:
        try:
            function, args = receive.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", function(*args))
        except UserError as error:
            reply = ("user_error", str(error))
        except Exception:  # noqa: BLE001 — a bug: the parent raises it with this traceback
            import traceback
            reply = ("bug", traceback.format_exc())
        send.send(reply)


def _serve_spawned(connection: Connection) -> None:
    _serve(connection, connection)


class _Child:
    """The child and its two ends, however it was started."""

    def __init__(self, spawn: bool) -> None:
        if not spawn:
            root = Path(__file__).resolve().parent.parent
            path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
            self._popen = subprocess.Popen([sys.executable, "-m", "engine.reader_process"], stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": path})
            self.send = Connection(os.dup(self._popen.stdin.fileno()), readable=False)
            self.receive = Connection(os.dup(self._popen.stdout.fileno()), writable=False)
            self._popen.stdin.close()
            self._popen.stdout.close()
            self._process = None
        else:
            import multiprocessing
            context = multiprocessing.get_context("spawn")
            parent_end, child_end = context.Pipe()
            self._process = context.Process(target=_serve_spawned, args=(child_end,), name="run-file-reader",
                                            daemon=True)
            self._process.start()
            child_end.close()
            self.send = self.receive = parent_end
            self._popen = None

    def alive(self) -> bool:
        return self._popen.poll() is None if self._popen else self._process.is_alive()

    def cpu_seconds(self) -> float | None:
        """CPU time the child has used (user and system); None when it cannot be read."""
        try:
            times = psutil.Process((self._popen or self._process).pid).cpu_times()
        except (psutil.Error, OSError, ValueError):
            return None
        return times.user + times.system

    def exit_status(self, wait_s: float) -> int | None:
        if self._popen:
            try:
                return self._popen.wait(wait_s)
            except subprocess.TimeoutExpired:
                return None
        self._process.join(wait_s)
        return self._process.exitcode

    def stop(self) -> None:
        for end in {self.send, self.receive}:
            end.close()
        if self.alive():
            (self._popen or self._process).kill()
        self.exit_status(5)


class ReaderProcess:
    """Calls functions in one child process; a crash or a hang there becomes a RunFileError here."""

    def __init__(self, spawn: bool | None = None) -> None:
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._spawn = (os.name != "posix" or getattr(sys, "frozen", False)) if spawn is None else spawn

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
            child = self._started()
            try:
                child.send.send((function, (path,)))
                if not self._answered(child, timeout_s):
                    self._stop()
                    raise RunFileError(f"{path}: damaged run file (reading it did not finish in {timeout_s:.0f} s "
                                       "of work)")
                kind, value = child.receive.recv()
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

    @staticmethod
    def _answered(child: _Child, timeout_s: float) -> bool:
        """Wait for the child's answer while it has used less than timeout_s of CPU (wall time where its CPU time
        cannot be read) and less than the wall-time ceiling; False when it has not answered by then."""
        started, cpu_start = time.monotonic(), child.cpu_seconds()
        wall_limit = max(HANG_WALL_S, 10 * timeout_s)
        while not child.receive.poll(_POLL_S):
            waited = time.monotonic() - started
            cpu_now = child.cpu_seconds()
            worked = cpu_now - cpu_start if cpu_start is not None and cpu_now is not None else waited
            if worked > timeout_s or waited > wall_limit:
                return False
        return True

    def _started(self) -> _Child:
        if self._child is not None and self._child.alive():
            return self._child
        self._stop()
        self._child = _Child(self._spawn)
        try:
            if self._child.receive.poll(START_TIMEOUT_S) and self._child.receive.recv() == "ready":
                return self._child
        except (EOFError, OSError):
            pass
        how = self._crash_description()
        raise RuntimeError(f"the run file reader process did not start ({how})")

    def _crash_description(self) -> str:
        code = self._child.exit_status(5)
        self._stop()
        if code is not None and code < 0:
            try:
                return signal.Signals(-code).name
            except ValueError:
                return f"signal {-code}"
        return f"the reader process ended with exit status {code}"

    def _stop(self) -> None:
        if self._child is not None:
            self._child.stop()
        self._child = None


_reader = ReaderProcess()
atexit.register(_reader.close)


def call(function: Callable[..., Any], path: Path, timeout_s: float | None = None) -> Any:
    """function(path) in this process's reader child (started on first use, replaced after a crash)."""
    return _reader.call(function, path, timeout_s)


if __name__ == "__main__":
    # The child's own stdout carries the replies; anything else printed (by HDF5, say) goes to stderr.
    replies = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _serve(Connection(0, writable=False), Connection(replies, readable=False))
