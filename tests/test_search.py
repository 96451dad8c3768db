"""Search strategies (engine/search): the [sweep] keys, proposals inside the range and reproducible from the
seed, what each trial records, pruning, and a search resumed from its run file going on where it stopped.

Tests about a strategy's choices drive it with an analytic objective instead of training (a fake trial record
built from a formula), so they cost milliseconds; the tests about the file, pruning in training, the report and
kill -9 train a tiny model for real."""
from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import optuna
import pytest
import tomli_w
from PIL import Image

from tests.conftest import ROOT, frozen_where_whole, tiny_table
from engine import schema
from engine.config import applies, parse_config
from engine.errors import ConfigError
from engine.live import LiveRun
from engine.hardware.threads import ThreadPolicy, set_thread_policy, thread_policy
from engine.runfile import TrialData, read_run
from engine.search import make_strategy
from engine.search.optuna_search import STUDY_NAME
from engine.search.shared import journal_storage
from engine.search.results import TrialResult
from engine.sweep import run_sweep

SEARCH = {"strategy": "random", "trials": 8, "batch_size_min": 4, "batch_size_max": 128, "device": "cpu"}


def search_config(**sweep):
    return parse_config(tiny_table(train={"epochs": 2}, sweep={**SEARCH, **sweep}))


# ----------------------------------------------------------------------------------------- config keys

@pytest.mark.parametrize("sweep, key", [
    ({"batch_size_min": 64, "batch_size_max": 16}, "sweep.batch_size_min"),
    ({"batch_size_min": 9, "batch_size_max": 15, "powers_of_two": True}, "sweep.powers_of_two"),
    ({"objective": "time_to_target"}, "sweep.target_accuracy"),
    ({"objective": "samples_to_target", "target_accuracy": 0.0}, "sweep.target_accuracy"),
    ({"trials": 0}, "sweep.trials"),
    ({"strategy": "genetic"}, "sweep.strategy"),
    ({"lr_min": 0.01}, "sweep.lr_max"),
    ({"lr_min": 0.5, "lr_max": 0.1}, "sweep.lr_min"),
    ({"strategy": "grid", "pruner": "median"}, "sweep.pruner"),
    ({"strategy": "start-small", "pruner": "hyperband"}, "sweep.pruner"),
    ({"batch_size_max": 100_000}, "sweep.batch_size_max"),
    ({"batch_size_min": 1, "batch_size_max": 8, "powers_of_two": False}, "sweep.batch_size_min"),
    ({"parallel": "auto"}, "sweep.parallel"),
    ({"strategy": "start-small", "parallel": 2}, "sweep.parallel"),
])
def test_each_invalid_search_config_is_one_error_naming_its_key(sweep, key):
    with pytest.raises(ConfigError) as error:
        parse_config(tiny_table(model={"batch_norm": True}, sweep={**SEARCH, **sweep}))
    assert [problem.key for problem in error.value.problems] == [key], error.value.problems
    assert key in str(error.value.problems[0])


def test_a_grid_is_checked_as_before_and_a_search_ignores_the_grid_list():
    table = tiny_table(sweep={"batch_sizes": [16, 1000]})
    with pytest.raises(ConfigError, match="sweep.batch_sizes contains 1000"):
        parse_config(table)
    # A search does not train the grid's list: its batch sizes are the range.
    table["sweep"].update(SEARCH)
    assert parse_config(table).sweep.strategy == "random"


def test_grid_and_search_fields_show_only_where_they_apply():
    grid, bayesian = {"sweep": {"strategy": "grid"}}, {"sweep": {"strategy": "bayesian"}}
    start_small = {"sweep": {"strategy": "start-small"}}
    for key in ("sweep.batch_sizes", "sweep.learning_rates"):
        assert applies(key, grid) and not applies(key, bayesian)
    for key in ("sweep.trials", "sweep.lr_min", "sweep.lr_max", "sweep.pruner"):
        assert applies(key, bayesian) and not applies(key, grid) and not applies(key, start_small)
    for key in ("sweep.batch_size_min", "sweep.batch_size_max", "sweep.powers_of_two", "sweep.objective",
                "sweep.search_seed"):
        assert applies(key, bayesian) and applies(key, start_small) and not applies(key, grid)
    assert not applies("sweep.target_accuracy", bayesian)
    assert applies("sweep.target_accuracy", {"sweep": {"strategy": "random", "objective": "time_to_target"}})


# ------------------------------------------------------- strategies on an analytic objective (no training)

TRAIN_SIZE = 240


def accuracy_at(batch_size: int, lr: float, samples: float) -> float:
    """A made-up learning curve: best near batch size 32 and lr 0.1, approached as examples are seen."""
    quality = math.exp(-0.5 * (math.log2(batch_size / 32) / 1.5) ** 2 - 0.5 * (math.log10(lr / 0.1) / 0.7) ** 2)
    return 0.3 + 0.6 * quality * (1 - math.exp(-samples / 300))


def fake_trial(spec, config, after_evaluation=None) -> TrialData:
    """What training `spec` would record under accuracy_at, evaluations every 100 examples; the pruner hook is
    called as engine.train calls it."""
    steps_per_epoch = TRAIN_SIZE // spec.batch_size
    total = config.train.epochs * steps_per_epoch
    rows, status, error = [], schema.COMPLETED, ""
    for samples in range(100, total * spec.batch_size + 1, 100):
        step = math.ceil(samples / spec.batch_size)
        rows.append({"step": step, "samples": step * spec.batch_size, "wall_time_s": step * 0.01,
                     "val_loss": 1.0, "val_accuracy": accuracy_at(spec.batch_size, spec.lr, samples)})
        if after_evaluation is not None and step < total and (reason := after_evaluation(spec, rows[-1])):
            status, error = schema.PRUNED, reason
            break
    last = rows[-1]
    epoch = {m.name: np.asarray([last.get(m.name, 1)], dtype=m.dtype) for m in schema.EPOCH_METRICS}
    epoch["val_accuracy"] = np.asarray([max(r["val_accuracy"] for r in rows)])
    return TrialData(name=spec.name, batch_size=spec.batch_size, seed=spec.seed, lr=spec.lr, base_lr=spec.base_lr,
                     status=status, error=error, parameter_count=1, steps_per_epoch=steps_per_epoch, epoch=epoch,
                     step={m.name: np.empty(0, m.dtype) for m in schema.STEP_METRICS},
                     eval={m.name: np.asarray([r[m.name] for r in rows], dtype=m.dtype) for m in schema.EVAL_METRICS},
                     proposed_by=spec.proposed_by, search_point=spec.search_point)


def drive(config, finished=None, stop_after=None):
    """Run a strategy on the analytic objective; returns (every trial trained in order, the strategy)."""
    strategy = make_strategy(config, [])
    finished = dict(finished or {})
    trained = []
    while (spec := strategy.propose(finished)) is not None and (stop_after is None or len(trained) < stop_after):
        trial = fake_trial(spec, config, strategy.after_evaluation)
        strategy.tell(TrialResult(spec, trial))
        trained.append((spec, trial))
    return trained, strategy


def points_of(trained):
    return [(spec.search_point, spec.batch_size, round(spec.lr, 12), spec.seed) for spec, _ in trained]


@pytest.mark.parametrize("strategy", ["random", "bayesian", "start-small"])
@pytest.mark.parametrize("powers", [True, False])
def test_every_proposal_is_inside_the_range_and_reproducible_from_the_search_seed(strategy, powers):
    lr = {"lr_min": 0.01, "lr_max": 0.5} if strategy != "start-small" else {}
    config = search_config(strategy=strategy, powers_of_two=powers, batch_size_min=5, batch_size_max=100,
                           trials=12, **lr)
    trained, _ = drive(config)
    assert trained
    for spec, _ in trained:
        assert 5 <= spec.batch_size <= 100
        assert spec.proposed_by == strategy
        if powers:
            assert spec.batch_size & (spec.batch_size - 1) == 0, spec.batch_size
        if lr:
            assert 0.01 <= spec.lr <= 0.5
    if not powers and strategy != "start-small":
        assert any(spec.batch_size & (spec.batch_size - 1) for spec, _ in trained)   # not only powers of two
    assert points_of(drive(config)[0]) == points_of(trained)
    if strategy != "start-small":   # start-small is a procedure: no randomness for the seed to change
        other = search_config(strategy=strategy, powers_of_two=powers, batch_size_min=5, batch_size_max=100,
                              trials=12, search_seed=1, **lr)
        assert points_of(drive(other)[0]) != points_of(trained)


def test_every_seed_trains_every_point_and_the_point_is_scored_by_their_mean():
    config = parse_config(tiny_table(train={"epochs": 2, "seeds": [0, 1, 2]}, sweep={**SEARCH, "trials": 3, "lr_min": 0.01,
                                                                                   "lr_max": 0.5}))
    trained, strategy = drive(config)
    assert [spec.seed for spec, _ in trained] == [0, 1, 2] * 3
    assert len({spec.name for spec, _ in trained}) == 9
    for point in range(3):
        values = [trial.epoch["val_accuracy"][0] for spec, trial in trained if spec.search_point == point]
        assert strategy.study.trials[point].value == pytest.approx(np.mean(values))


def test_start_small_doubles_while_it_improves_then_refines_and_says_why_it_stopped():
    config = search_config(strategy="start-small", powers_of_two=False, batch_size_min=4, batch_size_max=256)
    trained, strategy = drive(config)
    sizes = [spec.batch_size for spec, _ in trained]
    # accuracy_at peaks at 32 and the doubling goes on until a size is no better than the one before.
    assert sizes[:5] == [4, 8, 16, 32, 64]
    assert sizes[5:] == [23, 45]                 # half-way (log scale) between 32 and each neighbour
    assert "doubling stopped at batch size 64" in strategy.conclusion
    assert strategy.conclusion.endswith("best batch size 32")


def test_pruned_points_stop_early_and_their_other_seeds_are_not_trained():
    config = parse_config(tiny_table(train={"epochs": 3, "seeds": [0, 1]},
                                     sweep={**SEARCH, "trials": 10, "pruner": "median", "lr_min": 0.001,
                                            "lr_max": 1.0}))
    trained, strategy = drive(config)
    pruned = [(spec, trial) for spec, trial in trained if trial.status == schema.PRUNED]
    assert pruned, "the analytic objective has clearly hopeless points"
    for spec, trial in pruned:
        assert spec.seed == 0 and "worse than the median" in trial.error
        assert not any(s.search_point == spec.search_point and s.seed == 1 for s, _ in trained)
    assert "pruned" in strategy.conclusion


@pytest.mark.parametrize("strategy, pruner", [("random", "median"), ("bayesian", "hyperband"),
                                              ("bayesian", "none"), ("start-small", "none")])
def test_a_strategy_told_the_stored_trials_proposes_what_the_uninterrupted_search_proposed(strategy, pruner):
    lr = {"lr_min": 0.001, "lr_max": 1.0} if strategy != "start-small" else {}
    config = parse_config(tiny_table(train={"epochs": 3, "seeds": [0, 1]},
                                     sweep={**SEARCH, "strategy": strategy, "trials": 14, "pruner": pruner,
                                            "powers_of_two": False, **lr}))
    whole, _ = drive(config)
    for cut in (1, len(whole) // 2, len(whole) - 1):
        finished = {spec.name: trial for spec, trial in whole[:cut]}
        rest, _ = drive(config, finished)
        assert points_of(whole[:cut] + rest) == points_of(whole), cut


# -------------------------------------------------------------------- real training: file, report, resume

def test_a_search_records_its_proposals_objectives_and_pruned_trials_and_report_counts_them(tmp_path, capsys):
    from engine.cli import main
    config = parse_config(tiny_table(train={"epochs": 3}, sweep={**SEARCH, "trials": 8, "pruner": "median",
                                                                 "lr_min": 0.0005, "lr_max": 1.0}))
    live = LiveRun()
    path = run_sweep(config, tmp_path, on_event=live.apply)
    run = read_run(path)
    assert {t.proposed_by for t in run.trials} == {"random"}
    # The app's live view of the search is what the file holds.
    for shown, saved in zip(live.run.trials, run.trials, strict=True):
        assert (shown.name, shown.proposed_by, shown.search_point, shown.pruned_step) == \
            (saved.name, saved.proposed_by, saved.search_point, saved.pruned_step)
        assert shown.objective == saved.objective or math.isnan(shown.objective) and math.isnan(saved.objective)
    assert sorted(t.search_point for t in run.trials) == list(range(8))
    for trial in run.trials:
        assert 4 <= trial.batch_size <= 128 and 0.0005 <= trial.lr <= 1.0
        if trial.status == schema.COMPLETED:
            assert trial.objective == pytest.approx(np.max(trial.epoch["val_accuracy"]))
        else:
            assert math.isnan(trial.objective)
    pruned = [t for t in run.trials if t.status == schema.PRUNED]
    assert pruned, [(t.name, t.status) for t in run.trials]
    with h5py.File(path, "r") as handle:
        for trial in pruned:
            attrs = handle[schema.TRIALS_GROUP][trial.name].attrs
            assert attrs["pruned_step"] == trial.eval["step"][-1] > 0
            assert "pruned at step" in attrs["error"]
    assert main(["report", str(path), "--json", str(tmp_path / "r.json"), "--png", str(tmp_path / "r.png")]) == 0
    out = capsys.readouterr().out
    # The Search tab's panels beside the summary figure: the worst scored point is drawn plasma's dark purple.
    pixels = np.asarray(Image.open(tmp_path / "r-search.png").convert("RGB")).reshape(-1, 3).astype(int)
    assert ((pixels[:, 2] > 120) & (pixels[:, 1] < 40) & (pixels[:, 0] < 110)).any()
    assert f"pruned: {len(pruned)} of 8 points" in out and "#1: batch size" in out
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["search"]["pruned_points"] == len(pruned)
    best = document["search"]["best"][0]
    assert best["score"] == max(p["score"] for p in document["search"]["points"] if p["score"] is not None)


def _peek(folder: Path) -> dict[str, str]:
    for path in folder.glob("*.h5"):
        try:
            with h5py.File(path, "r", locking=False) as handle:
                trials = handle[schema.TRIALS_GROUP]
                return {name: trials[name].attrs["status"] for name in trials}
        except (OSError, KeyError, RuntimeError, ValueError):   # caught mid-write
            return {}
    return {}


def test_kill_9_mid_search_then_resume_continues_the_same_study(tmp_path):
    from engine.cli import main
    table = tiny_table(data={"num_samples": 600}, train={"epochs": 2, "seeds": [0, 1]},
                       sweep={**SEARCH, "strategy": "bayesian", "trials": 5, "pruner": "median", "lr_min": 0.01,
                              "lr_max": 0.5})
    config = tmp_path / "search.toml"
    config.write_text(tomli_w.dumps(table))
    whole = tmp_path / "whole"
    before = thread_policy()
    set_thread_policy(ThreadPolicy(requested=1))   # as --threads 1 in the child processes: bit-identical sums
    try:
        run_sweep(parse_config(table), whole)
    finally:
        set_thread_policy(before)
    killed = tmp_path / "killed"
    killed.mkdir()
    process = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "run", str(config), "--out", str(killed),
                                "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:   # kill once three trials have ended and one runs: mid-point, the second seed's turn or later
        while process.poll() is None and time.monotonic() < deadline:
            statuses = list(_peek(killed).values())
            if len(statuses) >= 4 and schema.RUNNING in statuses:
                if frozen_where_whole(process, next(killed.glob("*.h5"))):
                    break
            time.sleep(0.002)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the search ended before the kill landed"
    path = next(killed.glob("*.h5"))
    assert read_run(path).header.status == schema.RUNNING
    try:   # in this process, as the uninterrupted search was
        assert main(["run", "--resume", str(path), "--threads", "1"]) == 0
    finally:
        set_thread_policy(before)

    def proposals(run_path):
        run = read_run(run_path)
        return sorted((t.search_point, t.seed, t.batch_size, t.lr, t.status, round(t.objective, 9)
                       if math.isfinite(t.objective) else None) for t in run.trials)
    assert proposals(path) == proposals(next(whole.glob("*.h5")))


def _study_has_trials(journal: Path) -> bool:
    if not journal.exists():
        return False
    try:
        return bool(optuna.load_study(study_name=STUDY_NAME, storage=journal_storage(str(journal))).trials)
    except KeyError:   # the journal file exists a moment before the study's record is in it
        return False


def test_two_processes_share_one_study_through_a_journal_file_and_report_merges_their_files(tmp_path, capsys):
    from engine.cli import main
    table = tiny_table(data={"num_samples": 600}, train={"epochs": 2},
                       sweep={**SEARCH, "strategy": "bayesian", "trials": 6, "lr_min": 0.01, "lr_max": 0.5})
    config = tmp_path / "search.toml"
    config.write_text(tomli_w.dumps(table))
    journal = tmp_path / "study.journal"
    before = thread_policy()
    child = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "run", str(config), "--out", str(tmp_path / "a"),
                              "--storage", str(journal), "--threads", "1"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:   # this process joins once the child has asked the study for its first point
        deadline = time.monotonic() + 120
        while not _study_has_trials(journal) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert main(["run", str(config), "--out", str(tmp_path / "b"), "--storage", str(journal), "--threads", "1"]) == 0
    finally:
        set_thread_policy(before)
        out, err = child.communicate(timeout=180)
    assert child.returncode == 0, err
    files = [next((tmp_path / name).glob("*.h5")) for name in ("a", "b")]
    points = [{t.search_point for t in read_run(path).trials} for path in files]
    assert all(points), "both processes trained points of the study"
    assert not points[0] & points[1], "no point was trained twice"
    # Every point of the study counts; two processes asking at once may each add one beyond the budget.
    assert 6 <= len(points[0] | points[1]) <= 7
    assert main(["report", *map(str, files)]) == 0
    assert f"Search (bayesian): {len(points[0] | points[1])} points trained" in capsys.readouterr().out


def test_a_shared_study_in_a_database(tmp_path, capsys):
    from engine.cli import main
    table = tiny_table(sweep={**SEARCH, "strategy": "random", "trials": 2})
    config = tmp_path / "search.toml"
    config.write_text(tomli_w.dumps(table))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["run", str(config), "--out", str(tmp_path / "a"), "--storage", url, "--threads", "1"]) == 0
    study = optuna.load_study(study_name=STUDY_NAME, storage=url)
    assert len(study.trials) == 2
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(tmp_path / "b"), "--storage", "nosuchdb://x/y"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --storage nosuchdb://x/y: cannot open this database") and "\n" not in error


def test_a_shared_study_is_refused_where_it_cannot_apply(tmp_path, capsys):
    from engine.cli import main
    config = tmp_path / "grid.toml"
    config.write_text(tomli_w.dumps(tiny_table()))
    assert main(["run", str(config), "--out", str(tmp_path), "--storage", str(tmp_path / "j")]) == 2
    assert "--storage" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--resume", str(tmp_path / "x.h5"), "--storage", str(tmp_path / "j")])
    assert "--storage does not apply" in capsys.readouterr().err
