"""Batch Size Lab. No arguments: the desktop app. With a command (run, report): headless, see --help.

--startup-check opens the window, prints how long that took after the process started, and quits."""
import multiprocessing
import sys


def main(argv: list[str]) -> int:
    if argv == ["--startup-check"]:
        from gui.app import main as gui_main
        return gui_main(startup_check=True)
    if argv:
        from engine.cli import main as cli_main
        return cli_main(argv)
    from gui.app import main as gui_main
    return gui_main()


if __name__ == "__main__":
    # A frozen (packaged) app re-executes itself for worker processes; this hands them over.
    multiprocessing.freeze_support()
    sys.exit(main(sys.argv[1:]))
