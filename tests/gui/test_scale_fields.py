"""The scale keys (sweep.parallel, sweep.data_parallel, sweep.rank_batch_norm) appear in the setup panel from
their config metadata alone, and what is typed there reaches the engine's config."""
from __future__ import annotations

import pytest
from PySide6.QtWidgets import QComboBox, QLineEdit, QSpinBox

from engine.config import field_info
from gui.setup_panel import SetupPanel
from tests.gui.test_setup_panel import DOCK_WIDTH, problem_items, shown, type_into


@pytest.fixture
def panel(qtbot):
    panel = SetupPanel()
    qtbot.addWidget(panel)
    panel.resize(DOCK_WIDTH, 900)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def test_trials_at_once_takes_a_number_or_auto(panel, qtbot):
    edit = panel.editor("sweep.parallel")
    assert isinstance(edit, QLineEdit) and shown(panel, "sweep.parallel")
    assert field_info("sweep.parallel")["help"][:40] in edit.toolTip()
    assert panel.config().sweep.parallel == 1
    type_into(qtbot, edit, "auto")
    assert panel.config().sweep.parallel == "auto"
    type_into(qtbot, edit, "4")
    assert panel.config().sweep.parallel == 4
    type_into(qtbot, edit, "many")
    assert ("Trials at once: sweep.parallel = 'many': must be a whole number or \"auto\"", "sweep.parallel") \
        in problem_items(panel)


def test_ranks_per_trial_is_a_count_and_batch_norm_across_ranks_shows_with_batch_norm(panel):
    spin = panel.editor("sweep.data_parallel")
    assert isinstance(spin, QSpinBox) and (spin.minimum(), spin.maximum()) == (1, 64)
    spin.setValue(2)
    assert panel.config().sweep.data_parallel == 2
    assert not shown(panel, "sweep.rank_batch_norm")
    panel.set_config({"model": {"batch_norm": True}, "sweep": {"data_parallel": 2}})
    combo = panel.editor("sweep.rank_batch_norm")
    assert isinstance(combo, QComboBox) and shown(panel, "sweep.rank_batch_norm")
    combo.setCurrentIndex(combo.findData("sync"))
    assert panel.config().sweep.rank_batch_norm == "sync"
