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


def test_the_summary_says_how_a_batch_size_trained(qtbot, tmp_path):
    from engine.config import parse_config
    from engine.runfile import read_run
    from engine.sweep import run_sweep
    from gui.summary import SummaryView
    from tests.conftest import tiny_table

    config = parse_config(tiny_table(train={"seeds": [0, 1], "epochs": 1},
                                     sweep={"batch_sizes": [16], "ensemble": "auto"}))
    run = read_run(run_sweep(config, tmp_path))
    summary = SummaryView()
    qtbot.addWidget(summary)
    summary.set_runs([run])
    table = summary.table_widget()
    seeds = next(column for column in range(table.columnCount())
                 if table.horizontalHeaderItem(column).text() == "Seeds")
    assert table.item(0, seeds).toolTip() == "How these trials trained: ensemble of 2"
