"""Find max batch in the app: started from the button beside the batch sizes, it searches off the GUI thread,
lists each try, and its answer fills the batch sizes; Stop ends it after the try under way."""
from __future__ import annotations

import h5py
from PySide6.QtCore import Qt

from engine import schema
from engine.config import parse_config
from gui.max_batch_dialog import RUNS_SUBFOLDER, offered_batch_sizes
from tests.conftest import tiny_table

SEARCH_TIMEOUT_MS = 60_000


def test_the_answer_fills_the_batch_sizes_and_the_tries_are_saved(qtbot, main_window, workspace):
    window = main_window
    window.setup.set_config(parse_config(tiny_table(name="fits")))
    find_button = next(b for b in window.setup.findChildren(type(window.setup.run_button)) if b.text() == "Find max…")
    qtbot.mouseClick(find_button, Qt.MouseButton.LeftButton)
    dialog = window.max_batch_dialog
    assert dialog.is_searching() and not dialog.use_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.is_searching(), timeout=SEARCH_TIMEOUT_MS)

    result = dialog.result
    # tiny_table's 240 training examples fit in the RAM of any machine that runs the tests: the search goes
    # up to the whole training set by doubling from the smallest batch size.
    assert [p.batch_size for p in result.probes] == [16, 32, 64, 128, 240]
    assert dialog.tries.count() == 5 and dialog.tries.item(0).text().startswith("batch size 16: fits")
    assert result.recommended == 216 and "216" in dialog.answer.text()
    saved = list((workspace / RUNS_SUBFOLDER).glob("*.h5"))
    assert len(saved) == 1 and str(saved[0]) in dialog.answer.text()
    with h5py.File(saved[0]) as handle:
        assert handle[schema.MAX_BATCH_GROUP].attrs["recommended_batch_size"] == 216

    qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    assert window.setup.config().sweep.batch_sizes == offered_batch_sizes(216) == [4, 8, 16, 32, 64, 128, 216]


def test_stop_ends_the_search_after_the_try_under_way(qtbot, main_window):
    window = main_window
    window.setup.set_config(parse_config(tiny_table(name="stopped")))
    window.find_max_batch_action.trigger()
    dialog = window.max_batch_dialog
    qtbot.mouseClick(dialog.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_searching(), timeout=SEARCH_TIMEOUT_MS)
    assert dialog.result.stopped and len(dialog.result.probes) <= 1
    before = window.setup.config().sweep.batch_sizes
    qtbot.mouseClick(dialog.close_button, Qt.MouseButton.LeftButton)
    assert window.setup.config().sweep.batch_sizes == before
