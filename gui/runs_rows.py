"""The Runs tab's columns and the cells of one row: what a listed run file shows, how it sorts, its tooltips."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QTableWidgetItem

from engine.annotations import tags_text
from engine.run_listing import problem_text, status_text
from engine.runfile import RunHeader
from gui.plain_text import plain_tooltip
from gui.theme import status_color

COLUMNS = ("Name", "Tags", "Created", "Dataset", "Model", "Batch sizes", "Trials", "Status", "Notes", "File")
NAME, TAGS, CREATED, DATASET, MODEL, SIZES, TRIALS, STATUS, NOTES, FILE = range(len(COLUMNS))
# The columns the filter box searches.
FILTERED_COLUMNS = (NAME, TAGS, DATASET, MODEL, STATUS, FILE)
PATH_ROLE = Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True)
class RunEntry:
    """One listed file: its header, or the reason it cannot be read as a run file."""
    path: Path
    header: RunHeader | None
    error: str
    modified: float

    @property
    def is_run(self) -> bool:
        return self.header is not None


def _created_text(created: str, modified: float) -> tuple[str, float]:
    """A date for people (local time, to the minute) and a number to sort by."""
    try:
        moment = _dt.datetime.fromisoformat(created)
        if moment.tzinfo is None:
            moment = moment.astimezone()
        return moment.astimezone().strftime("%Y-%m-%d %H:%M"), moment.timestamp()
    except (TypeError, ValueError):
        moment = _dt.datetime.fromtimestamp(modified)
        return moment.strftime("%Y-%m-%d %H:%M"), modified


class _SortableItem(QTableWidgetItem):
    def __init__(self, text: str, sort_key):
        super().__init__(text)
        self.sort_key = sort_key

    def __lt__(self, other: QTableWidgetItem) -> bool:
        if isinstance(other, _SortableItem):
            try:
                return self.sort_key < other.sort_key
            except TypeError:
                return str(self.sort_key) < str(other.sort_key)
        return super().__lt__(other)


def row_items(entry: RunEntry, disabled: QColor) -> list[QTableWidgetItem]:
    """The cells of one listed file, each with its sort key and tooltip; `disabled` greys a file that is not
    a run."""
    header = entry.header
    if header is None:
        created, created_key = _created_text("", entry.modified)
        items = [_SortableItem(entry.path.stem, entry.path.stem.lower()), _SortableItem("", ""),
                 _SortableItem(created, created_key), _SortableItem("", ""), _SortableItem("", ""),
                 _SortableItem("", ()), _SortableItem("", -1),
                 _SortableItem(problem_text(entry.error), "~" + entry.error), _SortableItem("", ""),
                 _SortableItem(entry.path.name, entry.path.name.lower())]
        for item in items:
            item.setForeground(disabled)
            font = item.font()
            font.setItalic(True)
            item.setFont(font)
            item.setToolTip(f"{entry.path.name} cannot be opened as a run file:\n{entry.error}")
        return items
    created, created_key = _created_text(header.created, entry.modified)
    sizes = ", ".join(str(size) for size in header.batch_sizes)
    status = status_text(header)
    tags = tags_text(header.tags)
    first_line = header.notes.strip().split("\n", 1)[0]
    items = [_SortableItem(header.name, header.name.lower()), _SortableItem(tags, tags.lower()),
             _SortableItem(created, created_key),
             _SortableItem(header.dataset, header.dataset.lower()),
             _SortableItem(header.model, header.model.lower()),
             _SortableItem(sizes, tuple(header.batch_sizes)),
             _SortableItem(str(header.trial_count), header.trial_count),
             _SortableItem(status, status), _SortableItem(first_line, header.notes.lower()),
             _SortableItem(entry.path.name, entry.path.name.lower())]
    items[STATUS].setForeground(status_color(header.status))
    items[TRIALS].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    tip = f"{entry.path}\nDevice: {header.device_name or 'unknown'}"
    if header.given_name:
        tip = f"{header.name}\n{tip}"
    if header.note:
        tip += f"\nThis file is {header.note}."
    for item in items:
        item.setToolTip(plain_tooltip(tip))
    items[STATUS].setToolTip(status)
    items[SIZES].setToolTip(f"Batch sizes: {sizes}")
    if tags:
        items[TAGS].setToolTip(plain_tooltip(f"Tags: {tags}"))
    if header.notes:
        items[NOTES].setToolTip(plain_tooltip(header.notes))
    return items
