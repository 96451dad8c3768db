"""The user's own words in tooltips, shown as typed."""
from __future__ import annotations

import html


def plain_tooltip(text: str) -> str:
    """A tooltip that shows text as typed, line breaks kept: Qt would render a run named '<b>x</b>' as markup."""
    return f"<p style='white-space:pre-wrap'>{html.escape(text)}</p>"
