"""Find max batch: the app's side of engine.hardware.max_batch. The search runs on a thread of its own, each try
is listed as it ends, Stop ends it after the try under way, and the answer can fill the batch sizes."""
from __future__ import annotations

import threading
from pathlib import Path

import torch
from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QListWidget, QPushButton, QVBoxLayout, QWidget

from engine.config import ExperimentConfig
from engine.errors import UserError
from engine.hardware.max_batch import MaxBatchResult, find_max_batch, write_max_batch_file
from engine.sweep import environment
from gui.worker import gui_thread_collection, report_unexpected

# The run files of the searches go in this folder of the workspace, apart from the sweeps the Runs tab lists.
RUNS_SUBFOLDER = "max-batch"


def offered_batch_sizes(recommended: int) -> list[int]:
    """The batch sizes offered for a sweep up to the answer: the powers of two below it, and the answer."""
    sizes = [2**power for power in range(recommended.bit_length()) if 2**power < recommended]
    return sizes[-6:] + [recommended]


class _SearchWorker(QObject):
    """Runs one search on the thread it was moved to; talks back only through signals."""

    probed = Signal(str)
    done = Signal(object, str)      # the MaxBatchResult and the run file's path ('' when none was written)
    failed = Signal(str)
    _start = Signal(object, str)

    def __init__(self) -> None:
        super().__init__()
        self.stop = threading.Event()
        self._start.connect(self._run)

    @Slot(object, str)
    def _run(self, config: ExperimentConfig, out_dir: str) -> None:
        try:
            result = find_max_batch(config, stop=self.stop, on_probe=lambda probe: self.probed.emit(probe.describe()))
            path = write_max_batch_file(result, config, out_dir, environment(torch.device(result.device)))
        except UserError as error:
            self.failed.emit(str(error))
        except Exception as error:  # noqa: BLE001 — a bug must not kill the thread or freeze the window
            self.failed.emit(report_unexpected(error))
        else:
            self.done.emit(result, str(path))


class MaxBatchDialog(QDialog):
    """Searches the largest batch size of `config` that fits as soon as it opens. `batch_sizes_chosen(list)` when
    the user takes the offered batch sizes."""

    batch_sizes_chosen = Signal(list)

    def __init__(self, config: ExperimentConfig, out_dir: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Find max batch")
        self.resize(560, 380)
        self.result: MaxBatchResult | None = None
        self.offered: list[int] = []
        layout = QVBoxLayout(self)
        intro = QLabel(f"The largest batch size of “{config.name}” that fits in memory: doubling, then a binary "
                       "search, with a few real training steps and an evaluation batch per try.")
        intro.setWordWrap(True)
        self.tries = QListWidget()
        self.answer = QLabel("Searching…")
        self.answer.setWordWrap(True)
        buttons = QDialogButtonBox()
        self.stop_button = buttons.addButton("Stop", QDialogButtonBox.ButtonRole.ActionRole)
        self.stop_button.setToolTip("End the search after the try under way; the answer so far is kept.")
        self.use_button: QPushButton = buttons.addButton("Use these batch sizes", QDialogButtonBox.ButtonRole.AcceptRole)
        self.use_button.setEnabled(False)
        self.close_button = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.close_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.use_button.clicked.connect(self._use)
        self.close_button.clicked.connect(self.reject)
        for widget in (intro, self.tries, self.answer):
            layout.addWidget(widget)
        layout.addWidget(buttons)

        self._thread = QThread(self)
        self._thread.setObjectName("max-batch-search")
        self._worker = _SearchWorker()
        self._worker.moveToThread(self._thread)
        self._worker.probed.connect(self.tries.addItem)
        self._worker.done.connect(self._done)
        self._worker.failed.connect(self._failed)
        gui_thread_collection.hold()
        self._holding = True
        self._thread.start()
        out_dir.mkdir(parents=True, exist_ok=True)
        self._worker._start.emit(config, str(out_dir))

    def stop(self) -> None:
        self._worker.stop.set()
        self.stop_button.setEnabled(False)
        self.answer.setText("Stopping after the try under way…")

    def is_searching(self) -> bool:
        return not self.close_button.isEnabled()

    def _done(self, result: MaxBatchResult, path: str) -> None:
        self.result = result
        text = result.outcome[0].upper() + result.outcome[1:] + "."
        if result.recommended:
            self.offered = offered_batch_sizes(result.recommended)
            self.use_button.setText(f"Use batch sizes {', '.join(map(str, self.offered))}")
            self.use_button.setEnabled(True)
        self.answer.setText(f"{text}\nThe tries are saved in {path}.")
        self._finish()

    def _failed(self, message: str) -> None:
        self.answer.setText(message)
        self._finish()

    def _finish(self) -> None:
        self.stop_button.setEnabled(False)
        self.close_button.setEnabled(True)
        self._end_thread()

    def _end_thread(self) -> None:
        self._thread.quit()
        self._thread.wait()
        if self._holding:
            self._holding = False
            gui_thread_collection.release()

    def _use(self) -> None:
        self.batch_sizes_chosen.emit(list(self.offered))
        self.accept()

    def reject(self) -> None:
        """Closing while searching stops the search first: the thread must not outlive the window."""
        if self.is_searching():
            self.stop()
            self._end_thread()
        super().reject()
