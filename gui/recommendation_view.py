"""The Summary's headline: each shown run's verdict (engine.science.recommendation.judge) in words, the same
sentences `report` prints. Collapsed it shows the headline, the first reason and what to try next; "Why"
opens every reason."""
from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QScrollArea, QToolButton, QWidget

from engine import schema
from engine.runfile import RunData
from engine.science.recommendation import NO_RESULTS, Verdict

# Opened, the reasons take at most this many lines of text and scroll beyond, so the cards keep their room.
MAX_EXPANDED_LINES = 7


class RecommendationView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("summaryRecommendation")
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 2, 8, 4)
        row.setSpacing(8)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self._scroll = QScrollArea()
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setWidgetResizable(True)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._scroll.setWidget(self.label)
        row.addWidget(self._scroll, 1)
        self.toggle = QToolButton()
        self.toggle.setCheckable(True)
        self.toggle.setText("Why ▸")
        self.toggle.setToolTip("Show every reason: how each batch size was judged")
        self.toggle.toggled.connect(self._toggled)
        row.addWidget(self.toggle, 0, Qt.AlignmentFlag.AlignTop)
        self._shown: list[tuple[RunData, Verdict]] = []
        self.hide()

    def set_verdicts(self, verdicts: list[tuple[RunData, Verdict]]) -> None:
        """One verdict per run; runs without a finished epoch are left out."""
        self._shown = [(run, verdict) for run, verdict in verdicts if verdict.outcome != NO_RESULTS]
        self._render()

    def verdicts(self) -> list[Verdict]:
        return [verdict for _, verdict in self._shown]

    def text(self) -> str:
        """Everything the view says, expanded, as plain text (empty when it shows nothing)."""
        lines = []
        for run, verdict in self._shown:
            lines.append(self._headline(run, verdict) + ".")
            lines += verdict.reasons
            lines += [f"Next: {suggestion}" for suggestion in verdict.suggestions]
        return "\n".join(lines)

    def is_expanded(self) -> bool:
        return self.toggle.isChecked()

    def set_expanded(self, expanded: bool) -> None:
        self.toggle.setChecked(expanded)

    def _headline(self, run: RunData, verdict: Verdict) -> str:
        name = f"{run.path.stem}: " if len(self._shown) > 1 else ""
        so_far = " (so far)" if run.header.status == schema.RUNNING else ""
        return f"{name}{verdict.headline}{so_far}"

    def _toggled(self, expanded: bool) -> None:
        self.toggle.setText("Less ▾" if expanded else "Why ▸")
        self._render()

    def _render(self) -> None:
        expanded = self.toggle.isChecked()
        blocks = []
        for run, verdict in self._shown:
            reasons = verdict.reasons if expanded else verdict.reasons[:1]
            text = f"<b>{html.escape(self._headline(run, verdict))}.</b> "
            if expanded:
                text += "".join(f"<br>• {html.escape(reason)}" for reason in reasons)
            else:
                text += html.escape(" ".join(reasons))
            text += "".join(f"<br><i>Next:</i> {html.escape(suggestion)}" for suggestion in verdict.suggestions)
            blocks.append(text)
        self.label.setText("<br>".join(blocks))
        self.toggle.setVisible(any(len(verdict.reasons) > 1 for _, verdict in self._shown))
        self.setVisible(bool(self._shown))
        self._fit_height()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_height()

    def _fit_height(self) -> None:
        """As tall as the text at this width, up to MAX_EXPANDED_LINES lines; the rest scrolls."""
        # From this view's own width: the scroll area's is not laid out yet when this view is resized.
        margins = self.layout().contentsMargins()
        width = self.width() - margins.left() - margins.right()
        if not self.toggle.isHidden():
            width -= self.toggle.sizeHint().width() + self.layout().spacing()
        width = max(width - self._scroll.verticalScrollBar().sizeHint().width(), 200)
        needed = self.label.heightForWidth(width)
        cap = self.label.fontMetrics().lineSpacing() * MAX_EXPANDED_LINES
        height = min(needed, cap) if needed > 0 else self.label.sizeHint().height()
        if self._scroll.height() != height:
            self._scroll.setFixedHeight(height)
        policy = Qt.ScrollBarPolicy.ScrollBarAsNeeded if needed > cap else Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        self._scroll.setVerticalScrollBarPolicy(policy)
