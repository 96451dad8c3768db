"""The setup panel: every experiment-config field as a form, validated by the engine on every edit.

The form is built from `engine.config.iter_fields()`: each field's metadata gives its label, its help text
(the tooltip), its choices and their words, its range and when it applies (`engine.config.applies`), so a
field the engine adds appears here without a GUI change; the file types offered are those the engine's loaders
read (`engine.data.FILE_FORMATS`). What the user types is passed to `engine.config.validate` as typed (a number
where it parses as one, the raw text where it does not), so every message the user sees is the engine's own,
and each problem's key says which field to mark. A CSV file's first rows are checked as soon as it is named.
"""
from __future__ import annotations

import dataclasses
import functools
import html
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRect, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QAction, QPainter, QPalette
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QMenu,
                               QPushButton, QScrollArea, QSizePolicy, QSpinBox, QStyle, QStyleOptionFrame,
                               QToolButton, QVBoxLayout, QWidget)

from engine import schema
from engine.config import (BUILTIN_DATASETS, DataConfig, ExperimentConfig, SweepConfig, applies, field_info,
                           iter_fields, parse_config, validate)
from engine.data import FILE_FORMATS, check_head
from engine.devices import available_devices
from engine.errors import DataError, Problem
from gui import theme

POWERS_OF_TWO = tuple(2 ** k for k in range(13))      # 1 … 4096
INT32_MAX = 2**31 - 1
LABEL_WIDTH = 100          # one label column width for every section, so the fields line up

SECTION_TITLES = {"": "Experiment", "data": "Data", "model": "Model", "train": "Training", "sweep": "Sweep"}
SECTION_ORDER = ("", "sweep", "data", "model", "train")

# Fields that need the panel's whole width (the batch-size toggles, a path): label above, field below.
FULL_WIDTH = {"sweep.batch_sizes", "data.dataset"}
# Rarely changed fields, shown with "Show all options" (or whenever they have a problem).
ADVANCED = {"description", "data.val_fraction", "data.use_test_split", "data.data_seed", "train.weight_decay",
            "train.warmup_epochs", "train.schedule", "train.eval_batch_size", "sweep.learning_rates",
            "sweep.precisions", "sweep.strategy"}


def parse_number(text: str) -> Any:
    """An int or float when the text reads as one, else the stripped text (for the engine to reject)."""
    text = text.strip().replace("_", "")
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_list(text: str) -> list[Any]:
    return [parse_number(item) for item in re.split(r"[,;\s]+", text.strip()) if item]


def format_number(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def format_list(values: Any) -> str:
    if not isinstance(values, list):
        raise TypeError(f"not a list: {values!r}")
    return ", ".join(format_number(v) for v in values)


def _constraint_text(meta: dict) -> str:
    words = []
    for bound, text in (("min", "at least"), ("min_exclusive", "more than"), ("max", "at most"),
                        ("max_exclusive", "less than")):
        if bound in meta:
            words.append(f"{text} {format_number(meta[bound])}")
    return ("Allowed: " + ", ".join(words) + ".") if words else ""


def tooltip_for(key: str, field: dataclasses.Field) -> str:
    meta = field.metadata
    parts = [f"<b>{html.escape(meta['label'])}</b>", html.escape(meta["help"])]
    constraint = _constraint_text(meta)
    if constraint:
        parts.append(html.escape(constraint))
    parts.append(f"<span style='color:gray'>Config key: <code>{key}</code></span>")
    return "<qt>" + "<br>".join(p for p in parts if p) + "</qt>"


def file_filter(kinds: tuple[str, ...] | None = None) -> str:
    """A file dialog's filter from the formats the engine reads (only those whose suffixes, without the dot,
    are among `kinds`, when given): all of them together, then each on its own, then all files."""
    formats = [(name, suffixes) for name, suffixes in FILE_FORMATS
               if kinds is None or any(suffix.lstrip(".") in kinds for suffix in suffixes)]
    patterns = lambda suffixes: " ".join(f"*{suffix}" for suffix in suffixes)   # noqa: E731
    entries = [f"{name} ({patterns(suffixes)})" for name, suffixes in formats]
    if len(formats) > 1:
        entries.insert(0, f"Data files ({patterns([s for _, suffixes in formats for s in suffixes])})")
    return ";;".join(entries + ["All files (*)"])


class PathEdit(QLineEdit):
    """A path field that, while it is not being edited, shows a long path with its middle elided: the file's
    name whole and as much of the start as fits, so both where it is and what it is stay in view. The whole
    path is always in `text()`."""

    def shown_text(self) -> str:
        """What the field shows now: the whole text while it has the focus or fits, else its elided form."""
        text, metrics, width = self.text(), self.fontMetrics(), self._text_rect().width()
        if self.hasFocus() or metrics.horizontalAdvance(text) <= width:
            return text
        folder, separator, name = text.rpartition("/") if "/" in text else text.rpartition("\\")
        room = width - metrics.horizontalAdvance(separator + name)
        if not folder or room < metrics.horizontalAdvance("/…"):
            return metrics.elidedText(text, Qt.TextElideMode.ElideLeft, width)
        return metrics.elidedText(folder, Qt.TextElideMode.ElideRight, room) + separator + name

    def _text_rect(self):
        option = QStyleOptionFrame()
        self.initStyleOption(option)
        margins = self.textMargins()
        # QLineEdit keeps 2 px between its contents rectangle and the text.
        return self.style().subElementRect(QStyle.SubElement.SE_LineEditContents, option, self).adjusted(
            margins.left() + 2, margins.top(), -margins.right() - 2, -margins.bottom())

    def paintEvent(self, event) -> None:
        shown = self.shown_text()
        if shown == self.text():
            super().paintEvent(event)
            return
        painter = QPainter(self)
        option = QStyleOptionFrame()
        self.initStyleOption(option)
        self.style().drawPrimitive(QStyle.PrimitiveElement.PE_PanelLineEdit, option, painter, self)
        painter.setPen(self.palette().color(QPalette.ColorRole.Text))
        painter.drawText(self._text_rect(), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, shown)


class _Binding:
    """One config key bound to its editor: get the value as typed, set it from a config, notify on edits."""

    def __init__(self, key: str, widget: QWidget, focus: QWidget | None = None):
        self.key, self.widget = key, widget
        self._tip = ""
        self.focus = focus or widget
        self.highlight: list[QWidget] = [self.focus]

    def get(self) -> Any:
        raise NotImplementedError

    def set(self, value: Any) -> None:
        raise NotImplementedError

    def connect(self, slot: Callable[[], None]) -> None:
        raise NotImplementedError

    def set_tooltip(self, tip: str) -> None:
        self._tip = tip
        self.refresh_tooltip()

    def refresh_tooltip(self) -> None:
        self.widget.setToolTip(self._tip)
        self.focus.setToolTip(self._tip)


class _PathTooltip:
    """For path fields, which may show a path elided: the whole path heads the tooltip."""

    def refresh_tooltip(self) -> None:
        path = self.get()
        tip = self._tip.replace("<qt>", f"<qt><b>{html.escape(path)}</b><br>", 1) if path else self._tip
        self.widget.setToolTip(tip)
        self.focus.setToolTip(tip)


class _TextBinding(_Binding):
    def __init__(self, key: str, placeholder: str = ""):
        edit = QLineEdit()
        edit.setPlaceholderText(placeholder)
        super().__init__(key, edit)

    def get(self) -> str:
        return self.widget.text()

    def set(self, value: Any) -> None:
        self.widget.setText(str(value))

    def connect(self, slot):
        self.widget.textEdited.connect(lambda _text: slot())


class _NumberBinding(_TextBinding):
    """A number typed as text: the engine validates it, so '0' for a learning rate shows the engine's reason."""

    def __init__(self, key: str):
        super().__init__(key)
        self.widget.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.widget.setMaximumWidth(140)

    def get(self) -> Any:
        return parse_number(self.widget.text())

    def set(self, value: Any) -> None:
        self.widget.setText(format_number(value))


class _ListBinding(_TextBinding):
    def __init__(self, key: str, placeholder: str):
        super().__init__(key, placeholder)

    def get(self) -> list[Any]:
        return parse_list(self.widget.text())

    def set(self, value: Any) -> None:
        self.widget.setText(format_list(value))


class _IntSpinBinding(_Binding):
    def __init__(self, key: str, minimum: int, maximum: int):
        spin = QSpinBox()
        spin.setRange(minimum, maximum)
        spin.setGroupSeparatorShown(True)
        spin.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        spin.setMaximumWidth(140)
        spin.setKeyboardTracking(True)
        super().__init__(key, spin)

    def get(self) -> int:
        return self.widget.value()

    def set(self, value: Any) -> None:
        self.widget.setValue(int(value))

    def connect(self, slot):
        self.widget.valueChanged.connect(lambda _value: slot())


class _BoolBinding(_Binding):
    def __init__(self, key: str, text: str = ""):
        super().__init__(key, QCheckBox(text))

    def get(self) -> bool:
        return self.widget.isChecked()

    def set(self, value: Any) -> None:
        self.widget.setChecked(bool(value))

    def connect(self, slot):
        self.widget.toggled.connect(lambda _checked: slot())


class _ChoiceBinding(_Binding):
    def __init__(self, key: str, choices: tuple[str, ...] | list[str]):
        combo = QComboBox()
        labels = field_info(key)["choice_labels"]
        for choice in choices:
            combo.addItem(labels.get(choice, choice), choice)
        # Its words whole: where the panel is too narrow for them beside the label, the row wraps below it.
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        super().__init__(key, combo)

    def get(self) -> str:
        return self.widget.currentData()

    def set(self, value: Any) -> None:
        index = self.widget.findData(value)
        if index < 0:
            # A value the engine does not offer here: keep it visible so the validator can name it.
            self.widget.addItem(str(value), value)
            index = self.widget.count() - 1
        self.widget.setCurrentIndex(index)

    def connect(self, slot):
        self.widget.currentIndexChanged.connect(lambda _index: slot())


class _PathBinding(_PathTooltip, _Binding):
    """A path typed or chosen with a file dialog (data.labels)."""

    def __init__(self, key: str, placeholder: str, dialog_filter: str):
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.edit = PathEdit()
        self.edit.setPlaceholderText(placeholder)
        button = QToolButton()
        button.setObjectName("browseButton")
        button.setText("Browse…")
        button.clicked.connect(self._browse)
        layout.addWidget(self.edit, 1)
        layout.addWidget(button)
        self._filter = dialog_filter
        super().__init__(key, row, self.edit)
        self._slot: Callable[[], None] | None = None
        self.edit.textChanged.connect(lambda _text: self.refresh_tooltip())

    def get(self) -> str:
        return self.edit.text().strip()

    def set(self, value: Any) -> None:
        self.edit.setText(str(value))

    def connect(self, slot):
        self._slot = slot
        self.edit.textEdited.connect(lambda _text: slot())

    def _browse(self) -> None:
        start = str(Path(self.get()).expanduser().parent) if self.get() else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self.widget, "Choose a file", start, self._filter)
        if path:
            self.edit.setText(path)
            if self._slot:
                self._slot()


class _DatasetBinding(_PathTooltip, _Binding):
    """A built-in dataset name from the list, any path typed in, or a file or folder chosen in a dialog."""

    def __init__(self, key: str):
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.combo = QComboBox()
        self.combo.setLineEdit(PathEdit())
        self.combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.combo.addItems(list(BUILTIN_DATASETS))
        self.combo.lineEdit().setPlaceholderText("built-in name, or a file or folder")
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.combo.setMinimumContentsLength(6)
        self.browse = QToolButton()
        self.browse.setObjectName("browseButton")
        self.browse.setText("Browse…")
        # An icon, not the word: the path beside it needs the width more.
        self.browse.setIcon(theme.icon("open"))
        self.browse.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.browse.setToolTip("<qt><b>Choose a file or folder of your own data</b><br>"
                               f"{html.escape(field_info(key)['help'])}</qt>")
        self.browse.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.browse)
        self.choose_file_action = QAction("Choose a file…", menu)
        self.choose_folder_action = QAction("Choose a folder…", menu)
        self.choose_file_action.triggered.connect(self._choose_file)
        self.choose_folder_action.triggered.connect(self._choose_folder)
        menu.addAction(self.choose_file_action)
        menu.addAction(self.choose_folder_action)
        self.browse.setMenu(menu)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.browse)
        super().__init__(key, row, self.combo)
        self._slot: Callable[[], None] | None = None
        self.combo.editTextChanged.connect(lambda _text: self.refresh_tooltip())

    def get(self) -> str:
        return self.combo.currentText().strip()

    def set(self, value: Any) -> None:
        self.combo.setEditText(str(value))

    def connect(self, slot):
        self._slot = slot
        self.combo.editTextChanged.connect(lambda _text: slot())

    def _start_folder(self) -> str:
        current = Path(self.get()).expanduser()
        if self.get() and current.exists():
            return str(current if current.is_dir() else current.parent)
        return str(Path.home())

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.widget, "Choose a data file", self._start_folder(),
                                              file_filter())
        if path:
            self.set(path)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self.widget, "Choose a data folder", self._start_folder())
        if path:
            self.set(path)


class _SeedsBinding(_Binding):
    """Repeats as a count, with the exact seeds editable beside it."""

    def __init__(self, key: str):
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.repeats = QSpinBox()
        self.repeats.setRange(1, 100)
        self.repeats.setMaximumWidth(70)
        self.repeats.setToolTip("How many times to train each batch size, with seeds 0, 1, 2, …")
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("e.g. 0, 1, 2")
        seeds_label = QLabel("seeds")
        seeds_label.setObjectName("hint")
        layout.addWidget(self.repeats)
        layout.addWidget(seeds_label)
        layout.addWidget(self.edit, 1)
        super().__init__(key, row, self.edit)
        self.highlight = [self.edit]
        self._slot: Callable[[], None] | None = None
        self.repeats.valueChanged.connect(self._repeats_changed)
        self.edit.textEdited.connect(self._text_changed)

    def get(self) -> list[Any]:
        return parse_list(self.edit.text())

    def set(self, value: Any) -> None:
        self.edit.setText(format_list(value))
        with QSignalBlocker(self.repeats):
            self.repeats.setValue(max(1, len(value)))

    def connect(self, slot):
        self._slot = slot

    def _repeats_changed(self, count: int) -> None:
        self.edit.setText(format_list(list(range(count))))
        if self._slot:
            self._slot()

    def _text_changed(self, _text: str) -> None:
        with QSignalBlocker(self.repeats):
            self.repeats.setValue(max(1, min(100, len(self.get()))))
        if self._slot:
            self._slot()


class _BatchSizesBinding(_Binding):
    """Powers of two from 1 to 4096 as toggle buttons, plus any other sizes typed in."""

    COLUMNS = 7

    def __init__(self, key: str):
        box = QWidget()
        grid = QGridLayout(box)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(3)
        grid.setVerticalSpacing(4)
        self.buttons: dict[int, QPushButton] = {}
        for i, size in enumerate(POWERS_OF_TWO):
            button = QPushButton(str(size))
            button.setCheckable(True)
            button.setProperty("batchSize", True)
            button.setMinimumWidth(28)
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            button.setToolTip(f"Train with batch size {size}")
            button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
            self.buttons[size] = button
            grid.addWidget(button, i // self.COLUMNS, i % self.COLUMNS)
        other_row = QWidget()
        other_layout = QHBoxLayout(other_row)
        other_layout.setContentsMargins(0, 2, 0, 0)
        other_layout.setSpacing(6)
        other_label = QLabel("Other sizes")
        other_label.setObjectName("hint")
        self.custom = QLineEdit()
        self.custom.setPlaceholderText("e.g. 24, 48, 96")
        self.custom.setToolTip("Batch sizes that are not powers of two, separated by commas.")
        other_layout.addWidget(other_label)
        other_layout.addWidget(self.custom, 1)
        self.find_max = QPushButton("Find max…")
        self.find_max.setToolTip("Search the largest batch size of this model and data that fits in memory, "
                                 "and offer batch sizes up to it (Sweep ▸ Find max batch).")
        other_layout.addWidget(self.find_max)
        grid.addWidget(other_row, 2, 0, 1, self.COLUMNS)
        super().__init__(key, box, self.custom)
        self.highlight = [self.custom]      # the problem list says what is wrong; 13 red toggles would shout

    def get(self) -> list[Any]:
        chosen: list[Any] = [size for size, button in self.buttons.items() if button.isChecked()]
        for value in parse_list(self.custom.text()):
            if value not in chosen or not isinstance(value, int):
                chosen.append(value)
        numbers = sorted(v for v in chosen if isinstance(v, int) and not isinstance(v, bool))
        return numbers + [v for v in chosen if not (isinstance(v, int) and not isinstance(v, bool))]

    def set(self, value: Any) -> None:
        values = list(value) if isinstance(value, list) else []
        for size, button in self.buttons.items():
            with QSignalBlocker(button):
                button.setChecked(size in values)
        others = [v for v in values if v not in self.buttons]
        self.custom.setText(format_list(others))

    def connect(self, slot):
        for button in self.buttons.values():
            button.toggled.connect(lambda _checked: slot())
        self.custom.textEdited.connect(lambda _text: slot())


def _make_binding(key: str, field: dataclasses.Field) -> _Binding:
    meta = field.metadata
    kind = meta.get("kind")
    if kind == "dataset":
        return _DatasetBinding(key)
    if key == "data.labels":
        # The labels file is of the format of the datasets it applies to.
        return _PathBinding(key, "the file of labels", file_filter(meta["applies"]["data.dataset"]))
    if key == "sweep.batch_sizes":
        return _BatchSizesBinding(key)
    if key == "train.seeds":
        return _SeedsBinding(key)
    if key == "sweep.device":
        return _ChoiceBinding(key, _usable_devices())
    if kind in ("int_list", "float_list"):
        return _ListBinding(key, "empty: use the learning rate above" if key == "sweep.learning_rates"
                            else "comma-separated numbers")
    if kind == "choice_list":
        return _ListBinding(key, f"empty: use the one above; or some of {', '.join(meta['choices'])}")
    if "choices" in meta:
        return _ChoiceBinding(key, meta["choices"])
    if field.type in ("bool", bool):
        return _BoolBinding(key)
    if field.type in ("int", int):
        maximum = meta.get("max")
        if maximum is not None and maximum <= INT32_MAX:
            return _IntSpinBinding(key, int(meta.get("min", 0)), int(maximum))
        return _NumberBinding(key)
    if field.type in ("float", float):
        return _NumberBinding(key)
    return _TextBinding(key)


def _usable_devices() -> list[str]:
    """The device choices that can run here: the default (auto, which picks one itself) and those present."""
    default = SweepConfig().device
    return [device for device in field_info("sweep.device")["choices"]
            if device == default or device in available_devices()]


def _head_problems(table: dict[str, Any], base_dir: Path | None) -> list[Problem]:
    """What the engine finds wrong in the first rows of the dataset file the form names (a CSV with text in a
    column of numbers, say), so that it shows before Run rather than after."""
    data = table.get("data", {})
    dataset, label_column = data.get("dataset"), data.get("label_column")
    if not (isinstance(dataset, str) and isinstance(label_column, str)) or dataset in BUILTIN_DATASETS:
        return []
    path = Path(dataset).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        stat = path.stat()
    except OSError:
        return []         # the validator has said that the path does not exist
    message = _head_message(str(path), label_column, stat.st_mtime_ns, stat.st_size)
    # The field above shows the whole path (and its tooltip); the problem needs only the file's name.
    return [Problem("data.dataset", message.replace(str(path), path.name))] if message else []


@functools.lru_cache(maxsize=16)
def _head_message(path: str, label_column: str, _mtime_ns: int, _size: int) -> str:
    """check_head's message for this version of the file, '' when its head is fine. Cached, as the form is
    validated on every keystroke in any field; a changed file has a new time or size."""
    try:
        check_head(DataConfig(dataset=path, label_column=label_column))
    except DataError as error:
        return str(error)
    return ""


class SetupPanel(QWidget):
    """The experiment form with its problem list and Run / Stop buttons."""

    validity_changed = Signal(bool)
    config_edited = Signal()
    run_clicked = Signal()
    find_max_batch_clicked = Signal()
    stop_clicked = Signal()
    notice = Signal(str)          # something the user should read that is not a problem (shown in the log)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._bindings: dict[str, _Binding] = {}
        self._rows: dict[str, tuple[QFormLayout, QLabel]] = {}
        self._base_dir: Path | None = None
        self._problems: list[str] = []
        self._valid = False
        self._running = False
        self._loading = False
        self._build()
        self.set_config(ExperimentConfig())

    # --- public ----------------------------------------------------------------------------------------
    def table(self) -> dict[str, Any]:
        """The config as typed, as a TOML-shaped table (values the engine will judge)."""
        table: dict[str, Any] = {}
        for key, binding in self._bindings.items():
            section, _, name = key.rpartition(".")
            target = table.setdefault(section, {}) if section else table
            target[name] = binding.get()
        return table

    def problems(self) -> list[str]:
        return list(self._problems)

    def is_valid(self) -> bool:
        return self._valid

    def config(self) -> ExperimentConfig:
        """The validated config; raises ConfigError when the form has problems."""
        return parse_config(self.table(), self._base_dir)

    def set_config(self, config: ExperimentConfig | dict[str, Any], base_dir: Path | None = None) -> None:
        """Fill the form from a config (or a table of one); keys it does not give keep their defaults."""
        table = config.to_dict() if isinstance(config, ExperimentConfig) else config
        defaults = ExperimentConfig().to_dict()
        self._base_dir = base_dir
        self._loading = True
        try:
            for key, binding in self._bindings.items():
                section, _, name = key.rpartition(".")
                source = table.get(section, {}) if section else table
                fallback = defaults.get(section, {}) if section else defaults
                value = source.get(name, fallback.get(name)) if isinstance(source, dict) else fallback.get(name)
                if key == "sweep.device" and value not in _usable_devices():
                    self.notice.emit(f"This config asks for device '{value}', which is not available here; "
                                     f"the device is set to {fallback[name]}.")
                    value = fallback[name]
                try:
                    binding.set(value)
                except (TypeError, ValueError, OverflowError):
                    # Only a hand-edited settings file gets here (configs from files are validated first).
                    binding.set(fallback.get(name))
                    self.notice.emit(f"{key} = {value!r} could not be shown in the form; the default is used.")
        finally:
            self._loading = False
        self._revalidate()

    def editor(self, key: str) -> QWidget:
        """The widget that edits a config key (for tests and focus)."""
        return self._bindings[key].focus

    def batch_size_button(self, size: int) -> QPushButton:
        return self._bindings["sweep.batch_sizes"].buttons[size]

    def set_batch_sizes(self, sizes: list[int]) -> None:
        """Replace the batch sizes, as if typed (Find max batch's answer)."""
        self._bindings["sweep.batch_sizes"].set(sizes)
        self._on_edit()

    def restyle(self) -> None:
        """After a theme change: icons and the colours set from code follow the new theme."""
        self.run_button.setIcon(theme.icon("run"))
        self.stop_button.setIcon(theme.icon("stop"))
        self._bindings["data.dataset"].browse.setIcon(theme.icon("open"))
        self._revalidate()

    def set_running(self, running: bool) -> None:
        self._running = running
        self._revalidate()

    # --- building --------------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)

        top = QWidget()
        top_layout = QHBoxLayout(top)
        top_layout.setContentsMargins(10, 8, 10, 2)
        self.show_all = QCheckBox("Show all options")
        self.show_all.setToolTip("Also show rarely changed settings (validation split, data seed, weight decay, "
                                 "warm-up, schedule, evaluation batch size, learning-rate grid).")
        self.show_all.toggled.connect(lambda _checked: self._update_visibility())
        top_layout.addWidget(self.show_all)
        top_layout.addStretch(1)
        outer.addWidget(top)

        self.scroll = QScrollArea()
        self.scroll.setObjectName("setupScroll")
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        contents = QWidget()
        contents.setObjectName("setupContents")
        column = QVBoxLayout(contents)
        column.setContentsMargins(8, 0, 8, 8)
        column.setSpacing(8)
        forms: dict[str, QFormLayout] = {}
        self.groups: dict[str, QGroupBox] = {}
        fields = list(iter_fields())
        sections = [s for s in SECTION_ORDER if any(k.rpartition(".")[0] == s for k, _ in fields)]
        sections += sorted({k.rpartition(".")[0] for k, _ in fields} - set(sections))
        for section in sections:
            group = QGroupBox(SECTION_TITLES.get(section, section.title()))
            form = QFormLayout(group)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            # In a narrow dock a field goes under its label instead of being cut off.
            form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
            form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            form.setHorizontalSpacing(10)
            form.setVerticalSpacing(7)
            form.setContentsMargins(2, 6, 2, 2)
            forms[section] = form
            self.groups[section] = group
            column.addWidget(group)
        column.addStretch(1)
        self.scroll.setWidget(contents)
        outer.addWidget(self.scroll, 1)

        for key, field in fields:
            binding = _make_binding(key, field)
            tip = tooltip_for(key, field)
            label = QLabel(field.metadata["label"])
            label.setToolTip(tip)
            label.setBuddy(binding.focus)
            label.setMinimumWidth(LABEL_WIDTH)
            binding.set_tooltip(tip)
            form = forms[key.rpartition(".")[0]]
            if key in FULL_WIDTH:
                form.addRow(label)
                form.addRow(binding.widget)
            else:
                form.addRow(label, binding.widget)
            binding.connect(self._on_edit)
            if isinstance(binding, _BatchSizesBinding):
                binding.find_max.clicked.connect(self.find_max_batch_clicked)
            self._bindings[key] = binding
            self._rows[key] = (form, label)

        footer = QWidget()
        footer.setObjectName("setupFooter")
        footer_layout = QVBoxLayout(footer)
        footer_layout.setContentsMargins(10, 8, 10, 10)
        footer_layout.setSpacing(8)
        self.problem_list = QListWidget()
        self.problem_list.setObjectName("problems")
        self.problem_list.setWordWrap(True)
        self.problem_list.setSelectionMode(QListWidget.SelectionMode.SingleSelection)
        self.problem_list.setMaximumHeight(130)
        self.problem_list.setToolTip("Fix these to run. Click one to go to its field.")
        self.problem_list.itemClicked.connect(self._go_to_problem)
        self.status_label = QLabel()
        self.status_label.setObjectName("validLabel")
        self.status_label.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        self.run_button = QPushButton(theme.icon("run"), "Run sweep")
        self.run_button.setObjectName("runButton")
        self.run_button.setToolTip("Train every trial of this experiment (Ctrl+R).")
        self.stop_button = QPushButton(theme.icon("stop"), "Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip("Stop the sweep; the running trial is saved as cancelled.")
        self.run_button.clicked.connect(self.run_clicked)
        self.stop_button.clicked.connect(self.stop_clicked)
        buttons.addWidget(self.run_button, 2)
        buttons.addWidget(self.stop_button, 1)
        footer_layout.addWidget(self.problem_list)
        footer_layout.addWidget(self.status_label)
        footer_layout.addLayout(buttons)
        outer.addWidget(footer)

    # --- reacting --------------------------------------------------------------------------------------
    def _on_edit(self) -> None:
        if self._loading:
            return
        self._revalidate()
        self.config_edited.emit()

    def _revalidate(self) -> None:
        table = self.table()
        self._problems = validate(table, self._base_dir)
        if not any(p.key in ("data.dataset", "data.label_column") for p in self._problems):
            self._problems += _head_problems(table, self._base_dir)
        was_valid, self._valid = self._valid, not self._problems
        invalid_keys = self._invalid_keys()
        for key, binding in self._bindings.items():
            for widget in binding.highlight:
                if bool(widget.property("invalid")) != (key in invalid_keys):
                    widget.setProperty("invalid", key in invalid_keys)
                    widget.style().unpolish(widget)
                    widget.style().polish(widget)
        self.problem_list.clear()
        for problem in self._problems:
            label = field_info(problem.key)["label"] if problem.key in self._bindings else ""
            item = QListWidgetItem(theme.icon("error"), f"{label}: {problem}" if label else problem)
            item.setData(Qt.ItemDataRole.UserRole, problem.key)
            item.setToolTip(problem)
            self.problem_list.addItem(item)
        self.problem_list.setVisible(bool(self._problems))
        self._fit_problem_list()
        failed_color = theme.status_color(schema.FAILED).name()
        if self._problems:
            count = len(self._problems)
            self.status_label.setText(f"{count} problem{'s' if count > 1 else ''} to fix before running.")
            self.status_label.setStyleSheet(f"color: {failed_color};")
        elif self._running:
            self.status_label.setText(f"A sweep is running. Edits apply to the next one: {self._plan_text(table)}.")
            self.status_label.setStyleSheet("")
        else:
            self.status_label.setText(f"✓ Ready to run: {self._plan_text(table)}.")
            self.status_label.setStyleSheet("")
        self._update_visibility(table, invalid_keys)
        self._update_buttons()
        if was_valid != self._valid:
            self.validity_changed.emit(self._valid)

    @staticmethod
    def _plan_text(table: dict[str, Any]) -> str:
        def count(n: int, word: str) -> str:
            return f"{n} {word}{'' if n == 1 else 's'}"
        sizes, seeds = len(table["sweep"]["batch_sizes"]), len(table["train"]["seeds"])
        strategy = table["sweep"].get("strategy", "grid")
        if strategy != "grid":   # a search: how many points is known in advance only for random and bayesian
            sweep = table["sweep"]
            points = "sizes doubled" if strategy == "start-small" else count(sweep["trials"], "point")
            return (f"a {strategy} search, batch sizes {sweep['batch_size_min']} to {sweep['batch_size_max']}: "
                    f"{points} × {count(seeds, 'seed')}")
        lrs = len(table["sweep"].get("learning_rates") or [])
        trials = sizes * seeds * max(1, lrs)
        parts = [count(sizes, "batch size"), count(seeds, "seed")] + ([count(lrs, "learning rate")] if lrs else [])
        return f"{count(trials, 'trial')} ({' × '.join(parts)})"

    def _update_visibility(self, table: dict[str, Any] | None = None, invalid_keys: set[str] | None = None) -> None:
        table = table if table is not None else self.table()
        if invalid_keys is None:
            invalid_keys = self._invalid_keys()
        show_all = self.show_all.isChecked()
        for key, (form, label) in self._rows.items():
            visible = key in invalid_keys or (applies(key, table, self._base_dir)
                                              and (show_all or key not in ADVANCED))
            form.setRowVisible(self._bindings[key].widget, visible)
            if key in FULL_WIDTH:
                form.setRowVisible(label, visible)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_problem_list()

    def _fit_problem_list(self) -> None:
        """As tall as its problems wrapped at the panel's width, up to a limit past which it scrolls. The rows'
        own size hints do not help: before the list is laid out they are one line each."""
        problems = self.problem_list
        if not self._problems:
            return
        icon = problems.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        scroll_bar = problems.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        width = max(60, self.width() - 2 * problems.frameWidth() - icon - scroll_bar - 40)
        wrap = QRect(0, 0, width, 0)
        rows = sum(max(problems.sizeHintForRow(i), problems.fontMetrics().boundingRect(
            wrap, Qt.TextFlag.TextWordWrap, problems.item(i).text()).height() + 6) for i in range(problems.count()))
        problems.setFixedHeight(min(140, rows + 2 * problems.frameWidth() + 6))

    def _invalid_keys(self) -> set[str]:
        return {problem.key for problem in self._problems if problem.key}

    def _update_buttons(self) -> None:
        self.run_button.setEnabled(self._valid and not self._running)
        self.stop_button.setEnabled(self._running)

    def _go_to_problem(self, item: QListWidgetItem) -> None:
        key = item.data(Qt.ItemDataRole.UserRole)
        binding = self._bindings.get(key)
        if binding is None:
            return
        self.scroll.ensureWidgetVisible(binding.widget)
        binding.focus.setFocus(Qt.FocusReason.OtherFocusReason)
