"""The one module that owns the colour of a batch size.

Batch sizes are placed on a perceptual colour map (viridis) by their log2 position among the batch sizes
shown, so doubling the batch size is always the same step in colour and small batch sizes are dark, large
ones light. The end of the map that would vanish into the background is skipped: the pale yellow end on a
light theme, the near-black purple end on a dark theme. The theme is read from the application palette, so
every view (plots, summary, trial table) asks here and gets the same colour for the same batch size.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import pyqtgraph as pg
from PySide6.QtGui import QColor, QGuiApplication, QPalette

COLOR_MAP_NAME = "viridis"
# The part of the map used, as (start, end) in 0..1, for each background.
LIGHT_RANGE = (0.0, 0.86)
DARK_RANGE = (0.22, 1.0)


@lru_cache(maxsize=1)
def _color_map() -> pg.ColorMap:
    return pg.colormap.get(COLOR_MAP_NAME)


def is_dark_palette(palette: QPalette | None = None) -> bool:
    """Whether the given palette (default: the application's) has a dark background."""
    if palette is None:
        app = QGuiApplication.instance()
        if app is None:
            return False
        palette = QGuiApplication.palette()
    return palette.color(QPalette.ColorRole.Base).lightnessF() < 0.5


def batch_size_position(batch_size: int, all_batch_sizes: Sequence[int]) -> float:
    """Where a batch size sits among all batch sizes, 0..1 on a log2 scale (0.5 when there is only one)."""
    sizes = [size for size in all_batch_sizes if size > 0] or [max(int(batch_size), 1)]
    low, high = math.log2(min(sizes)), math.log2(max(sizes))
    if high - low < 1e-12:
        return 0.5
    position = (math.log2(max(int(batch_size), 1)) - low) / (high - low)
    return min(max(position, 0.0), 1.0)


def batch_size_color(batch_size: int, all_batch_sizes: Sequence[int], *, dark: bool | None = None) -> QColor:
    """The colour of a batch size among the batch sizes shown together.

    `dark` picks the part of the colour map for a dark background; by default it follows the application
    palette, so the same call gives the same colour in every view of one theme.
    """
    if dark is None:
        dark = is_dark_palette()
    start, end = DARK_RANGE if dark else LIGHT_RANGE
    position = start + (end - start) * batch_size_position(batch_size, all_batch_sizes)
    return QColor(_color_map().map(position, mode="qcolor"))
