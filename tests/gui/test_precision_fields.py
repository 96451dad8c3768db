"""train.precision and train.accumulation_steps reach the setup panel from their field metadata alone."""
from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QSpinBox

from engine.config import parse_config
from gui.setup_panel import SetupPanel
from tests.conftest import tiny_table


def test_the_setup_panel_offers_precision_and_accumulation_and_reads_them_back(qtbot):
    panel = SetupPanel()
    qtbot.addWidget(panel)
    panel.set_config(parse_config(tiny_table(train={"precision": "bf16", "accumulation_steps": 4})))
    precision, steps = panel.editor("train.precision"), panel.editor("train.accumulation_steps")
    assert isinstance(precision, QComboBox) and isinstance(steps, QSpinBox)
    assert [precision.itemData(i) or precision.itemText(i) for i in range(precision.count())] == ["fp32", "bf16", "fp16"]
    config = panel.config()
    assert (config.train.precision, config.train.accumulation_steps) == ("bf16", 4)


def test_precisions_to_cross_are_a_list_field_that_reads_back_and_names_a_bad_item(qtbot):
    panel = SetupPanel()
    qtbot.addWidget(panel)
    panel.set_config(parse_config(tiny_table(sweep={"precisions": ["fp32", "bf16"]})))
    field = panel.editor("sweep.precisions")
    assert field.text() == "fp32, bf16"
    assert panel.config().sweep.precisions == ["fp32", "bf16"]
    field.setText("fp32, bf61")
    field.textEdited.emit(field.text())
    assert any("sweep.precisions contains 'bf61'" in problem for problem in panel.problems())
