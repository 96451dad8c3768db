"""The toolbar above the live plots: the x axis (one click, or Ctrl+1 to Ctrl+4), Fit (Ctrl+0), log scales,
smoothing, the per-step loss, and export of the curve data.

It holds no plot state: it says what the user asked for through its signals, and shows what the plots do
through its `show_*` methods (which do not signal back).
"""
from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QPalette
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QMenu, QSizePolicy, QSlider, QToolButton,
                               QVBoxLayout, QWidget)

from engine import schema
from gui.plot_specs import LIVE_PLOTS
from gui.x_axis import X_AXES

X_AXIS_TIPS = {"epoch": "Progress in passes over the training set",
               "step": "Progress in optimizer steps (weight updates): large batches take fewer",
               "samples": "Progress in training examples seen: the fair comparison of data efficiency",
               "wall_time_s": "Progress in seconds of training: the answer to 'which batch size is faster'"}
X_AXIS_SHORTCUTS = {key: f"Ctrl+{index}" for index, key in enumerate(X_AXES, start=1)}
FIT_SHORTCUT = "Ctrl+0"


def _with_shortcut(tip: str, shortcut: str) -> str:
    native = QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)
    return f"{tip} ({native})"


class PlotToolbar(QWidget):
    """Three groups (the x axis; the view: Fit, log scales, smoothing; per-step loss and export) on one line, or
    wrapped onto more lines when the toolbar is too narrow, so it never sets the plots' minimum width."""

    x_axis_chosen = Signal(str)
    fit_requested = Signal()
    log_x_toggled = Signal(bool)
    log_y_toggled = Signal(str, bool)
    smoothing_changed = Signal(float)
    step_loss_toggled = Signal(bool)
    export_data_requested = Signal(str)      # schema.EPOCH_GROUP or schema.STEP_GROUP

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("plotsToolbar")
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(6, 4, 6, 0)
        self._layout.setSpacing(4)
        self._x_axis_group = self._build_x_axis_group()
        self._options_group = self._build_options_group()
        self._data_group = self._build_data_group()
        self._groups = (self._x_axis_group, self._options_group, self._data_group)
        self._lines: list[int] = []            # how many groups each line holds
        margins = self._layout.contentsMargins()
        self.setMinimumWidth(max(group.minimumSizeHint().width() for group in self._groups)
                             + margins.left() + margins.right())
        self._wrap()
        self.restyle()

    # ---------------------------------------------------------------- what the plots show

    def show_x_axis(self, key: str) -> None:
        self._x_actions[key].setChecked(True)

    def show_smoothing(self, weight: float) -> None:
        with QSignalBlocker(self._smoothing_slider):
            self._smoothing_slider.setValue(round(weight * 100))
        self._smoothing_value.setText(f"{weight:.2f}")

    def show_log_x(self, on: bool) -> None:
        with QSignalBlocker(self._log_x_action):
            self._log_x_action.setChecked(on)

    def show_log_y(self, plot_name: str, on: bool) -> None:
        with QSignalBlocker(self._log_y_actions[plot_name]):
            self._log_y_actions[plot_name].setChecked(on)

    def show_step_loss(self, visible: bool) -> None:
        with QSignalBlocker(self._step_loss_check):
            self._step_loss_check.setChecked(visible)

    # ---------------------------------------------------------------- its controls, for menus and tests

    def x_axis_button(self, key: str) -> QToolButton:
        return self._x_buttons[key]

    def x_axis_action(self, key: str) -> QAction:
        """The checkable action of an x axis, with its shortcut (a menu may list it too)."""
        return self._x_actions[key]

    def fit_button(self) -> QToolButton:
        return self._fit_button

    def fit_action(self) -> QAction:
        return self._fit_action

    def export_data_action(self, group: str) -> QAction:
        return self._export_actions[group]

    def is_wrapped(self) -> bool:
        """Whether the options sit on a second line, below the x axis buttons."""
        return len(self._lines) > 1

    def x_axis_group(self) -> QWidget:
        return self._x_axis_group

    def options_group(self) -> QWidget:
        return self._options_group

    # ---------------------------------------------------------------- building

    def _build_x_axis_group(self) -> QWidget:
        group = QWidget()
        row = QHBoxLayout(group)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        row.addWidget(QLabel("X axis:"))
        self._segments = QWidget()
        self._segments.setObjectName("segmentedControl")
        segment_row = QHBoxLayout(self._segments)
        segment_row.setContentsMargins(0, 0, 0, 0)
        segment_row.setSpacing(0)
        actions = QActionGroup(self)
        actions.setExclusive(True)
        self._x_buttons: dict[str, QToolButton] = {}
        self._x_actions: dict[str, QAction] = {}
        for key in X_AXES:
            action = QAction(schema.METRICS[key].label, actions)
            action.setCheckable(True)
            action.setShortcut(QKeySequence(X_AXIS_SHORTCUTS[key]))
            action.setToolTip(_with_shortcut(X_AXIS_TIPS[key], X_AXIS_SHORTCUTS[key]))
            action.triggered.connect(lambda _checked=False, key=key: self.x_axis_chosen.emit(key))
            self.addAction(action)
            button = QToolButton()
            button.setDefaultAction(action)
            button.setObjectName("segment")
            button.setProperty("position", "first" if key == X_AXES[0] else "last" if key == X_AXES[-1] else "")
            button.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            self._x_buttons[key] = button
            self._x_actions[key] = action
            segment_row.addWidget(button)
        self._x_actions[X_AXES[0]].setChecked(True)
        row.addWidget(self._segments)
        return group

    def _build_options_group(self) -> QWidget:
        group = QWidget()
        row = QHBoxLayout(group)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        self._fit_action = QAction("Fit", self)
        self._fit_action.setShortcut(QKeySequence(FIT_SHORTCUT))
        self._fit_action.setToolTip(_with_shortcut("Show all the data again after zooming or panning",
                                                   FIT_SHORTCUT))
        self._fit_action.triggered.connect(self.fit_requested)
        self.addAction(self._fit_action)
        self._fit_button = QToolButton()
        self._fit_button.setDefaultAction(self._fit_action)
        row.addWidget(self._fit_button)

        self._log_button = QToolButton()
        self._log_button.setText("Log scale")
        self._log_button.setToolTip("Logarithmic axes: useful when values span several orders of magnitude")
        self._log_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self._log_button.setObjectName("logScaleButton")
        menu = QMenu(self._log_button)
        self._log_y_actions: dict[str, QAction] = {}
        for spec in LIVE_PLOTS:
            action = menu.addAction(f"{spec.title} (y)")
            action.setCheckable(True)
            action.toggled.connect(lambda on, name=spec.name: self.log_y_toggled.emit(name, on))
            self._log_y_actions[spec.name] = action
        menu.addSeparator()
        self._log_x_action = menu.addAction("X axis (all plots)")
        self._log_x_action.setCheckable(True)
        self._log_x_action.toggled.connect(self.log_x_toggled)
        self._log_button.setMenu(menu)
        row.addWidget(self._log_button)
        row.addSpacing(8)

        smoothing_label = QLabel("Smoothing:")
        smoothing_label.setToolTip("Exponential moving average of the per-step curves (batch loss, gradient "
                                   "norm). 0 shows every step as measured.")
        row.addWidget(smoothing_label)
        self._smoothing_slider = QSlider(Qt.Orientation.Horizontal)
        self._smoothing_slider.setRange(0, 99)
        self._smoothing_slider.setMinimumWidth(60)
        self._smoothing_slider.setMaximumWidth(90)
        self._smoothing_slider.setToolTip(smoothing_label.toolTip())
        self._smoothing_slider.valueChanged.connect(lambda value: self.smoothing_changed.emit(value / 100))
        row.addWidget(self._smoothing_slider)
        self._smoothing_value = QLabel("0.00")
        self._smoothing_value.setMinimumWidth(self._smoothing_value.fontMetrics().horizontalAdvance("0.00") + 4)
        row.addWidget(self._smoothing_value)

        return group

    def _build_data_group(self) -> QWidget:
        group = QWidget()
        row = QHBoxLayout(group)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        self._step_loss_check = QCheckBox("Per-step loss")
        self._step_loss_check.setToolTip("Show the loss of every batch, faintly, behind the epoch losses")
        self._step_loss_check.toggled.connect(self.step_loss_toggled)
        row.addWidget(self._step_loss_check)
        row.addSpacing(8)

        export_button = QToolButton()
        export_button.setText("Export data")
        export_button.setToolTip("Save the values of the curves shown as CSV, with units in the header")
        export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        export_button.setObjectName("exportDataButton")
        menu = QMenu(export_button)
        self._export_actions: dict[str, QAction] = {}
        for group_name, text in ((schema.EPOCH_GROUP, "Per-epoch values as CSV…"),
                                 (schema.STEP_GROUP, "Per-step values as CSV…")):
            action = menu.addAction(text)
            action.triggered.connect(lambda _checked=False, g=group_name: self.export_data_requested.emit(g))
            self._export_actions[group_name] = action
        export_button.setMenu(menu)
        row.addWidget(export_button)
        return group

    # ---------------------------------------------------------------- layout and looks

    def _wrap(self) -> None:
        """As many groups on each line as fit the width, in order."""
        gap = 14
        margins = self._layout.contentsMargins()
        available = self.width() - margins.left() - margins.right()
        lines: list[int] = []
        used = 0
        for group in self._groups:
            width = group.sizeHint().width()
            if lines and used + gap + width <= available:
                lines[-1] += 1
                used += gap + width
            else:
                lines.append(1)
                used = width
        if lines == self._lines:
            return
        self._lines = lines
        while self._layout.count():
            line = self._layout.takeAt(0).layout()
            while line.count():
                line.takeAt(0)
            line.deleteLater()
        groups = iter(self._groups)
        for count in lines:
            line = QHBoxLayout()
            line.setSpacing(gap)
            for _ in range(count):
                line.addWidget(next(groups))
            line.addStretch(1)
            self._layout.addLayout(line)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._wrap()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange:
            self.restyle()

    def restyle(self) -> None:
        """The x axis buttons as one segmented control whose chosen segment is filled with the theme's accent
        (the application stylesheet leaves a checked tool button nearly indistinguishable in both themes)."""
        palette = self.palette()
        accent = palette.color(QPalette.ColorRole.Highlight).name()
        on_accent = palette.color(QPalette.ColorRole.HighlightedText).name()
        border = palette.color(QPalette.ColorRole.Mid).name()
        text = palette.color(QPalette.ColorRole.ButtonText).name()
        hover = palette.color(QPalette.ColorRole.Midlight).name()
        # Room for the menu arrow of the two drop-down buttons, which otherwise overlaps their text.
        self.setStyleSheet("QToolButton[popupMode=\"2\"] { padding-right: 16px; }"
                           "QToolButton[popupMode=\"2\"]::menu-indicator { subcontrol-origin: padding;"
                           " subcontrol-position: center right; right: 4px; }")
        self._segments.setStyleSheet(
            f"QToolButton#segment {{ border: 1px solid {border}; border-left: none; border-radius: 0;"
            f" padding: 3px 8px; color: {text}; background: transparent; }}"
            f"QToolButton#segment[position=\"first\"] {{ border-left: 1px solid {border};"
            f" border-top-left-radius: 5px; border-bottom-left-radius: 5px; }}"
            f"QToolButton#segment[position=\"last\"] {{ border-top-right-radius: 5px;"
            f" border-bottom-right-radius: 5px; }}"
            f"QToolButton#segment:hover {{ background: {hover}; }}"
            f"QToolButton#segment:checked {{ background: {accent}; color: {on_accent}; border-color: {accent};"
            f" font-weight: 600; }}")
