"""SummaryView against engine.analysis on real run files."""
from __future__ import annotations

import math

import h5py
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QRectF

from engine import schema
from engine.analysis import by_batch_size, summarize_run
from engine.science.recommendation import judge
from engine.runfile import read_run
from gui.colors import batch_size_color
from gui.plotkit import CompactAxis
from gui.plots import LivePlots
from engine.science.recommendation import AUTO_TARGET_FRACTION, ROLE_WORDS, default_target
from gui.summary import SummaryView
from gui.summary_cards import MEASURES, MIN_CARD_WIDTH
from tests.gui.runfactory import write_run

BATCH_SIZES = (16, 32, 64, 128)


@pytest.fixture
def summary(qtbot):
    widget = SummaryView()
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    return widget


@pytest.fixture
def two_seed_run(tmp_path):
    return read_run(write_run(tmp_path / "run.h5", batch_sizes=BATCH_SIZES, seeds=(0, 1), epochs=4, train_size=2048))


def test_points_are_the_engine_means_and_standard_deviations_over_seeds(summary, two_seed_run):
    summary.set_runs([two_seed_run])
    summary.set_target_accuracy(0.6)
    expected = {entry.batch_size: entry for entry in by_batch_size(summarize_run(two_seed_run, 0.6))}
    assert all(entry.trials == 2 for entry in expected.values())
    for plot_name in summary.plot_names():
        for point in summary.points(plot_name):
            measure = MEASURES[point.measure]
            entry = expected[point.batch_size]
            assert point.mean == pytest.approx(entry.mean[point.measure] * measure.display.scale)
            assert point.std == pytest.approx(entry.std[point.measure] * measure.display.scale)
    assert all(point.std > 0 for point in summary.points("accuracy"))        # seeds differ: real error bars
    accuracy = {(p.measure, p.batch_size) for p in summary.points("accuracy")}
    assert accuracy == {(key, size) for key in ("best_val_accuracy", "final_val_accuracy") for size in BATCH_SIZES}

    headers, rows = summary.table_headers(), summary.table_rows()
    assert len(rows) == len(BATCH_SIZES)
    column = headers.index("Best validation accuracy (%) mean")
    for row in rows:
        entry = expected[row[0]]
        assert row[column] == pytest.approx(entry.mean["best_val_accuracy"] * 100)
        assert row[column + 1] == pytest.approx(entry.std["best_val_accuracy"] * 100)
    assert summary.table_widget().rowCount() == len(BATCH_SIZES)


def test_batch_sizes_that_miss_the_target_are_shown_as_not_reached(summary, two_seed_run):
    summary.set_runs([two_seed_run])
    best = {entry.batch_size: entry.mean["best_val_accuracy"]
            for entry in by_batch_size(summarize_run(two_seed_run))}
    target = (best[64] + best[32]) / 2          # 16 and 32 reach it, 64 and 128 do not
    summary.set_target_accuracy(target)
    assert not summary.is_auto_target()
    reached = {point.batch_size for point in summary.points("steps_to_target")}
    assert reached <= {16, 32} and 16 in reached
    missing = {point.batch_size: point.reason for point in summary.missing("steps_to_target")}
    assert missing[64] == "not reached" and missing[128] == "not reached"
    assert all(point.mean > 0 for point in summary.points("samples_to_target"))   # never drawn as zero
    table = summary.table_widget()
    headers = [table.horizontalHeaderItem(column).text() for column in range(table.columnCount())]
    column = headers.index("Steps to target (steps)")
    texts = {table.item(row, 0).text(): table.item(row, column).text() for row in range(table.rowCount())}
    assert texts["128"] == "not reached" and texts["16"] != "not reached"
    assert "not reached: batch size 64, 128" in summary.card("steps_to_target").note.text()


def test_automatic_target_is_a_fraction_of_the_best_accuracy(summary, two_seed_run):
    summary.set_runs([two_seed_run])
    best = max(float(trial.epoch["val_accuracy"].max()) for trial in two_seed_run.trials)
    assert summary.is_auto_target()
    assert summary.target_accuracy() == pytest.approx(math.floor(best * AUTO_TARGET_FRACTION * 200) / 200)
    assert summary.target_accuracy() == default_target([two_seed_run])
    summary.target_bar.spin.setValue(50.0)       # the user types a value: automatic is switched off
    assert summary.target_accuracy() == pytest.approx(0.5) and not summary.target_bar.automatic.isChecked()
    summary.target_bar.automatic.setChecked(True)
    assert summary.is_auto_target() and summary.target_accuracy() == default_target([two_seed_run])
    assert summary.target_bar.spin.value() == pytest.approx(default_target([two_seed_run]) * 100)


def test_colours_match_the_live_plots(summary, two_seed_run, qtbot):
    plots = LivePlots()
    qtbot.addWidget(plots)
    plots.set_runs([two_seed_run])
    summary.set_runs([two_seed_run])
    for point in summary.points("throughput"):
        trial = next(t for t in two_seed_run.trials if t.batch_size == point.batch_size)
        pen = plots.curve("throughput", trial.name, "samples_per_s").opts["pen"]
        assert point.color.rgb() == pen.color().rgb() == batch_size_color(point.batch_size, BATCH_SIZES).rgb()


def test_failed_batch_sizes_are_marked_with_the_reason(summary, tmp_path):
    run = read_run(write_run(tmp_path / "oom.h5", batch_sizes=(16, 32, 64), seeds=(0,), epochs=2, train_size=1024,
                             statuses={64: schema.OUT_OF_MEMORY}))
    summary.set_runs([run])
    assert [(point.batch_size, point.reason) for point in summary.missing("memory")] == [(64, "out of memory")]
    assert {point.batch_size for point in summary.points("memory")} == {16, 32}


def test_two_runs_are_two_series(summary, two_seed_run, tmp_path):
    other = read_run(write_run(tmp_path / "other.h5", batch_sizes=(16, 256), seeds=(0,), epochs=2, train_size=1024))
    summary.set_runs([two_seed_run, other])
    runs = {point.run_index for point in summary.points("throughput")}
    assert runs == {0, 1}
    assert "Run" in summary.table_headers()
    assert len(summary.table_rows()) == len(BATCH_SIZES) + 2


def test_empty_state(summary):
    summary.set_runs([])
    assert summary.shows_placeholder()
    assert summary.table_rows() == []


def test_cards_reflow_to_the_width_and_keep_their_captions(summary, two_seed_run, qtbot):
    summary.set_runs([two_seed_run])
    assert summary.minimumSizeHint().width() <= 2 * MIN_CARD_WIDTH
    for width, columns in ((1400, 4), (1100, 4), (850, 3), (600, 2)):
        summary.resize(width, 700)
        qtbot.waitUntil(lambda columns=columns: summary.card_columns() == columns, timeout=1000)
        cards = [summary.card(name) for name in summary.plot_names()]
        # No card reaches past the view's right edge (no sideways scrolling while columns fit).
        qtbot.waitUntil(lambda: all(card.mapTo(summary, card.rect().topRight()).x() <= summary.width()
                                    for card in cards), timeout=1000)
        for card in cards:
            # Every caption line fits under its plot: the card is at least as tall as its text needs.
            qtbot.waitUntil(lambda card=card: card.height() >= card.minimum_height_for_width(card.width()),
                            timeout=1000)


def test_log_axes_label_decades_not_every_tick(summary):
    assert isinstance(summary.plot_item("steps_to_target").getAxis("left"), CompactAxis)
    axis = CompactAxis("left")
    axis.setLogMode(False, True)
    axis.setGeometry(QRectF(0, 0, 50, 120))
    axis.setRange(math.log10(200), math.log10(20000))       # two decades in 120 px: decades only
    minor = [math.log10(value) for value in (200, 300, 500, 700, 2000, 5000)]
    assert axis.tickStrings(minor, 1.0, None) == [""] * len(minor)
    assert axis.tickStrings([3.0], 1.0, 1.0) == ["1000"]
    axis.setRange(math.log10(150), math.log10(900))         # no decade in view: 2× and 5× are labelled
    assert axis.tickStrings(minor[:4], 1.0, None) == ["200", "", "500", ""]
    axis.setRange(-2, 4)                                     # each decade in its own unit, not all in k
    assert axis.tickStrings([-2.0, -1.0, 0.0, 3.0, 4.0], 1.0, 1.0) == ["0.01", "0.1", "1", "1000", "10k"]


def test_the_recommended_batch_size_is_shown_with_its_reasons(summary, two_seed_run):
    assert summary.recommendation_text() == ""
    summary.set_runs([two_seed_run])
    verdict = judge(two_seed_run, summary.target_accuracy())
    text = summary.recommendation_text()
    assert f"{verdict.headline}." in text and "validation accuracy" in text


def test_one_target_drives_the_headline_and_every_card(summary, two_seed_run):
    summary.set_runs([two_seed_run])
    summary.target_bar.spin.setValue(60.0)                 # typed by the user, in one place
    assert summary.target_accuracy() == pytest.approx(0.6)
    (verdict,) = summary.verdicts()
    assert verdict.target_accuracy == pytest.approx(0.6)
    assert verdict.reasons[0] in summary.recommendation_text()
    assert "60.0% validation accuracy" in summary.recommendation_text()
    for name in ("time_to_target", "steps_to_target", "samples_to_target"):
        assert "the target, 60.0%" in summary.card(name).caption.text()
    assert "until 60.0% was first reached" in summary.target_bar.note.text()
    # The card shows the same numbers the verdict stands on, and rings its pick.
    times = {p.batch_size: p.mean for p in summary.points("time_to_target")}
    assert times[verdict.batch_size] == pytest.approx(verdict.pick.time_to_target_s)
    expected = {e.batch_size: e for e in by_batch_size(summarize_run(two_seed_run, 0.6))}
    assert times == pytest.approx({size: e.mean["time_to_target_s"] for size, e in expected.items()
                                   if math.isfinite(e.mean["time_to_target_s"])})
    assert "ring" in summary.key_text()
    headers, rows = summary.table_headers(), summary.table_rows()
    verdicts = {row[0]: row[headers.index("Verdict")] for row in rows}
    assert verdicts[verdict.batch_size] == "recommended"
    assert {size: verdict.role_of(size) for size in verdicts} == {
        size: next(key for key, words in ROLE_WORDS.items() if words == text) for size, text in verdicts.items()}
    assert [(level.value, level.widen) for level in summary.card("accuracy").levels] == [(60.0, False), (10.4, False)]
    assert ("Lines: dashed: the target, 60.0%; dotted: the no-skill baseline, 10.4%, when in view."
            in summary.card("accuracy").caption.text())


def test_a_run_that_learned_nothing_is_said_plainly(summary, tmp_path):
    # A validation set where one class is 95%: accuracies of 60-90% are below always answering it.
    run = read_run(write_run(tmp_path / "skewed.h5", batch_sizes=(16, 32), seeds=(0, 1), epochs=2, train_size=1024,
                             num_classes=2, val_majority_fraction=0.95))
    summary.set_runs([run])
    text = summary.recommendation_text()
    assert text.startswith("No batch size learned.") and "Recommended" not in text
    assert "Next: Try a lower learning rate" in text
    assert summary.verdicts()[0].pick is None
    baseline = summary.card("accuracy").levels[-1]
    assert (baseline.value, baseline.baseline, baseline.widen) == (95.0, True, True)   # the view shows it
    low, high = summary.plot_item("accuracy").getViewBox().viewRange()[1]
    assert low < 95.0 < high


def test_one_seed_is_worded_for_one_seed(summary, tmp_path):
    run = read_run(write_run(tmp_path / "one.h5", batch_sizes=BATCH_SIZES, seeds=(0,), epochs=3, train_size=1024))
    summary.set_runs([run])
    text = summary.recommendation_text()
    assert "Every seed" not in text and "single seed" in text and "no error bar" in text
    view = summary.recommendation
    assert not view.is_expanded() and view.label.text().count("•") == 0
    view.set_expanded(True)
    assert view.label.text().count("•") == len(summary.verdicts()[0].reasons)


def test_cpu_memory_is_labelled_as_the_process_peak_and_cuda_memory_per_trial(summary, two_seed_run, tmp_path):
    summary.set_runs([two_seed_run])                           # recorded on the CPU
    card = summary.card("memory")
    assert "Peak memory, whole process" in card.title.text()
    assert "process peak RSS, includes earlier trials" in card.caption.text()
    assert "grows with the batch size" not in card.caption.text()
    assert "Peak memory, whole process (MiB) mean" in summary.table_headers()
    lines = [item for item in summary.plot_item("memory").items if isinstance(item, pg.PlotDataItem)]
    assert lines == []                                         # accumulated values are not joined into a trend
    path = write_run(tmp_path / "gpu.h5", batch_sizes=BATCH_SIZES, seeds=(0,), epochs=2, train_size=1024)
    with h5py.File(path, "r+") as handle:
        handle.attrs["device"] = "cuda:0"
    summary.set_runs([read_run(path)])
    assert "grows with the batch size" in card.caption.text() and "whole process" not in card.title.text()
    assert any(isinstance(item, pg.PlotDataItem) for item in summary.plot_item("memory").items)


def test_overlaid_runs_share_one_target_and_are_named_everywhere(summary, two_seed_run, tmp_path):
    other = read_run(write_run(tmp_path / "other.h5", batch_sizes=(16, 512), seeds=(0,), epochs=1,
                               train_size=1024, val_majority_fraction=0.2))
    summary.set_runs([two_seed_run, other])
    baselines = [level for level in summary.card("accuracy").levels if level.baseline]
    assert [level.value for level in baselines] == [20.0]
    assert "the no-skill baseline (the highest of the runs), 20.0%" in summary.card("accuracy").caption.text()
    target = summary.target_accuracy()
    assert target == default_target([two_seed_run, other])
    assert [verdict.target_accuracy for verdict in summary.verdicts()] == [target, target]
    assert "all 2 runs shown (run, other)" in summary.target_bar.note.text()
    assert "(the same for run, other)" in summary.card("time_to_target").caption.text()
    assert "run: " in summary.recommendation_text() and "other: " in summary.recommendation_text()
    key = summary.key_text()
    assert "run" in key and "other" in key
    missing = summary.missing("time_to_target")
    assert any(point.series == "other" for point in missing)
    assert f"other batch size {', '.join(str(p.batch_size) for p in missing if p.series == 'other')}" in \
        summary.card("time_to_target").note.text()


def test_seed_counts_come_from_the_engine_statistics(summary, tmp_path):
    run = read_run(write_run(tmp_path / "oom.h5", batch_sizes=(16, 64), seeds=(0, 1), epochs=2, train_size=1024,
                             statuses={64: schema.OUT_OF_MEMORY}))
    summary.set_runs([run])
    table = summary.table_widget()
    seeds = {table.item(row, 0).text(): table.item(row, 1).text() for row in range(table.rowCount())}
    assert seeds == {"16": "2", "64": "2 · 2 out of memory"}
    (stats,) = [entry for _, _, entries in summary.stats() for entry in entries if entry.batch_size == 64]
    assert stats.statuses == {schema.OUT_OF_MEMORY: 2}


def test_a_card_without_any_value_numbers_no_axis(summary, two_seed_run):
    """Every batch size misses the target: the cards counting until it show only the ×, with no y axis
    numbers around them (a range made up around nothing), while the other cards keep theirs."""
    summary.set_runs([two_seed_run])
    summary.set_target_accuracy(0.999)
    assert not summary.points("steps_to_target") and summary.missing("steps_to_target")
    assert not summary.plot_item("steps_to_target").getAxis("left").style["showValues"]
    assert summary.points("throughput")
    assert summary.plot_item("throughput").getAxis("left").style["showValues"]
