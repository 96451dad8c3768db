"""Batch Size Lab. No arguments: the desktop app. With a command (run, report): headless, see --help.

--startup-check opens the window, prints how long that took after the process started, and quits.
Ctrl-C at any moment, even while torch is still being imported, ends with one line and exit 130."""
import sys

# engine/cli.py's EXIT_INTERRUPTED, written out because importing engine is what Ctrl-C may interrupt.
EXIT_INTERRUPTED = 130


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
    try:
        import multiprocessing
        # A frozen (packaged) app re-executes itself for worker processes; this hands them over.
        multiprocessing.freeze_support()
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        # Ctrl-C before the command line installs its own handler (imports take seconds), or a second one
        # during training: the run file, if any, has been closed by then.
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
