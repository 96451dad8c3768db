"""The recommendation must be earned (engine.science.recommendation), in every situation a sweep can end in,
on real run files written with exact accuracies and times, and the same verdict through `report`."""
from __future__ import annotations

import json
import math
import re

import h5py
import numpy as np
import pytest

from engine import schema
from engine.analysis import by_batch_size, summarize_run, training_throughput
from engine.cli import main
from engine.data import load_dataset
from engine.events import SweepStarted
from engine.live import LiveRun
from engine.runfile import RunWriter, read_run
from engine.science import recommendation as rec
from engine.science.recommendation import default_target, judge, no_skill_baseline
from engine.sweep import run_sweep

ENVIRONMENT = {"device": "cpu", "device_name": "Test CPU"}


def write_file(path, trials, num_classes: int | None = 10, majority: float | None = 0.1, lr_grid: bool = False,
               target: float = 0.0):
    """A real run file. `trials`: (batch_size, seed, base_lr, validation accuracy per epoch, seconds per
    epoch, status). Steps and samples follow from the batch size (1024 training examples). `target`: the
    config's sweep.target_accuracy."""
    balance = {}
    if num_classes is not None:
        balance["num_classes"] = num_classes
    if majority is not None:
        balance["val_majority_fraction"] = majority
    sizes = sorted({t[0] for t in trials})
    rates = sorted({t[2] for t in trials})
    config = (f'name = "judged"\n[data]\ndataset = "mnist1d"\n[model]\nkind = "mlp"\n[train]\nlr = {rates[0]}\n'
              f'[sweep]\nbatch_sizes = {sizes}\ntarget_accuracy = {target}\n')
    writer = RunWriter(path, config, {**ENVIRONMENT, **balance})
    for batch_size, seed, base_lr, accuracies, seconds, status in trials:
        name = schema.trial_name(batch_size, seed, base_lr if lr_grid else None)
        steps_per_epoch = 1024 // batch_size
        writer.start_trial(name, {"batch_size": batch_size, "seed": seed, "lr": base_lr, "base_lr": base_lr,
                                  "parameter_count": 100, "steps_per_epoch": steps_per_epoch})
        for epoch, accuracy in enumerate(accuracies, start=1):
            step = epoch * steps_per_epoch
            writer.add_steps(name, {"step": np.array([step]), "samples": np.array([step * batch_size]),
                                    "wall_time_s": np.array([epoch * seconds]), "loss": np.array([1.0], np.float32),
                                    "lr": np.array([base_lr], np.float32), "grad_norm": np.array([1.0], np.float32)})
            writer.add_epoch(name, {"epoch": epoch, "step": step, "samples": step * batch_size,
                                    "wall_time_s": epoch * seconds, "train_loss": 1.0, "train_accuracy": accuracy,
                                    "val_loss": 1.1, "val_accuracy": accuracy,
                                    "samples_per_s": steps_per_epoch * batch_size / seconds,
                                    "peak_memory_bytes": 2**20 * batch_size})
        writer.end_trial(name, status, "" if status == schema.COMPLETED else "it broke")
    writer.close(schema.COMPLETED)
    return path


def trial(batch_size, seed, accuracies, seconds=1.0, status=schema.COMPLETED, lr=0.05):
    return (batch_size, seed, lr, accuracies, seconds, status)


def report(capsys, *args) -> tuple[int, str, str]:
    code = main(["report", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------ nothing learned


def test_a_sweep_at_chance_gets_no_recommendation(tmp_path, capsys):
    # The reported case: 10 classes, batch size 8, two seeds at 11.0% and 10.0% best accuracy.
    path = write_file(tmp_path / "chance.h5", [trial(8, 0, [0.09, 0.11]), trial(8, 1, [0.10, 0.10])])
    verdict = judge(read_run(path))
    assert verdict.outcome == rec.NOTHING_LEARNED and verdict.pick is None and verdict.batch_size is None
    assert verdict.headline == "No batch size learned"
    assert verdict.candidates[0].role == rec.DID_NOT_LEARN
    text = " ".join(verdict.reasons)
    assert "10.5%" in text and "10.0%" in text and "no batch size to recommend" in text
    assert "lower learning rate (this run used 0.05)" in " ".join(verdict.suggestions)

    code, out, _ = report(capsys, path)
    assert code == 0
    assert "Recommended" not in out and "fastest" not in out
    assert "No batch size learned" in out and "Next: Try a lower learning rate" in out


def test_learning_needs_a_margin_larger_than_the_spread_over_seeds(tmp_path):
    # 16% mean against a 10% baseline would be learning with agreeing seeds; seeds 4% and 28% apart are noise.
    agreeing = write_file(tmp_path / "agree.h5", [trial(8, 0, [0.15]), trial(8, 1, [0.17])])
    spread = write_file(tmp_path / "spread.h5", [trial(8, 0, [0.04]), trial(8, 1, [0.28])])
    assert judge(read_run(agreeing)).outcome == rec.RECOMMENDED
    assert judge(read_run(spread)).outcome == rec.NOTHING_LEARNED


def test_the_baseline_is_the_majority_class_then_chance_then_a_stated_assumption(tmp_path):
    runs = {name: read_run(write_file(tmp_path / f"{name}.h5", [trial(8, 0, [0.4])], **balance))
            for name, balance in (("majority", {"num_classes": 2, "majority": 0.7}),
                                  ("chance", {"num_classes": 10, "majority": None}),
                                  ("old", {"num_classes": None, "majority": None}))}
    assert no_skill_baseline(runs["majority"]).accuracy == pytest.approx(0.7)
    assert no_skill_baseline(runs["chance"]).accuracy == pytest.approx(0.1)
    assumed = no_skill_baseline(runs["old"])
    assert assumed.kind == "assumed" and assumed.accuracy == 0.5
    # 40% is below a 70% majority class, and below the 50% assumed for an old file; above 10% chance.
    assert judge(runs["majority"]).outcome == rec.NOTHING_LEARNED
    assert judge(runs["chance"]).outcome == rec.RECOMMENDED
    old = judge(runs["old"])
    assert old.outcome == rec.NOTHING_LEARNED and "assumed" in " ".join(old.reasons)
    assert "records the classes" in " ".join(old.suggestions)


# ------------------------------------------------------------------ one candidate, ties, accuracy beyond the noise


def test_when_only_one_batch_size_reaches_the_target_it_says_so(tmp_path):
    path = write_file(tmp_path / "one.h5", [trial(16, 0, [0.5, 0.8], 2.0), trial(64, 0, [0.4, 0.6], 1.0),
                                            trial(256, 0, [0.3, 0.5], 0.5)])
    verdict = judge(read_run(path), 0.75)
    assert verdict.pick.batch_size == 16
    assert "it is the only batch size that reached it" in verdict.reasons[0]
    assert "fastest" not in " ".join(verdict.reasons)
    assert "Learned, but did not reach the target: batch size 64 (best 60.0%), 256 (best 50.0%)." in verdict.reasons


def test_accuracy_differences_inside_the_seed_spread_are_decided_on_time(tmp_path):
    # 32: 80% and 84% (spread 4 points), 64: 82% and 83%: indistinguishable; 64 reaches 75% sooner.
    path = write_file(tmp_path / "tie.h5", [
        trial(32, 0, [0.76, 0.80], 2.0), trial(32, 1, [0.77, 0.84], 2.0),
        trial(64, 0, [0.78, 0.82], 1.0), trial(64, 1, [0.79, 0.83], 1.0)])
    verdict = judge(read_run(path), 0.75)
    assert verdict.pick.batch_size == 64
    assert verdict.role_of(32) == rec.AS_ACCURATE_SLOWER
    assert verdict.reasons[0].startswith("Every seed (2 of 2) reached the target, 75.0% validation accuracy, "
                                         "after 1.0 s")
    tie = next(line for line in verdict.reasons if line.startswith("Indistinguishable on accuracy"))
    assert "batch size 32 (82.0%, 2.0 s) differs from it by less than 4.0 percentage points, the spread over seeds" \
        in tie


def test_a_difference_beyond_the_noise_is_a_reason(tmp_path):
    # Same times, but 32 is now 10 points more accurate with seeds 1 point apart: accuracy decides.
    path = write_file(tmp_path / "clear.h5", [
        trial(32, 0, [0.80, 0.92], 2.0), trial(32, 1, [0.80, 0.93], 2.0),
        trial(64, 0, [0.78, 0.82], 1.0), trial(64, 1, [0.79, 0.83], 1.0)])
    verdict = judge(read_run(path), 0.75)
    assert verdict.pick.batch_size == 32 and verdict.role_of(64) == rec.LESS_ACCURATE
    assert "the most accurate of the 2 that reached it" in verdict.reasons[0]
    assert ("Reached the target but less accurate, by more than the noise: batch size 64 (82.5%, 1.0 s, sooner)."
            in verdict.reasons)


def test_one_seed_has_no_error_bar_and_a_stated_tolerance(tmp_path):
    # One seed: 0.6 points apart is inside the 1-point tolerance, 64 is faster.
    path = write_file(tmp_path / "single.h5", [trial(32, 0, [0.70, 0.806], 2.0), trial(64, 0, [0.78, 0.80], 1.0)])
    verdict = judge(read_run(path), 0.75)
    assert verdict.pick.batch_size == 64
    text = " ".join(verdict.reasons)
    assert "Every seed" not in text and verdict.reasons[0].startswith("Its single seed reached the target")
    assert "1 percentage point, the tolerance with a single seed" in text
    assert verdict.suggestions == ["One seed per batch size: this answer has no error bar. Run 3 or more seeds to "
                                   "see whether it holds."]


def test_many_seeds_speak_of_every_seed_and_offer_no_seed_advice(tmp_path):
    path = write_file(tmp_path / "many.h5", [trial(32, seed, [0.7, 0.8 + 0.002 * seed]) for seed in range(3)])
    verdict = judge(read_run(path), 0.75)
    assert verdict.reasons[0].startswith("Every seed (3 of 3) reached the target")
    assert "0.4 points between its seeds" in verdict.reasons[1]
    assert verdict.suggestions == []


def test_a_seed_that_diverged_or_missed_keeps_its_batch_size_out(tmp_path):
    path = write_file(tmp_path / "partial.h5", [
        trial(16, 0, [0.7, 0.9], 3.0), trial(16, 1, [0.7, 0.9], 3.0),
        trial(32, 0, [0.8, 0.9], 1.0), trial(32, 1, [0.6, 0.7], 1.0),
        trial(64, 0, [0.85], 0.5), trial(64, 1, [0.85], 0.5, schema.DIVERGED),
        trial(128, 0, [], 0.5, schema.OUT_OF_MEMORY), trial(128, 1, [], 0.5, schema.OUT_OF_MEMORY)])
    verdict = judge(read_run(path), 0.85)
    assert verdict.pick.batch_size == 16
    assert ("Learned, but did not reach the target in every seed: batch size 32 (1 of 2 seeds reached it), "
            "64 (1 of 2 diverged).") in verdict.reasons
    assert "No result: batch size 128 (2 of 2 out of memory)." in verdict.reasons


def test_no_learned_batch_size_reaches_a_target_set_too_high(tmp_path):
    path = write_file(tmp_path / "high.h5", [trial(16, 0, [0.6, 0.7]), trial(32, 0, [0.5, 0.65])])
    verdict = judge(read_run(path), 0.9)
    assert verdict.outcome == rec.NONE_REACHED and verdict.pick is None
    assert "the most accurate was batch size 16 with 70.0%" in verdict.reasons[0]
    assert verdict.suggestions == ["Lower the target to 70% or less, or train for more epochs."]


def test_no_recommendation_without_a_finished_epoch(tmp_path):
    path = write_file(tmp_path / "oom.h5", [trial(32, 0, [], status=schema.OUT_OF_MEMORY)])
    verdict = judge(read_run(path))
    assert verdict.outcome == rec.NO_RESULTS and verdict.target_accuracy is None


# ------------------------------------------------------------------ learning-rate grids


def lr_grid_run(tmp_path):
    """Batch sizes 8-512 × base lr 0.02 / 0.06 / 0.2 × 2 seeds (the reported grid). 0.2 learns nothing, 0.02
    learns slowly; 32 at 0.06 is the fastest to 80% among the accurate ones."""
    trials = []
    for batch_size, seconds in ((8, 4.0), (32, 1.5), (128, 0.8), (512, 0.4)):
        for seed in (0, 1):
            trials.append(trial(batch_size, seed, [0.09 + 0.01 * seed, 0.10], seconds, lr=0.2))
            trials.append(trial(batch_size, seed, [0.5, 0.7 + 0.002 * seed], seconds, lr=0.02))
            final = {8: 0.88, 32: 0.88, 128: 0.83, 512: 0.70}[batch_size] + 0.004 * seed
            trials.append(trial(batch_size, seed, [0.81 if batch_size <= 32 else 0.6, final], seconds, lr=0.06))
    return read_run(write_file(tmp_path / "grid.h5", trials, lr_grid=True))


def test_with_a_learning_rate_grid_the_answer_is_a_pair_and_no_line_contradicts_it(tmp_path, capsys):
    run = lr_grid_run(tmp_path)
    verdict = judge(run, 0.8)
    assert (verdict.batch_size, verdict.base_lr) == (32, 0.06)
    assert verdict.headline == "Recommended batch size: 32, base learning rate 0.06"
    assert verdict.role_of(32, 0.2) == rec.DID_NOT_LEARN and verdict.role_of(32, 0.02) == rec.MISSED_TARGET
    roles = {(c.batch_size, c.base_lr): c.role for c in verdict.candidates}
    assert len(roles) == 12 and list(roles.values()).count(rec.PICK) == 1
    # Every pair other than the pick is named once, with its learning rate; the pick only in its own lines.
    others = [line for line in verdict.reasons[2:] if not line.startswith("At batch size")]
    named = re.findall(r"(\d+) at lr ([\d.]+)", " ".join(others))
    assert sorted(named) == sorted((str(b), f"{lr:g}") for b, lr in roles if (b, lr) != (32, 0.06))
    assert "32 at lr 0.06" not in " ".join(others)
    assert not re.search(r"batch size \d+ \(", " ".join(others))      # never a bare batch size in a grid
    assert "Did not learn (not above the 10.0% baseline by more than the noise): batch size 8 at lr 0.2" in \
        " ".join(verdict.reasons)

    code, out, _ = report(capsys, run.path, "--target", 0.8)
    assert code == 0 and "Recommended batch size: 32, base learning rate 0.06" in out
    assert all(line.strip() in out for line in verdict.reasons)


# ------------------------------------------------------------------ one target, default target


def test_the_default_target_is_shared_and_ignores_runs_that_learned_nothing(tmp_path):
    good = read_run(write_file(tmp_path / "good.h5", [trial(32, 0, [0.5, 0.8])]))
    weaker = read_run(write_file(tmp_path / "weaker.h5", [trial(32, 0, [0.5, 0.6])]))
    chance = read_run(write_file(tmp_path / "chance.h5", [trial(32, 0, [0.1, 0.105])]))
    assert default_target([good]) == pytest.approx(0.72)
    assert default_target([good, weaker]) == pytest.approx(0.54)       # every run has batch sizes reaching it
    assert default_target([good, chance]) == pytest.approx(0.72)
    assert default_target([chance]) == pytest.approx(0.09)
    assert judge(good).target_accuracy == default_target([good])


def test_a_target_set_in_the_config_is_the_default(tmp_path, capsys):
    # The critical-batch preset sets one well below 90% of its best trial's, which its largest batches never reach.
    path = write_file(tmp_path / "set.h5", [trial(32, 0, [0.5, 0.8])], target=0.6)
    assert default_target([read_run(path)]) == pytest.approx(0.6)
    code, out, _ = report(capsys, path)
    assert code == 0 and "Target: 60.0% validation accuracy (the config's sweep.target_accuracy)" in out
    code, out, _ = report(capsys, path, "--target", 0.7)
    assert code == 0 and "Target: 70.0% validation accuracy (--target)" in out


# ------------------------------------------------------------------ report --json


def test_report_json_holds_the_same_verdict(tmp_path, capsys):
    run = lr_grid_run(tmp_path)
    code, out, err = report(capsys, run.path, "--json", "-", "--target", 0.8)
    assert code == 0 and "Recommended batch size" in err            # the text report moves to stderr
    document = json.loads(out)
    verdict = judge(run, 0.8)
    assert document["format"] == "batch-size-lab-report" and document["format_version"] == 1
    assert document["target_accuracy"] == 0.8 and document["target_source"] == "given"
    assert document["recommendation"] == {"outcome": "recommended", "headline": verdict.headline,
                                          "batch_size": 32, "base_lr": 0.06, "reasons": verdict.reasons,
                                          "suggestions": verdict.suggestions}
    assert document["baseline"]["kind"] == "majority_class" and document["memory_measure"] == "process"
    assert len(document["candidates"]) == 12 and len(document["trials"]) == 24
    picked = [c for c in document["candidates"] if c["role"] == "recommended"]
    assert [(c["batch_size"], c["base_lr"]) for c in picked] == [(32, 0.06)]
    assert picked[0]["statuses"] == {"completed": 2} and picked[0]["time_to_target_s"]["mean"] == 1.5
    never = next(c for c in document["candidates"] if (c["batch_size"], c["base_lr"]) == (512, 0.2))
    assert never["time_to_target_s"]["mean"] is None                   # not reached: null, not NaN or 0

    code, _, _ = report(capsys, run.path, "--json", tmp_path / "report.json")
    assert code == 0 and json.loads((tmp_path / "report.json").read_text())["target_source"] == "automatic"


def test_report_rejects_a_percentage_target_and_an_unwritable_json(tmp_path, capsys):
    path = write_file(tmp_path / "run.h5", [trial(32, 0, [0.5, 0.8])])
    code, _, err = report(capsys, path, "--target", 85)
    assert code == 2 and err.strip() == "error: --target 85: give the validation accuracy as a fraction between 0 " \
                                        "and 1, e.g. 0.85"
    code, _, err = report(capsys, path, "--json", tmp_path / "missing" / "r.json")
    assert code == 2 and err.strip().startswith("error: --json") and "Traceback" not in err


# ------------------------------------------------------------------ the numbers the verdict stands on


def test_throughput_is_over_the_whole_trial_and_status_counts_are_per_batch_size(tmp_path):
    path = write_file(tmp_path / "run.h5", [trial(32, 0, [0.5, 0.8], 2.0), trial(32, 1, [0.5], 2.0, schema.DIVERGED)])
    run = read_run(path)
    first = run.trials[0]
    assert training_throughput(first) == pytest.approx(2048 / 4.0)
    assert summarize_run(run)[0].samples_per_s == training_throughput(first)
    (stats,) = by_batch_size(summarize_run(run))
    assert stats.statuses == {"completed": 1, "diverged": 1} and stats.failed() == {"diverged": 1}
    assert stats.spread["best_val_accuracy"] == pytest.approx(0.3)
    assert math.isnan(by_batch_size(summarize_run(read_run(write_file(
        tmp_path / "one.h5", [trial(8, 0, [0.5])]))))[0].spread["best_val_accuracy"])


def test_a_sweep_records_the_validation_class_balance(tiny_config, tmp_path):
    config = tiny_config(train={"epochs": 1}, sweep={"batch_sizes": [64]})
    events = []
    run = read_run(run_sweep(config, tmp_path, on_event=events.append))
    labels = load_dataset(config.data).y_val
    counts = np.bincount(labels.numpy(), minlength=3)
    assert run.num_classes == 3
    assert run.val_majority_fraction == pytest.approx(counts.max() / counts.sum())
    live = LiveRun()
    live.apply(next(event for event in events if isinstance(event, SweepStarted)))
    assert (live.run.num_classes, live.run.val_majority_fraction) == (run.num_classes, run.val_majority_fraction)


def test_report_says_so_far_for_a_run_that_is_not_finished(tmp_path, capsys):
    path = write_file(tmp_path / "run.h5", [trial(32, 0, [0.5, 0.8])])
    with h5py.File(path, "r+") as handle:
        handle.attrs["status"] = schema.RUNNING
    code, out, _ = report(capsys, path)
    assert code == 0 and "Recommended batch size: 32 (so far: the run is not finished)" in out
