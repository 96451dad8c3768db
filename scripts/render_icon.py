"""Render the application icon's SVG to the 256×256 PNG that window managers and packagers want.

Run after editing resources/icons/batch-size-lab.svg:  python scripts/render_icon.py
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"


def render(svg: Path, png: Path, size: int) -> None:
    renderer = QSvgRenderer(str(svg))
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    if not image.save(str(png)):
        raise SystemExit(f"could not write {png}")


def main() -> int:
    app = QGuiApplication(sys.argv[:1])  # noqa: F841 — QImage/QPainter need an application for fonts
    render(ICONS / "batch-size-lab.svg", ICONS / "batch-size-lab.png", 256)
    print(ICONS / "batch-size-lab.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
