"""The desktop application: QApplication set-up (names for QSettings, icon, theme) and the entry point."""
from __future__ import annotations

import gc
import signal
import sys

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from engine import APP_NAME, __version__

ORGANIZATION_NAME = "Batch Size Lab"
DESKTOP_FILE_NAME = "batch-size-lab"


def configure_application(app: QApplication) -> None:
    """Names (they decide where QSettings keeps its file), version, icon and the persisted theme."""
    from gui import theme

    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORGANIZATION_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(DESKTOP_FILE_NAME)
    # The same plain-text INI file on every platform, so a user (or a test) can find and reset it.
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    app.setWindowIcon(theme.app_icon())
    theme.apply_theme(app, str(QSettings().value("theme", theme.DEFAULT_THEME)))


def keep_settings_in(folder) -> None:
    """Keep QSettings in INI files under `folder` rather than the user's own: for tests, benchmarks and
    screenshots, which must neither read nor change a real user's settings."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, str(folder))


def settle_after_startup() -> None:
    """Move everything allocated at start-up (torch, pyqtgraph, the widgets) out of the garbage
    collector's sight. Otherwise each full collection walks that whole heap on whichever thread triggers
    it, a pause of ~150 ms measured while a sweep runs (benchmarks/gui_latency.py)."""
    gc.collect()
    gc.freeze()


def create_application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    configure_application(app)
    return app


def main(argv: list[str] | None = None, startup_check: bool = False) -> int:
    """Open the main window and run until it closes; returns the exit status.

    startup_check: once the window is shown, print the seconds since the process started and quit (the
    packaged app's smoke test and the start-up time measurement use it)."""
    app = create_application(argv)
    from gui.main_window import MainWindow   # after the application exists: widgets need it

    window = MainWindow()
    window.show()
    settle_after_startup()
    _close_on_interrupt(app, window)
    if startup_check:
        QTimer.singleShot(0, lambda: _report_startup(window))
    return app.exec()


def _seconds_since_process_start() -> float:
    import os
    import time

    try:
        # Linux: start time in clock ticks since boot, against the boot clock. Exact to a tick, where
        # psutil's create_time() adds the boot time rounded to whole seconds.
        with open("/proc/self/stat", encoding="ascii") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, AttributeError, ValueError, IndexError):
        import psutil
        return time.time() - psutil.Process().create_time()


def _report_startup(window) -> None:
    if sys.stdout is not None:  # a windowed Windows executable has no stdout
        seconds = _seconds_since_process_start()
        print(f"window shown after {seconds:.3f} s" if window.isVisible() else "window not shown", flush=True)
    window.quit_without_asking()


def _close_on_interrupt(app: QApplication, window) -> None:
    """Ctrl+C in the terminal closes the window as its Quit does, stopping a sweep without asking."""
    signal.signal(signal.SIGINT, lambda _signum, _frame: window.quit_without_asking())
    # Python runs signal handlers only when it gets control: wake it a few times a second.
    wake = QTimer(app)
    wake.timeout.connect(lambda: None)
    wake.start(250)


if __name__ == "__main__":
    sys.exit(main())
