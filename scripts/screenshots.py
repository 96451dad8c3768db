"""Screenshots for the README: the main window during a real sweep, and every main tab after it.

    QT_QPA_PLATFORM=offscreen python scripts/screenshots.py [--out docs]

Writes docs/screenshot-sweep.png (mid-sweep, Live tab) and docs/screenshot-summary.png (Summary tab once the
sweep has finished, setup panel and messages closed to give the cards the room; 1400×1300), in the light
theme, the first at 1400×900; then docs/screens/<tab>-<width>x<height>-<theme>.png: each main tab, setup panel open as a new
user finds it, at 1280×720 and 1920×1080, in the light and the dark theme. Those are stored with a palette of
256 colours (a quarter of the size; flat UI colours survive it), so the whole set stays near 2 MB.

The sweep is real: MLP on MNIST-1D at five batch sizes, two seeds, 15 epochs (well under a minute on a laptop
CPU). Settings and run files go to a temporary folder; the user's are never touched.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

WINDOW_SIZE = (1400, 900)
SUMMARY_SIZE = (1400, 1300)    # the three rows of cards whole above the table
SCREEN_SIZES = ((1280, 720), (1920, 1080))
THEMES = ("light", "dark")
SETTLE_MS = 400        # after a resize, theme or tab switch: the summary and plots redraw on short timers
EXPERIMENT = {
    "name": "mlp-on-mnist1d",
    "description": "README screenshot: where does a larger batch stop paying off?",
    "data": {"dataset": "mnist1d", "num_samples": 4000},
    "model": {"kind": "mlp", "width": 128, "depth": 2},
    "train": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "lr_scaling": "sqrt", "base_batch_size": 32,
              "epochs": 15, "seeds": [0, 1]},
    # Often enough that the largest batch (one step an epoch) has a few measurements for the Live tab's B_simple.
    "science": {"noise_scale": True, "noise_every": 5},
    "sweep": {"batch_sizes": [8, 32, 128, 512, 2048], "device": "cpu"},
}
# The mid-sweep picture is taken once this many trials have ended and the next one is this far along.
TRIALS_BEFORE_GRAB = 6
EPOCHS_INTO_TRIAL = 9.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the two PNGs (default docs/)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    scratch = Path(tempfile.mkdtemp(prefix="bsl-screenshots-"))
    os.environ["BATCH_SIZE_LAB_WORKSPACE"] = str(scratch / "workspace")
    os.environ.setdefault("BATCH_SIZE_LAB_CACHE", str(scratch / "cache"))
    from PIL import Image
    from PySide6.QtCore import QTimer

    from engine import schema
    from gui.app import create_application, keep_settings_in, settle_after_startup
    keep_settings_in(scratch / "settings")
    app = create_application([sys.argv[0]])
    from gui import theme
    from gui.main_window import MainWindow

    theme.apply_theme(app, "light")
    window = MainWindow()
    window.resize(*WINDOW_SIZE)
    window.show()
    settle_after_startup()
    window.setup.set_config(EXPERIMENT)
    if window.setup.problems():
        print("config problems:", window.setup.problems(), file=sys.stderr)
        return 2

    sweep_path, summary_path = args.out / "screenshot-sweep.png", args.out / "screenshot-summary.png"
    state = {"ended": 0, "sweep_grabbed": False, "failed": ""}

    def grab(path: Path, palette: bool = False) -> None:
        window.plots.redraw_now()
        app.processEvents()
        image = window.grab()
        if not image.save(str(path)):
            raise SystemExit(f"could not write {path}")
        if palette:
            # A palette chosen from the picture's own colours, without dithering: Qt's fixed palette turned the
            # dark theme's greys navy, and dithered noise compresses badly (290 KB against 60 KB).
            with Image.open(path) as full:
                reduced = full.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
            reduced.save(path, optimize=True)
        print(path)

    def every_tab_shots() -> list:
        """(what to do, then grab to this path or None) for each tab, size and theme, in order."""
        steps = [(lambda: (window.setup_dock.show(), window.messages_dock.show()), None)]
        for theme_name in THEMES:
            steps.append((lambda name=theme_name: window.set_theme(name), None))
            for width, height in SCREEN_SIZES:
                steps.append((lambda size=(width, height): window.resize(*size), None))
                for index in range(window.tabs.count()):
                    tab = window.tabs.tabText(index).replace("&", "").lower().replace(" ", "-")
                    path = args.out / "screens" / f"{tab}-{width}x{height}-{theme_name}.png"
                    steps.append((lambda i=index: window.tabs.setCurrentIndex(i), path))
        steps.append((lambda: window.set_theme("light"), None))
        return steps

    def take(steps: list) -> None:
        """One step now, its grab once the window has settled, then the next: the event loop runs between."""
        if not steps:
            window.close()
            return
        action, path = steps.pop(0)
        action()

        def then() -> None:
            if path is not None:
                grab(path, palette=True)
            take(steps)
        QTimer.singleShot(SETTLE_MS, then)

    def watch_progress() -> None:
        """Poll the window (not the engine) for the moment to take the mid-sweep picture."""
        if state["sweep_grabbed"] or not window.is_running():
            return
        rows = window.trial_table.table_model.rows()
        running = [row for row in rows if row.status == schema.RUNNING and row.epoch_progress]
        if state["ended"] >= TRIALS_BEFORE_GRAB and running and running[0].epoch_progress >= EPOCHS_INTO_TRIAL:
            state["sweep_grabbed"] = True
            grab(sweep_path)

    def trial_ended(_event) -> None:
        state["ended"] += 1

    def finished(path: str) -> None:
        if not path:
            state["failed"] = "; ".join(window.message_texts("error")) or "the sweep did not run"
            window.close()
            return
        if not state["sweep_grabbed"]:
            grab(sweep_path)          # a very fast machine: the sweep ended before the planned moment
        # The summary's cards want the width: the setup panel is closed for this picture, as a user can
        # from the View menu (the saved layout is the scratch folder's, not the user's).
        window.setup_dock.hide()
        window.messages_dock.hide()
        window.resize(*SUMMARY_SIZE)
        window.tabs.setCurrentWidget(window.summary)
        (args.out / "screens").mkdir(exist_ok=True)
        QTimer.singleShot(SETTLE_MS, lambda: (grab(summary_path), take(every_tab_shots())))

    poll = QTimer()
    poll.setInterval(100)
    poll.timeout.connect(watch_progress)
    poll.start()
    window.trial_ended.connect(trial_ended)
    window.sweep_finished.connect(finished)
    QTimer.singleShot(0, window.start_sweep)
    app.exec()
    if state["failed"]:
        print(f"no screenshots: {state['failed']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
