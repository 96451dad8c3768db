"""The message area: what the app tells the user (info, warnings, errors), newest at the bottom, with the time.

Also the words for how a trial ended, so every place that reports a trial's outcome says it the same way.
"""
from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QListWidget, QListWidgetItem, QWidget

from engine import schema
from engine.events import TrialEnded
from gui import theme

MAX_MESSAGES = 2000
LEVELS = ("info", "warning", "error")

# How a finished trial that did not complete is reported.
_OUTCOME_LEVEL = {schema.CANCELLED: "info", schema.DIVERGED: "warning", schema.OUT_OF_MEMORY: "error",
                  schema.FAILED: "error"}
_OUTCOME_TEXT = {
    schema.CANCELLED: "stopped; everything it measured is saved",
    schema.DIVERGED: "diverged (the loss stopped being a finite number); try a smaller learning rate",
    schema.OUT_OF_MEMORY: "ran out of memory; the sweep goes on with the next trial",
    schema.FAILED: schema.STATUS_LABELS[schema.FAILED],
}


def trial_outcome(event: TrialEnded) -> tuple[str, str] | None:
    """(text, level) telling how a trial ended that did not complete; None for a completed trial."""
    if event.status == schema.COMPLETED:
        return None
    reason = _OUTCOME_TEXT.get(event.status, schema.STATUS_LABELS.get(event.status, event.status))
    detail = f": {event.error}" if event.error and event.status != schema.CANCELLED else ""
    spec = event.trial
    return (f"Trial batch size {spec.batch_size}, seed {spec.seed} {reason}{detail}",
            _OUTCOME_LEVEL.get(event.status, "warning"))


class MessageLog(QListWidget):
    """A list of timestamped messages with an icon per level; right-click to copy or clear. Keeps the
    newest MAX_MESSAGES."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("messages")
        self.setWordWrap(True)
        self.setUniformItemSizes(False)
        self.setMinimumHeight(36)      # two lines fit; the dock can be dragged taller
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        copy_action = QAction("Copy", self)
        copy_action.triggered.connect(self.copy_to_clipboard)
        clear_action = QAction("Clear", self)
        clear_action.triggered.connect(self.clear)
        self.addAction(copy_action)
        self.addAction(clear_action)
        # Scrolling lays out every wrapped line again: one scroll after a burst of messages, not one per message
        # (2,000 messages took 20 s with a scroll each).
        self._scroll = QTimer(self, singleShot=True, interval=0)
        self._scroll.timeout.connect(self.scrollToBottom)

    def add(self, text: str, level: str = "info") -> None:
        """Add a line (info, warning or error) and scroll to it."""
        icon = {"error": "error", "warning": "warning"}.get(level, "info")
        item = QListWidgetItem(theme.icon(icon), f"{time.strftime('%H:%M:%S')}  {text}")
        item.setData(Qt.ItemDataRole.UserRole, level)
        item.setToolTip(text)
        self.addItem(item)
        while self.count() > MAX_MESSAGES:
            self.takeItem(0)
        self._scroll.start()

    def texts(self, level: str | None = None) -> list[str]:
        """The messages (without their time), oldest first; only those of one level when given."""
        return [self.item(i).toolTip() for i in range(self.count())
                if level is None or self.item(i).data(Qt.ItemDataRole.UserRole) == level]

    def copy_to_clipboard(self) -> None:
        """The selected messages, or all when none is selected, with their times."""
        selected = self.selectedItems() or [self.item(i) for i in range(self.count())]
        QApplication.clipboard().setText("\n".join(item.text() for item in selected))
