"""The live B_simple plot's parts beside the plot machinery of gui/plots.py: whether a run measures the gradient
noise scale at all (the plot is shown only then), and the caption under the plot, which says how to read it and
why a trial has no curve (batch norm, a batch too small to split)."""
from __future__ import annotations

import html
import tomllib

import pyqtgraph as pg
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsTextItem, QSizePolicy

from engine.runfile import RunData
from gui.plot_specs import NOISE_CAPTION


def measures_noise(run: RunData) -> bool:
    """Whether the run asked for the noise scale (`[science] noise_scale`) or holds measurements of it."""
    if any(len(trial.noise["step"]) or trial.noise_scale_unavailable for trial in run.trials):
        return True
    try:
        science = run.config.get("science", {})
        return isinstance(science, dict) and science.get("noise_scale") is True
    except (tomllib.TOMLDecodeError, TypeError, ValueError):
        return False      # a config the reader could not parse measured nothing we could show


def unmeasured(runs: list[RunData]) -> dict[str, list[int]]:
    """Why trials have no noise scale, each reason with the batch sizes it applies to."""
    reasons: dict[str, set[int]] = {}
    for run in runs:
        for trial in run.trials:
            if trial.noise_scale_unavailable:
                reasons.setdefault(trial.noise_scale_unavailable, set()).add(trial.batch_size)
    return {reason: sorted(sizes) for reason, sizes in reasons.items()}


def caption_html(runs: list[RunData]) -> str:
    """How to read the plot, then each reason some batch sizes are missing from it."""
    parts = [html.escape(NOISE_CAPTION)]
    for reason, sizes in unmeasured(runs).items():
        plural = "s" if len(sizes) > 1 else ""
        names = ", ".join(str(size) for size in sizes)
        parts.append(f"<b>Not measured at batch size{plural} {names}</b>: {html.escape(reason)}.")
    return "<br>".join(parts)


class WrappedCaption(pg.GraphicsWidget):
    """Rich text under a plot, wrapped to the plot's width, as tall as its lines (a pyqtgraph LabelItem does not
    wrap)."""

    def __init__(self) -> None:
        super().__init__()
        self._text = QGraphicsTextItem(self)
        self._html = ""
        font = self._text.font()
        font.setPointSizeF(font.pointSizeF() * 0.85)
        self._text.setFont(font)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._fit(300.0)

    def set_html(self, text: str, color: QColor) -> None:
        self._text.setDefaultTextColor(color)
        if text != self._html:
            self._html = text
            self._text.setHtml(text)
            self._fit(self.size().width() or 300.0)

    def plain_text(self) -> str:
        return self._text.toPlainText()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit(event.newSize().width())

    def _fit(self, width: float) -> None:
        if width <= 0:
            return
        self._text.setTextWidth(width)
        height = self._text.document().size().height()
        if abs(self.minimumHeight() - height) > 0.5:
            self.setMinimumHeight(height)
            self.setMaximumHeight(height)
            self.updateGeometry()
