"""Light and dark themes: a Qt palette, a stylesheet from resources/styles/, the plot colours, and icons
tinted for the theme. One place for the colours of the chrome; the colour of a batch size is gui/colors.py's.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pyqtgraph as pg
from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

from engine import schema
from engine.resources import resources_dir

THEMES = ("light", "dark")
DEFAULT_THEME = "light"


@dataclass(frozen=True)
class Theme:
    name: str
    window: str
    base: str
    alternate: str
    text: str
    muted: str
    border: str
    accent: str
    accent_text: str
    plot_background: str
    plot_foreground: str


LIGHT = Theme(name="light", window="#f4f5f7", base="#ffffff", alternate="#f7f8fa", text="#1f2328",
              muted="#656d76", border="#d0d7de", accent="#2f6fdb", accent_text="#ffffff",
              plot_background="#ffffff", plot_foreground="#3d444d")
DARK = Theme(name="dark", window="#1f2228", base="#16181d", alternate="#1b1e24", text="#e6e8eb",
             muted="#9aa4b2", border="#3a404b", accent="#5b9bff", accent_text="#0d1117",
             plot_background="#16181d", plot_foreground="#c9d1d9")
_THEMES = {"light": LIGHT, "dark": DARK}

# Trial statuses (engine.schema) as the user sees them in the table and the message area.
STATUS_COLORS = {
    "light": {schema.QUEUED: "#8c959f", schema.NOT_RUN: "#8c959f", schema.RUNNING: "#2f6fdb",
              schema.COMPLETED: "#1a7f37", schema.CANCELLED: "#9a6700", schema.DIVERGED: "#bc4c00",
              schema.OUT_OF_MEMORY: "#cf222e", schema.FAILED: "#cf222e", schema.PRUNED: "#8250df"},
    "dark": {schema.QUEUED: "#8b949e", schema.NOT_RUN: "#8b949e", schema.RUNNING: "#58a6ff",
             schema.COMPLETED: "#3fb950", schema.CANCELLED: "#d29922", schema.DIVERGED: "#f0883e",
             schema.OUT_OF_MEMORY: "#ff7b72", schema.FAILED: "#ff7b72", schema.PRUNED: "#bc8cff"},
}

_current = DEFAULT_THEME


def current_theme() -> Theme:
    return _THEMES[_current]


def status_color(status: str) -> QColor:
    return QColor(STATUS_COLORS[_current].get(status, STATUS_COLORS[_current][schema.QUEUED]))


def _palette(theme: Theme) -> QPalette:
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: theme.window, QPalette.ColorRole.WindowText: theme.text,
        QPalette.ColorRole.Base: theme.base, QPalette.ColorRole.AlternateBase: theme.alternate,
        QPalette.ColorRole.Text: theme.text, QPalette.ColorRole.Button: theme.window,
        QPalette.ColorRole.ButtonText: theme.text, QPalette.ColorRole.ToolTipBase: theme.base,
        QPalette.ColorRole.ToolTipText: theme.text, QPalette.ColorRole.Highlight: theme.accent,
        QPalette.ColorRole.HighlightedText: theme.accent_text, QPalette.ColorRole.PlaceholderText: theme.muted,
        QPalette.ColorRole.Link: theme.accent, QPalette.ColorRole.Mid: theme.border,
        QPalette.ColorRole.Midlight: theme.alternate,
    }
    for role, color in roles.items():
        palette.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(theme.muted))
    return palette


_FUSION_SET = "batchSizeLabFusionSet"


def apply_theme(app: QApplication, name: str) -> str:
    """Switch the whole application to a theme; returns the name applied (unknown names give the default).

    The views restyle their plots themselves when the palette changes (a PaletteChange event); pyqtgraph's
    defaults are set too, for any plot that does not."""
    global _current
    name = name if name in _THEMES else DEFAULT_THEME
    _current = name
    theme = _THEMES[name]
    # Re-setting an unchanged style repolishes every widget: skip what is already in place. Under a stylesheet
    # app.style() is Qt's stylesheet proxy, whose name is "", so whether Fusion was set is kept on the app.
    if not app.property(_FUSION_SET):
        app.setStyle("Fusion")
        app.setProperty(_FUSION_SET, True)
    palette = _palette(theme)
    if app.palette() != palette:
        app.setPalette(palette)
    sheet = stylesheet(name)
    if app.styleSheet() != sheet:
        app.setStyleSheet(sheet)
    pg.setConfigOptions(background=theme.plot_background, foreground=theme.plot_foreground, antialias=True)
    icon.cache_clear()
    return name


def stylesheet(name: str) -> str:
    """The theme's stylesheet, with @ICONS@ replaced by the icons folder (QSS urls are not file-relative)."""
    path = resources_dir() / "styles" / f"{name}.qss"
    if not path.exists():
        return ""
    icons = (resources_dir() / "icons").as_posix()
    return path.read_text(encoding="utf-8").replace("@ICONS@", icons)


@lru_cache(maxsize=None)
def icon(name: str) -> QIcon:
    """An icon from resources/icons/<name>.svg; `currentColor` is drawn in the theme's text colour."""
    path = resources_dir() / "icons" / f"{name}.svg"
    if not path.exists():
        return QIcon()
    svg = path.read_text(encoding="utf-8").replace("currentColor", current_theme().text)
    renderer = QSvgRenderer(QByteArray(svg.encode()))
    result = QIcon()
    for size in (16, 20, 24, 32, 48):
        for ratio in (1, 2):
            image = QImage(QSize(size, size) * ratio, QImage.Format.Format_ARGB32_Premultiplied)
            image.fill(Qt.GlobalColor.transparent)
            painter = QPainter(image)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            renderer.render(painter)
            painter.end()
            pixmap = QPixmap.fromImage(image)
            pixmap.setDevicePixelRatio(ratio)
            result.addPixmap(pixmap)
    return result


def app_icon() -> QIcon:
    folder = resources_dir() / "icons"
    result = QIcon()
    for path in (folder / "batch-size-lab.svg", folder / "batch-size-lab.png"):
        if path.exists():
            result.addFile(str(path))
    return result


def dot_icon(color: QColor, size: int = 10) -> QIcon:
    """A filled circle, for status and batch-size swatches."""
    ratio = 2
    pixmap = QPixmap(QSize(size, size) * ratio)
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(color)
    painter.drawEllipse(1, 1, size - 2, size - 2)
    painter.end()
    return QIcon(pixmap)
