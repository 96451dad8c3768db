"""sweep.ensemble appears in the setup panel from its config metadata alone, and the choice reaches the config."""
from __future__ import annotations

from PySide6.QtWidgets import QComboBox

from engine.config import field_info
from gui.setup_panel import SetupPanel
from tests.gui.test_setup_panel import DOCK_WIDTH, shown


def test_ensembles_is_a_choice_shown_for_a_grid(qtbot):
    panel = SetupPanel()
    qtbot.addWidget(panel)
    panel.resize(DOCK_WIDTH, 900)
    panel.show()
    qtbot.waitExposed(panel)
    combo = panel.editor("sweep.ensemble")
    assert isinstance(combo, QComboBox) and shown(panel, "sweep.ensemble")
    assert [combo.itemText(i) for i in range(combo.count())] == ["off: one trial at a time",
                                                                 "auto: seeds and LRs together"]
    assert field_info("sweep.ensemble")["help"][:40] in combo.toolTip()
    assert panel.config().sweep.ensemble == "off"
    combo.setCurrentIndex(combo.findData("auto"))
    assert panel.config().sweep.ensemble == "auto"
    panel.set_config({"sweep": {"strategy": "bayesian"}})
    assert not shown(panel, "sweep.ensemble")     # a search proposes its trials one at a time
