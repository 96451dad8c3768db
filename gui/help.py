"""The offline help: resources/help.html (what each view means, how to read the recommendation) followed by
the keyboard shortcuts, read from the window's own actions so the list cannot go stale."""
from __future__ import annotations

import html

from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from engine.resources import resources_dir

HELP_FILE = "help.html"


def shortcuts(window: QWidget) -> list[tuple[str, str]]:
    """(keys, what they do) for every action and shortcut in the window that has keys, in menu order."""
    found: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for item in window.findChildren(QAction) + window.findChildren(QShortcut):
        sequences = item.shortcuts() if isinstance(item, QAction) else [item.key()]
        keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in sequences if not s.isEmpty())
        if not keys:
            continue
        what = item.text() if isinstance(item, QAction) else item.whatsThis()
        what = what.replace("&", "").rstrip("…").strip() or item.objectName()
        if (keys, what) not in seen:
            seen.add((keys, what))
            found.append((keys, what))
    return found


def help_html(window: QWidget) -> str:
    """The help page with the shortcut table appended."""
    try:
        page = (resources_dir() / HELP_FILE).read_text(encoding="utf-8")
    except OSError as error:
        page = f"<p>The help page could not be read: {html.escape(str(error))}</p>"
    rows = "".join(f"<tr><td style='padding-right:16px'><b>{html.escape(keys)}</b></td>"
                   f"<td>{html.escape(what)}</td></tr>" for keys, what in shortcuts(window))
    return f"{page}\n<h2>Keyboard shortcuts</h2>\n<table>{rows}</table>\n"


class HelpDialog(QDialog):
    """A non-modal window with the help page; links to web pages open in the browser."""

    def __init__(self, window: QWidget):
        super().__init__(window)
        self.setObjectName("helpDialog")
        self.setWindowTitle("Batch Size Lab help")
        self.resize(760, 640)
        layout = QVBoxLayout(self)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.setHtml(help_html(window))
        layout.addWidget(self.browser)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)

    def text(self) -> str:
        return self.browser.toPlainText()
