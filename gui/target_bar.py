"""The one target validation accuracy of the Summary: shown and edited here, used by the recommendation and by
every card (time, steps and samples to target)."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QHBoxLayout, QLabel, QWidget

from engine.science.recommendation import AUTO_TARGET_FRACTION


class TargetBar(QWidget):
    """A spin box in percent and an Automatic switch. `targetChanged` carries the fraction the user set, or
    None when Automatic was switched back on; `show_target` displays the target in use without emitting."""

    targetChanged = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("summaryToolbar")
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 4, 6, 0)
        row.setSpacing(6)
        label = QLabel("Target validation accuracy:")
        tip = ("One target for the whole Summary: the recommendation, and time, steps and samples to target, "
               "which count until the validation accuracy first reaches it (checked at the end of each epoch).")
        label.setToolTip(tip)
        row.addWidget(label)
        self.spin = QDoubleSpinBox()
        # 0 stands for "no target yet" (shown as a dash); typing it goes back to Automatic.
        self.spin.setRange(0.0, 100.0)
        self.spin.setSpecialValueText("–")
        self.spin.setDecimals(1)
        self.spin.setSingleStep(0.5)
        self.spin.setSuffix(" %")
        self.spin.setToolTip(tip)
        self.spin.setKeyboardTracking(False)
        self.spin.valueChanged.connect(self._user_set)
        row.addWidget(self.spin)
        self.automatic = QCheckBox("Automatic")
        self.automatic.setChecked(True)
        self.automatic.setToolTip(
            f"The run's sweep.target_accuracy where its config sets one, else {AUTO_TARGET_FRACTION:.0%} of the best "
            "validation accuracy any trial reached: close to the best, yet reachable by batch sizes that train "
            "well. With several runs shown, the lowest of their targets.")
        self.automatic.toggled.connect(self._automatic_toggled)
        row.addWidget(self.automatic)
        self.note = QLabel()
        self.note.setObjectName("summaryTargetNote")
        self.note.setWordWrap(True)        # wraps rather than set the view's minimum width
        row.addWidget(self.note, 1)
        self.show_target(None, True, [])

    def is_automatic(self) -> bool:
        return self.automatic.isChecked()

    def show_target(self, fraction: float | None, automatic: bool, runs: list[str]) -> None:
        """Display the target in use (a fraction, None before any epoch) and say what it applies to."""
        self.spin.blockSignals(True)
        self.automatic.blockSignals(True)
        self.spin.setValue(round(fraction * 100, 1) if fraction is not None else 0.0)
        self.automatic.setChecked(automatic)
        self.spin.blockSignals(False)
        self.automatic.blockSignals(False)
        if fraction is None:
            self.note.setText("No epoch has finished yet.")
            return
        which = f"all {len(runs)} runs shown ({', '.join(runs)})" if len(runs) > 1 else "the recommendation"
        self.note.setText(f"Used by {which} and every card: time, steps and samples count until "
                          f"{fraction:.1%} was first reached.")

    def _user_set(self, percent: float) -> None:
        if percent == 0:
            self.automatic.setChecked(True)
            return
        self.automatic.blockSignals(True)
        self.automatic.setChecked(False)
        self.automatic.blockSignals(False)
        self.targetChanged.emit(percent / 100)

    def _automatic_toggled(self, on: bool) -> None:
        self.targetChanged.emit(None if on or self.spin.value() == 0 else self.spin.value() / 100)
