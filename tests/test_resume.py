"""Resuming an interrupted sweep in its own file: killed for real (kill -9 from another process at several
moments), stopped, resumed again; the numbers must equal an uninterrupted sweep's, finished trials must stay
untouched and partial attempts must be kept."""
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import tomli_w
import torch

from engine import schema
from engine.cli import main as cli_main
from engine.config import parse_config
from engine.errors import RunFileError
from engine.events import EpochEnded, SweepStarted, TrialEnded
from engine.live import LiveRun
from engine.resume import NothingToResume, plan_resume, resume_sweep
from engine.runfile import TrialData, read_attempts, read_run
from engine.sweep import run_sweep
from tests.conftest import ROOT, frozen_where_whole, tiny_table

# Timing, memory and throughput differ from run to run; everything else must be equal to the last bit.
UNTIMED_EPOCH = [m.name for m in schema.EPOCH_METRICS if m.name not in ("wall_time_s", "samples_per_s",
                                                                          "peak_memory_bytes")]
UNTIMED_STEP = [m.name for m in schema.STEP_METRICS if m.name != "wall_time_s"]
# The first trial has 240 steps per epoch, so each of its epochs lasts long enough to be caught by polling.
TABLE = tiny_table(data={"num_samples": 1200}, train={"epochs": 2}, sweep={"batch_sizes": [4, 32, 64]})
THREADS = 1   # the same thread count everywhere: CPU sums are only bit-identical for the same split of work


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory) -> Path:
    """The uninterrupted sweep, trained once for every test here."""
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return run_sweep(parse_config(TABLE), tmp_path_factory.mktemp("reference"))
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(reference_file) -> dict[str, TrialData]:
    return {trial.name: trial for trial in read_run(reference_file).trials}


def assert_same_numbers(trial: TrialData, expected: TrialData, rows: int | None = None) -> None:
    """Equal epoch and step metrics (all rows, or the first `rows` epochs and their steps)."""
    epochs = expected.epochs_done if rows is None else rows
    steps = epochs * expected.steps_per_epoch if rows is not None else len(expected.step["step"])
    assert trial.epochs_done == epochs, trial.name
    for name in UNTIMED_EPOCH:
        np.testing.assert_array_equal(trial.epoch[name], expected.epoch[name][:epochs], err_msg=name)
    for name in UNTIMED_STEP:
        np.testing.assert_array_equal(trial.step[name][:steps], expected.step[name][:steps], err_msg=name)


def assert_resumed_like(path: Path, reference: dict[str, TrialData], kept: dict[str, TrialData]) -> None:
    run = read_run(path)
    assert run.header.status == schema.COMPLETED
    assert [t.name for t in run.trials] == list(reference)
    for trial in run.trials:
        assert trial.status == schema.COMPLETED
        assert_same_numbers(trial, reference[trial.name])
    for name, before in kept.items():   # untouched: even their timings are the ones first written
        after = next(t for t in run.trials if t.name == name)
        for group in ("epoch", "step"):
            for key, values in getattr(before, group).items():
                np.testing.assert_array_equal(getattr(after, group)[key], values)


# ---------------------------------------------------------------- kill -9 from another process

def _cli(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _peek(folder: Path) -> tuple[Path, dict[str, tuple[str, int]]] | None:
    """The file being written and each trial's (status, epochs), read without the writer's lock; None while
    there is no file yet or it was caught mid-write."""
    for path in folder.glob("*.h5"):
        try:
            with h5py.File(path, "r", locking=False) as handle:
                trials = handle[schema.TRIALS_GROUP]
                return path, {name: (trials[name].attrs["status"], len(trials[name]["epoch"]["epoch"]))
                              for name in trials}
        except (OSError, KeyError, RuntimeError, ValueError):   # what h5py raises for a file caught mid-write
            return None
    return None


def _kill_when(folder: Path, moment, timeout=90.0) -> tuple[Path, dict[str, tuple[str, int]]] | None:
    """Start a sweep in a child process, SIGKILL it as soon as the file shows `moment`, return what the file
    holds afterwards; None when the sweep ended before the moment was seen."""
    folder.mkdir()
    config = folder / "experiment.toml"
    config.write_text(tomli_w.dumps(TABLE))
    process = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "run", str(config), "--out", str(folder),
                                "--threads", str(THREADS)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            seen = _peek(folder)
            if seen is not None and moment(seen[1]):
                # Frozen, then killed only where its file reads whole: a poller that sees a new epoch at once is
                # apt to land inside the writer's short save, the one moment a run file is not promised to
                # survive (engine/runfile.py), and on a loaded machine it did.
                if frozen_where_whole(process, seen[0]):
                    break
            time.sleep(0.005)
    finally:
        process.kill()
        process.wait(timeout=30)
    if process.returncode != -signal.SIGKILL:
        return None
    path = next(folder.glob("*.h5"))
    return path, {t.name: (t.status, t.epochs_done) for t in read_run(path).trials}


FIRST, SECOND, THIRD = "bs00004_seed0", "bs00032_seed0", "bs00064_seed0"
MOMENTS = {
    "before any epoch": lambda trials: trials.get(FIRST, ("", 1))[1] == 0,
    "mid-trial": lambda trials: trials.get(FIRST, ("", 0)) == (schema.RUNNING, 1),
    "after the first trial": lambda trials: trials.get(FIRST, ("",))[0] == schema.COMPLETED,
}


@pytest.mark.parametrize("moment", MOMENTS)
def test_kill_9_then_resume_gives_the_numbers_of_an_uninterrupted_sweep(tmp_path, reference, moment):
    seen = []
    for attempt in range(3):   # polling may see the moment late, or not at all on a busy machine: try again
        killed = _kill_when(tmp_path / f"try{attempt}", MOMENTS[moment])
        seen.append(killed and killed[1])
        if killed is not None and MOMENTS[moment](killed[1]):
            path = killed[0]
            break
    else:
        pytest.fail(f"the kill never landed {moment}: {seen}")
    killed = read_run(path)
    assert killed.header.status == schema.RUNNING
    finished = {t.name: t for t in killed.trials if t.status == schema.COMPLETED}
    interrupted = [t for t in killed.trials if t.status == schema.RUNNING]
    assert len(interrupted) <= 1

    result = _cli("run", "--resume", path, "--threads", THREADS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(path)
    assert "Traceback" not in result.stderr
    assert_resumed_like(path, reference, finished)
    # The partial attempt is kept, and its epochs were the same numbers as well.
    attempts = read_attempts(path)
    assert set(attempts) == {t.name for t in interrupted}
    for partial in interrupted:
        [attempt] = attempts[partial.name]
        assert attempt.status == schema.RUNNING
        assert_same_numbers(attempt, reference[partial.name], rows=partial.epochs_done)
    with h5py.File(path, "r") as handle:
        assert len(handle.attrs[schema.RESUMED_ATTR]) == 1
        for partial in interrupted:
            attrs = handle[f"{schema.ATTEMPTS_GROUP}/{partial.name}/1"].attrs
            assert attrs["attempt_of"] == partial.name and attrs["attempt"] == 1


def test_a_run_stopped_by_the_file_size_limit_resumes_to_the_same_numbers(tmp_path, reference, reference_file):
    resource = pytest.importorskip("resource")
    limit = reference_file.stat().st_size * 2 // 3   # room for some trials, not for all of them
    config = tmp_path / "experiment.toml"
    config.write_text(tomli_w.dumps(TABLE))
    stopped = subprocess.run([sys.executable, str(ROOT / "main.py"), "run", str(config), "--out", str(tmp_path),
                              "--threads", str(THREADS)], capture_output=True, text=True, timeout=120,
                             preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert stopped.returncode == 3 and "file size limit" in stopped.stderr, stopped.stderr
    path = next(tmp_path.glob("*.h5"))
    before = read_run(path)
    assert before.header.status == schema.FAILED and before.trials[-1].status == schema.FAILED
    finished = {t.name: t for t in before.trials[:-1]}
    assert all(t.status == schema.COMPLETED for t in finished.values())

    result = _cli("run", "--resume", path, "--threads", THREADS)
    assert result.returncode == 0, result.stderr
    assert_resumed_like(path, reference, finished)
    [attempt] = read_attempts(path)[before.trials[-1].name]
    assert attempt.status == schema.FAILED and "file size limit" in attempt.error


# ---------------------------------------------------------------- Stop, and resuming a resume

def _stop_after(stop: threading.Event, trial_index: int, epoch: int):
    def on_event(event) -> None:
        if isinstance(event, EpochEnded) and event.trial.index == trial_index and event.metrics["epoch"] == epoch:
            stop.set()
    return on_event


def test_a_stopped_sweep_resumed_twice_keeps_every_attempt(tmp_path, reference, one_thread, capsys):
    stop = threading.Event()
    path = run_sweep(parse_config(TABLE), tmp_path, stop=stop, on_event=_stop_after(stop, 0, 1))
    stopped = read_run(path)
    assert stopped.header.status == schema.CANCELLED
    assert [(t.name, t.status, t.epochs_done) for t in stopped.trials] == [(FIRST, schema.CANCELLED, 1)]

    plan = plan_resume(path)
    assert [s.name for s in plan.to_train] == [FIRST, SECOND, THIRD] and not plan.finished
    assert "bs00004_seed0 interrupted after 1 epoch" in plan.summary()
    stop.clear()
    resume_sweep(plan, stop=stop, on_event=_stop_after(stop, 1, 1))
    once = read_run(path)
    assert once.header.status == schema.CANCELLED
    assert [(t.name, t.status) for t in once.trials] == [(FIRST, schema.COMPLETED), (SECOND, schema.CANCELLED)]

    plan = plan_resume(path)
    assert plan.finished == {FIRST: schema.COMPLETED} and [s.name for s in plan.to_train] == [SECOND, THIRD]
    events = []
    resume_sweep(plan, on_event=events.append)
    assert_resumed_like(path, reference, {FIRST: once.trials[0]})
    attempts = read_attempts(path)
    assert [(a.status, a.epochs_done) for a in attempts[FIRST]] == [(schema.CANCELLED, 1)]
    assert [(a.status, a.epochs_done) for a in attempts[SECOND]] == [(schema.CANCELLED, 1)]
    assert_same_numbers(attempts[FIRST][0], reference[FIRST], rows=1)
    with h5py.File(path, "r") as handle:
        assert len(handle.attrs[schema.RESUMED_ATTR]) == 2
    assert cli_main(["report", str(path)]) == 0
    report = capsys.readouterr().out
    assert f"{FIRST}: trained again by a resume; the earlier attempt (cancelled after 1 epoch) kept" in report
    assert f"{SECOND}: trained again by a resume" in report and f"{THIRD}: trained again" not in report

    # The kept trial is shown to observers as well, so a live view of the resumed sweep is the whole file.
    started = next(e for e in events if isinstance(e, SweepStarted))
    assert [t.name for t in started.trials] == [FIRST, SECOND, THIRD]
    assert [e.trial.name for e in events if isinstance(e, TrialEnded)] == [FIRST, SECOND, THIRD]
    live = LiveRun()
    for event in events:
        live.apply(event)
    for trial in read_run(path).trials:
        shown = next(t for t in live.run.trials if t.name == trial.name)
        for name in UNTIMED_EPOCH:
            np.testing.assert_array_equal(shown.epoch[name], trial.epoch[name])
        for name in ("step", "samples", "val_accuracy"):     # the scheduled evaluations are shown again too
            np.testing.assert_array_equal(shown.eval[name], trial.eval[name])


def test_trials_are_matched_by_what_they_are_not_by_their_names(tmp_path, one_thread):
    stop = threading.Event()
    path = run_sweep(parse_config(TABLE), tmp_path, stop=stop, on_event=_stop_after(stop, 1, 1))
    with h5py.File(path, "r+") as handle:   # as a file whose trials were named by another naming rule
        handle.move(f"{schema.TRIALS_GROUP}/{FIRST}", f"{schema.TRIALS_GROUP}/first")
    plan = plan_resume(path)
    assert plan.finished == {"first": schema.COMPLETED} and [s.name for s in plan.to_train] == [SECOND, THIRD]
    resume_sweep(plan)
    assert sorted(t.name for t in read_run(path).trials) == sorted(["first", SECOND, THIRD])


def test_the_trial_a_write_error_stopped_is_trained_again_and_a_trial_that_failed_is_kept(tmp_path, reference,
                                                                                        one_thread):
    stop = threading.Event()
    path = run_sweep(parse_config(TABLE), tmp_path, stop=stop, on_event=_stop_after(stop, 1, 1))
    # What the writer leaves after a full disk: the trial it was writing and the run marked failed with the
    # reason. The first trial failed by itself, as a trial whose training raised does.
    with h5py.File(path, "r+") as handle:
        trials = handle[schema.TRIALS_GROUP]
        trials[SECOND].attrs["status"] = schema.FAILED
        trials[SECOND].attrs["error"] = f"disk full writing {path}; the run stopped"
        trials[FIRST].attrs["status"] = schema.FAILED
        trials[FIRST].attrs["error"] = "RuntimeError: a failure of the trial's own"
        handle.attrs["status"] = schema.FAILED
    plan = plan_resume(path)
    assert plan.finished == {FIRST: schema.FAILED} and [s.name for s in plan.interrupted] == [SECOND]
    resume_sweep(plan)
    run = read_run(path)
    assert run.header.status == schema.COMPLETED
    assert [t.status for t in run.trials] == [schema.FAILED, schema.COMPLETED, schema.COMPLETED]
    for trial in run.trials[1:]:
        assert_same_numbers(trial, reference[trial.name])
    [attempt] = read_attempts(path)[SECOND]
    assert attempt.status == schema.FAILED and attempt.error.startswith("disk full")


# ---------------------------------------------------------------- what cannot be resumed

def test_a_completed_run_says_so_and_is_left_as_it_was(tmp_path, capsys):
    path = run_sweep(parse_config(tiny_table(sweep={"batch_sizes": [32]})), tmp_path)
    before = path.read_bytes()
    with pytest.raises(NothingToResume, match="already complete"):
        resume_sweep(plan_resume(path))
    assert cli_main(["run", "--resume", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(path)
    assert captured.err.strip() == f"{path}: already complete, all 1 trials finished; nothing to resume"
    assert path.read_bytes() == before


def _one_error_line(capsys, argv: list[str]) -> str:
    assert cli_main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


def test_files_that_cannot_be_resumed_are_one_clear_line(tmp_path, capsys):
    path = run_sweep(parse_config(tiny_table(sweep={"batch_sizes": [32]})), tmp_path)
    assert "no such file" in _one_error_line(capsys, ["run", "--resume", str(tmp_path / "missing.h5")])
    notes = tmp_path / "notes.h5"
    notes.write_text("hello")
    assert "not a Batch Size Lab run file" in _one_error_line(capsys, ["run", "--resume", str(notes)])

    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(path.read_bytes()[:2000])
    assert "damaged.h5" in _one_error_line(capsys, ["run", "--resume", str(damaged)])

    newer = tmp_path / "newer.h5"
    newer.write_bytes(path.read_bytes())
    with h5py.File(newer, "r+") as handle:
        handle.attrs["format_version"] = schema.FORMAT_VERSION + 1
    assert "written by a newer Batch Size Lab" in _one_error_line(capsys, ["run", "--resume", str(newer)])

    moved = tmp_path / "moved.h5"
    moved.write_bytes(path.read_bytes())
    with h5py.File(moved, "r+") as handle:
        handle.attrs["config"] = tomli_w.dumps(tiny_table(data={"dataset": str(tmp_path / "gone.csv")}))
        handle.attrs["status"] = schema.CANCELLED
    line = _one_error_line(capsys, ["run", "--resume", str(moved)])
    assert "moved.h5: stored config: data.dataset" in line and "no such file" in line

    # Arguments: a resumed sweep takes its config from the file and writes into it.
    for argv in (["run", "--resume", str(path), "experiment.toml"], ["run", "--resume", str(path), "--out", "x"],
                 ["run"], ["run", "experiment.toml"]):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(argv)
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: run")


def _hold_open_for_writing(path: Path, status: str) -> subprocess.Popen:
    """Another process with the file open for writing (HDF5 locks it), its status set as that writer would."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, h5py; f = h5py.File(sys.argv[1], 'r+'); "
                               "f.attrs['status'] = sys.argv[2]; f.flush(); print('open', flush=True); "
                               "sys.stdin.read()", str(path), status],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    return holder


def test_a_run_still_being_written_is_not_resumed(tmp_path):
    stop = threading.Event()
    path = run_sweep(parse_config(TABLE), tmp_path, stop=stop, on_event=_stop_after(stop, 0, 1))
    for status, step in ((schema.RUNNING, plan_resume), (schema.CANCELLED, lambda p: resume_sweep(plan_resume(p)))):
        # A live sweep is seen when the file is read; any other writer when its lock is met.
        holder = _hold_open_for_writing(path, status)
        try:
            with pytest.raises(RunFileError, match="cannot be resumed while another process has it open for writ"):
                step(path)
        finally:
            holder.communicate("", timeout=30)
    untouched = read_run(path)
    assert untouched.header.status == schema.CANCELLED and not read_attempts(path)
