"""The sweep's progress in the status bar: what is happening, the running trial, the whole sweep and the time left.

It only draws an `engine.progress.SweepProgress`, which holds every number and the estimate (and is tested
without Qt); this file decides the words and the bars.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from engine import schema
from engine.progress import ENDED, PREPARING, TRAINING, SweepProgress
from gui.trial_table import format_duration

PROGRESS_STEPS = 1000
# Within one trial the bars are redrawn at most this often: QProgressBar repaints synchronously on every
# visible change, which the GUI thread pays for at each batch of steps otherwise.
MIN_REDRAW_S = 0.25


class SweepStatus:
    """Two labelled bars added to a status bar: the running trial, and the sweep with its time left."""

    def __init__(self, bar: QStatusBar, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._drawn: tuple = ()
        self._drawn_at = -float("inf")
        self.trial_label = QLabel("")
        self.trial_label.setObjectName("trialProgressLabel")
        self.trial_progress = QProgressBar()
        self.trial_progress.setRange(0, PROGRESS_STEPS)
        self.trial_progress.setFixedWidth(170)
        self.trial_progress.setToolTip("Progress of the trial being trained")
        self.sweep_label = QLabel("Sweep")
        self.sweep_progress = QProgressBar()
        self.sweep_progress.setRange(0, PROGRESS_STEPS)
        self.sweep_progress.setFixedWidth(250)
        self.sweep_progress.setToolTip(
            "Share of the sweep's time spent so far, and the time left. The estimate comes from the speed "
            "measured at each batch size (small batches take longer per example than large ones) and the "
            "evaluation time per epoch, and improves as trials finish.")
        for widget in (self.trial_label, self.trial_progress, self.sweep_label, self.sweep_progress):
            bar.addPermanentWidget(widget)
        self._running = self._preparing = False
        self.reset()

    def reset(self) -> None:
        self._drawn = ()
        for progress_bar in (self.trial_progress, self.sweep_progress):
            progress_bar.setRange(0, PROGRESS_STEPS)
            progress_bar.setValue(0)
            progress_bar.setFormat("")
        self.trial_label.setText("")
        self.sweep_label.setText("Sweep")

    def set_visible(self, running: bool, sweep_shown: bool) -> None:
        """The trial's bar only while a trial trains; the sweep's also after it ended, with how it ended."""
        self._running = running
        self.sweep_label.setVisible(running or sweep_shown)
        self.sweep_progress.setVisible(running or sweep_shown)
        self.trial_progress.setVisible(running and not self._preparing)
        self.trial_label.setVisible(running)

    def show(self, progress: SweepProgress) -> None:
        """Draw the progress as it stands now (within a trial, at most every MIN_REDRAW_S)."""
        state = (progress.phase, progress.current, progress.trials_ended())
        now = self._clock()
        if state == self._drawn and now - self._drawn_at < MIN_REDRAW_S:
            return
        self._drawn, self._drawn_at = state, now
        if progress.phase == PREPARING or (progress.phase == TRAINING and progress.current is None
                                           and not progress.trials_ended()):
            self._busy(progress.activity or "Preparing…")
            return
        if progress.phase == ENDED:
            self._ended(progress)
            return
        if progress.phase != TRAINING:
            return
        self._set_preparing(False)
        self.sweep_label.setText("Sweep")
        spec = progress.current
        if spec is not None:
            self.trial_label.setText(f"Trial {spec.index + 1}/{progress.trial_count}: batch size "
                                     f"{spec.batch_size}, seed {spec.seed}")
            self.trial_progress.setRange(0, PROGRESS_STEPS)
            self.trial_progress.setValue(round(PROGRESS_STEPS * progress.trial_fraction()))
            if progress.trial_epochs:
                self.trial_progress.setFormat(f"epoch {progress.trial_epoch_fraction:.1f} / "
                                              f"{progress.trial_epochs:g}")
        fraction, eta = progress.sweep_fraction(), progress.eta_s()
        self.sweep_progress.setRange(0, PROGRESS_STEPS)
        if fraction is None or eta is None:
            share = progress.trials_ended() / progress.trial_count if progress.trial_count else 0.0
            self.sweep_progress.setValue(round(PROGRESS_STEPS * share))
            self.sweep_progress.setFormat(f"{progress.trials_ended()}/{progress.trial_count} trials · "
                                          "estimating time left…")
            return
        self.sweep_progress.setValue(round(PROGRESS_STEPS * fraction))
        self.sweep_progress.setFormat(f"{fraction:.0%} · {format_duration(eta)} left")

    def finished(self, progress: SweepProgress) -> None:
        """The worker is done: keep the sweep's outcome, clear the trial's bar."""
        self._ended(progress)
        self.trial_label.setText("")
        self.trial_progress.setRange(0, PROGRESS_STEPS)
        self.trial_progress.setValue(0)
        self.trial_progress.setFormat("")

    def _set_preparing(self, preparing: bool) -> None:
        self._preparing = preparing
        self.trial_progress.setVisible(self._running and not preparing)

    def _busy(self, activity: str) -> None:
        self._set_preparing(True)
        self.trial_label.setText(activity)
        self.sweep_label.setText("Preparing")
        # Nothing measured yet: a moving bar rather than a 0% that looks stuck.
        self.sweep_progress.setRange(0, 0)
        self.sweep_progress.setFormat(activity)

    def _ended(self, progress: SweepProgress) -> None:
        self._set_preparing(False)
        self.sweep_label.setText("Sweep")
        self.sweep_progress.setRange(0, PROGRESS_STEPS)
        took = format_duration(progress.elapsed_s())
        if progress.status == schema.COMPLETED:
            self.sweep_progress.setValue(PROGRESS_STEPS)
            self.sweep_progress.setFormat(f"done in {took}")
        else:
            self.sweep_progress.setFormat(f"{schema.STATUS_LABELS.get(progress.status, progress.status or 'ended')}"
                                          f" after {took}")
