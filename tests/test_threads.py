"""engine.hardware.threads: the CPU thread policy shared by the command line and the app.

The decision is a pure function of injected facts (cores, load, PyTorch's count at the sweep's start, the step
times measured), the load meter reads injected counters on an injected clock, and the step timing runs on an
injected clock, so nothing here depends on this machine or times it.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from engine import schema
from engine.cli import main
from engine.config import parse_config
from engine.events import Message
from engine.hardware import threads as threads_module
from engine.hardware.threads import (MAX_TIMED_STEPS, MEASURE_SHARE, MIN_TIMED_STEPS, MIN_WINDOW_S, WARMUP_STEPS,
                                     CpuCounters, LoadMeter, StepProbe, SweepThreads, ThreadPolicy, decide_threads,
                                     fastest_threads, set_thread_policy, thread_candidates, timed_steps_within_budget)
from engine.runfile import read_run
from engine.sweep import run_sweep
from tests.conftest import tiny_table

AUTO, APP = ThreadPolicy(), ThreadPolicy(reserve=1)


@pytest.fixture(autouse=True)
def default_policy_and_two_threads():
    """Each test starts from the command line's default policy and two PyTorch threads, and leaves them so."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    set_thread_policy(AUTO)
    yield
    set_thread_policy(AUTO)
    torch.set_num_threads(before)


# ----- the decision ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cores, busy, ceiling, policy, threads", [
    (2, 0.0, 2, AUTO, 2),     # an idle machine: every core
    (2, 0.1, 2, AUTO, 2),     # a little background noise takes no core
    (2, 1.0, 2, AUTO, 1),     # one process spinning: the other core only
    (2, 0.67, 2, AUTO, 1),    # the same competitor squeezed to 2/3 of a core by our own two threads
    (2, 2.0, 2, AUTO, 1),     # every core busy: one thread, never none
    (8, 3.0, 8, AUTO, 5),
    (8, 0.0, 4, AUTO, 4),     # never more than PyTorch had when the sweep started (OMP_NUM_THREADS, the caller)
    (2, 0.0, 1, AUTO, 1),
    (2, 0.0, 2, APP, 1),      # the app keeps a core for its window
    (8, 3.0, 8, APP, 5),      # ... which other processes' load may already be
    (8, 0.0, 8, APP, 7),
    (1, 0.0, 1, APP, 1),
    (2, None, 2, AUTO, 2),    # load not measured: the usable cores
    (2, 2.0, 2, ThreadPolicy(requested=3), 3),   # --threads: exactly that, whatever the load
])
def test_threads_follow_the_free_cores(cores, busy, ceiling, policy, threads):
    choice = decide_threads(cores, busy, ceiling, policy)
    assert choice.threads == threads
    assert choice.reason and "\n" not in choice.reason


def test_reasons_say_why():
    assert "1.0 busy with other processes" in decide_threads(2, 1.0, 2, AUTO).reason
    assert "kept for the window" in decide_threads(2, 0.0, 2, APP).reason
    assert "--threads" in decide_threads(2, 0.0, 2, ThreadPolicy(requested=3)).reason
    assert "PyTorch's setting" in decide_threads(8, 0.0, 4, AUTO).reason
    assert "--threads" in ThreadPolicy(requested=3).describe() and "window" in APP.describe()


# ----- the load meter -------------------------------------------------------------------------------------------

class FakeMachine:
    """Counters and a clock that advance only when told: `run(seconds, busy_elsewhere, own)`, or by a sleep,
    during which other processes keep `background` cores busy."""

    def __init__(self):
        self.now, self.cores_busy, self.own = 100.0, 5000.0, 7.0
        self.background = 0.0
        self.sleeps: list[float] = []

    def run(self, seconds: float, busy_elsewhere: float, own: float = 0.0) -> None:
        self.now += seconds
        self.cores_busy += seconds * (busy_elsewhere + own)
        self.own += seconds * own

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.run(seconds, busy_elsewhere=self.background)

    def meter(self) -> LoadMeter:
        return LoadMeter(read=lambda: CpuCounters(self.cores_busy, self.own), clock=lambda: self.now,
                         sleep=self.sleep)


def test_meter_counts_other_processes_not_its_own_training():
    machine = FakeMachine()
    meter = machine.meter()
    meter.start()
    machine.run(3.0, busy_elsewhere=1.0, own=1.0)   # a trial: we used a core, someone else another
    assert meter.busy_elsewhere() == pytest.approx(1.0)
    machine.run(2.0, busy_elsewhere=0.0, own=2.0)   # we alone, on both cores
    assert meter.busy_elsewhere() == pytest.approx(0.0)
    assert machine.sleeps == []   # trials are windows long enough: no waiting


def test_meter_waits_for_a_short_window_only_when_it_has_none():
    machine = FakeMachine()
    machine.background = 1.5
    meter = machine.meter()
    assert meter.busy_elsewhere() == pytest.approx(1.5)   # the first reading of a sweep: a short probe
    assert machine.sleeps == [pytest.approx(MIN_WINDOW_S)]
    machine.run(MIN_WINDOW_S / 5, busy_elsewhere=1.5)
    assert meter.busy_elsewhere() == pytest.approx(1.5)
    assert machine.sleeps[1] == pytest.approx(MIN_WINDOW_S * 4 / 5)   # topped up to the shortest window


def test_meter_that_cannot_read_the_counters_says_so():
    def locked_down():
        raise PermissionError("/proc/stat")

    meter = LoadMeter(read=locked_down, clock=lambda: 0.0, sleep=lambda seconds: None)
    assert meter.busy_elsewhere() is None
    assert decide_threads(2, meter.busy_elsewhere(), 2, AUTO).threads == 2


def test_sweep_threads_decide_before_each_trial_and_restore_the_count():
    machine, counts = FakeMachine(), [2]
    sweep = SweepThreads(AUTO, meter=machine.meter(), cores=lambda: 2, get_threads=lambda: counts[-1],
                         set_threads=counts.append)
    machine.run(0.2, busy_elsewhere=0.0)
    assert sweep.choose().threads == 2
    machine.run(4.0, busy_elsewhere=1.0, own=1.0)   # a competitor started during the first trial
    assert sweep.choose().threads == 1
    machine.run(4.0, busy_elsewhere=0.0, own=1.0)   # and ended during the second
    assert sweep.choose().threads == 2
    sweep.restore()
    assert counts == [2, 2, 1, 2, 2]


def test_fixed_threads_never_measure():
    machine, counts = FakeMachine(), [2]
    sweep = SweepThreads(ThreadPolicy(requested=5), meter=machine.meter(), cores=lambda: 2,
                         get_threads=lambda: counts[-1], set_threads=counts.append)
    assert [sweep.choose().threads for _ in range(3)] == [5, 5, 5]
    assert machine.sleeps == []


# ----- in a real sweep ------------------------------------------------------------------------------------------

def test_sweep_records_each_trials_threads_and_gives_back_the_callers_count(tmp_path, monkeypatch):
    busy = iter([0.0, 1.0, 1.0])

    class ScriptedMeter:
        def start(self):
            pass

        def busy_elsewhere(self):
            return next(busy)

    monkeypatch.setattr(threads_module, "LoadMeter", ScriptedMeter)
    monkeypatch.setattr(threads_module, "available_cores", lambda: 2)
    messages = []
    path = run_sweep(parse_config(tiny_table()), tmp_path,
                     on_event=lambda e: messages.append(e.text) if isinstance(e, Message) else None)
    assert torch.get_num_threads() == 2
    with h5py.File(path, "r") as handle:
        assert handle.attrs["thread_policy"] == AUTO.describe()
        assert handle.attrs["cpu_cores_available"] >= 1   # this machine's, not the 2 the decisions were told
        trials = [handle[f"trials/{name}"].attrs for name in ("bs00016_seed0", "bs00032_seed0", "bs00064_seed0")]
        assert [int(t["torch_threads"]) for t in trials] == [2, 1, 1]
        assert "1.0 busy with other processes" in trials[1]["threads_reason"]
    # Said when the count changes, not before every trial.
    thread_messages = [m for m in messages if "CPU thread" in m]
    assert thread_messages == [m for m in thread_messages if m.startswith(("bs00016", "bs00032"))]
    assert len(thread_messages) == 2


def test_caller_thread_count_is_the_ceiling(tmp_path):
    torch.set_num_threads(1)   # as an embedding program, or a test that needs bit-identical sums, would
    path = run_sweep(parse_config(tiny_table(sweep={"batch_sizes": [32, 64]})), tmp_path)
    with h5py.File(path, "r") as handle:
        assert {int(handle[f"trials/{n}"].attrs["torch_threads"]) for n in handle["trials"]} == {1}
    assert torch.get_num_threads() == 1


def test_command_line_threads_flag(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(parse_config(tiny_table(sweep={"batch_sizes": [32]})).to_toml(), encoding="utf-8")
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--threads", "3"]) == 0
    path = capsys.readouterr().out.strip().splitlines()[-1]
    with h5py.File(path, "r") as handle:
        assert handle.attrs["thread_policy"] == ThreadPolicy(requested=3).describe()
        trial = handle["trials/bs00032_seed0"].attrs
        assert (int(trial["torch_threads"]), trial["threads_reason"]) == (3, "set with --threads")
        assert set(schema.TRIAL_THREAD_ATTRS) <= set(trial)
    for bad in ("0", "-2", "two"):
        with pytest.raises(SystemExit) as exit_code:
            main(["run", str(config), "--out", str(tmp_path / "out"), "--threads", bad])
        assert exit_code.value.code == 2
        assert "thread count" in capsys.readouterr().err


def test_the_app_keeps_a_core_for_its_window(qapp, tmp_path):
    from gui.worker import SweepWorker

    worker = SweepWorker()   # living on this thread, it runs the sweep inside start_sweep
    paths, failures = [], []
    worker.finished.connect(paths.append)
    worker.failed.connect(failures.append)
    worker.start_sweep(parse_config(tiny_table(sweep={"batch_sizes": [32]})), tmp_path)
    assert failures == [] and paths
    with h5py.File(paths[0], "r") as handle:
        assert handle.attrs["thread_policy"] == ThreadPolicy(reserve=1).describe()
        threads = int(handle["trials/bs00032_seed0"].attrs["torch_threads"])
    assert 1 <= threads <= max(1, threads_module.available_cores() - 1)
    assert torch.get_num_threads() == 2   # the caller's count is back once the sweep ends


# ----- the count timed on the trial's own step ------------------------------------------------------------------

def test_candidates_are_powers_of_two_and_the_free_cores():
    assert thread_candidates(1) == [1]
    assert thread_candidates(2) == [1, 2]
    assert thread_candidates(6) == [1, 2, 4, 6]
    assert thread_candidates(8) == [1, 2, 4, 8]


@pytest.mark.parametrize("seconds, threads", [
    ({1: 0.004, 2: 0.003}, 2),                 # a large batch: more threads are faster
    ({1: 0.0004, 2: 0.052}, 1),                # a small batch on a busy machine: one thread, many times faster
    ({1: 0.0100, 2: 0.0098, 4: 0.0060}, 4),
    ({1: 0.0100, 2: 0.0099}, 1),               # within TIE_SHARE: the fewer threads
    ({1: 0.0110, 2: 0.0080, 4: 0.0079}, 2),    # a tie among the fastest goes to fewer too
])
def test_the_fastest_count_wins_and_ties_go_to_fewer_threads(seconds, threads):
    assert fastest_threads(seconds) == threads


def test_timing_costs_at_most_its_share_of_the_trial():
    assert timed_steps_within_budget(30, 2) == 0          # a test's tiny trial: not timed at all
    assert timed_steps_within_budget(349, 2) == 0
    assert timed_steps_within_budget(350, 2) == MIN_TIMED_STEPS
    assert timed_steps_within_budget(10**6, 4) == MAX_TIMED_STEPS
    for steps, candidates in ((350, 2), (2000, 3), (10**6, 4)):
        timed = timed_steps_within_budget(steps, candidates)
        assert 1 + candidates * (WARMUP_STEPS + timed) <= steps * MEASURE_SHARE


class FakeStep:
    """A training step whose cost per thread count is given: it advances a fake clock by that many seconds at
    whatever count was last set. Counts how often a copy of the step was built."""

    def __init__(self, cost: dict[int, float], counts: list[int]):
        self.cost, self.counts, self.now, self.built = cost, counts, 0.0, 0
        self.steps: dict[int, int] = {}     # steps run at each thread count

    def make(self):
        self.built += 1

        def step():
            threads = self.counts[-1]
            self.now += self.cost[threads]
            self.steps[threads] = self.steps.get(threads, 0) + 1
        return step


def timed_sweep(policy: ThreadPolicy, cost: dict[int, float], cores: int = 2):
    counts = [cores]
    step = FakeStep(cost, counts)
    sweep = SweepThreads(policy, meter=FakeMachine().meter(), cores=lambda: cores, get_threads=lambda: counts[-1],
                         set_threads=counts.append, clock=lambda: step.now)
    return sweep, step


def test_a_trial_trains_with_the_count_that_timed_fastest_and_its_times_are_kept():
    sweep, step = timed_sweep(AUTO, {1: 0.002, 2: 0.005})
    choice = sweep.choose(StepProbe(key=8, trial_steps=1000, make_step=step.make))
    assert choice.threads == 1
    assert choice.step_seconds == ((1, pytest.approx(0.002)), (2, pytest.approx(0.005)))
    assert "timed per step: 1 thread 2 ms, 2 threads 5 ms, so 1" in choice.reason
    # The next trial of that batch size (another seed) reuses the measurement; another batch size is timed anew.
    again = sweep.choose(StepProbe(key=8, trial_steps=1000, make_step=step.make))
    assert (again.threads, again.step_seconds, step.built) == (1, choice.step_seconds, 1)
    assert "timed for an earlier trial" in again.reason
    step.cost = {1: 0.02, 2: 0.011}
    assert sweep.choose(StepProbe(key=512, trial_steps=1000, make_step=step.make)).threads == 2
    assert step.built == 2


def test_a_count_far_slower_than_one_thread_stops_after_the_step_that_shows_it():
    # On a busy machine two threads can wait hundreds of milliseconds per step for a taken core.
    sweep, step = timed_sweep(AUTO, {1: 0.0004, 2: 0.5})
    choice = sweep.choose(StepProbe(key=8, trial_steps=1000, make_step=step.make))
    assert choice.threads == 1
    assert step.steps == {1: 1 + WARMUP_STEPS + MAX_TIMED_STEPS, 2: 1}
    # A count only a little slower is timed in full: it could have won.
    sweep, step = timed_sweep(AUTO, {1: 0.0004, 2: 0.00042})
    sweep.choose(StepProbe(key=8, trial_steps=1000, make_step=step.make))
    assert step.steps[2] == WARMUP_STEPS + MAX_TIMED_STEPS


def test_a_step_that_fails_while_timed_leaves_the_failure_to_the_trial():
    def broken():
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    sweep, _ = timed_sweep(AUTO, {1: 0.002, 2: 0.005})
    choice = sweep.choose(StepProbe(key=8, trial_steps=1000, make_step=broken))
    assert (choice.threads, choice.step_seconds) == (2, ())
    assert "not timed: its step failed (RuntimeError)" in choice.reason


def test_short_trials_fixed_counts_and_a_single_free_core_are_not_timed():
    sweep, step = timed_sweep(AUTO, {1: 0.002, 2: 0.005})
    short = sweep.choose(StepProbe(key=8, trial_steps=30, make_step=step.make))
    assert (short.threads, short.step_seconds) == (2, ())
    assert "not timed: 30 steps are too few" in short.reason
    for policy, cores in ((ThreadPolicy(requested=2), 2), (APP, 2), (AUTO, 1)):
        sweep, step = timed_sweep(policy, {1: 0.002, 2: 0.005}, cores)
        assert sweep.choose(StepProbe(key=8, trial_steps=10**6, make_step=step.make)).step_seconds == ()
        assert step.built == 0


def test_a_real_sweep_times_its_trials_steps_and_trains_as_it_would_have(tmp_path, monkeypatch):
    class IdleMeter:
        def start(self):
            pass

        def busy_elsewhere(self):
            return 0.0

    monkeypatch.setattr(threads_module, "LoadMeter", IdleMeter)
    monkeypatch.setattr(threads_module, "available_cores", lambda: 2)
    # 240 training examples in batches of 8 for 12 epochs: 360 steps, just enough to be timed.
    table = tiny_table(train={"epochs": 12}, sweep={"batch_sizes": [8]})
    timed = read_run(run_sweep(parse_config(table), tmp_path / "auto"))
    with h5py.File(timed.path, "r") as handle:
        attrs = handle["trials/bs00008_seed0"].attrs
        candidates, seconds = list(attrs["thread_candidates"]), list(attrs["thread_step_seconds"])
        threads = int(attrs["torch_threads"])
    assert candidates == [1, 2] and all(value > 0 for value in seconds)
    assert threads == fastest_threads(dict(zip(candidates, seconds)))
    # Timing used a copy: the same count set with --threads trains to the same numbers, bit for bit.
    set_thread_policy(ThreadPolicy(requested=threads))
    fixed = read_run(run_sweep(parse_config(table), tmp_path / "fixed"))
    np.testing.assert_array_equal(timed.trials[0].step["loss"], fixed.trials[0].step["loss"])
    np.testing.assert_array_equal(timed.trials[0].epoch["val_loss"], fixed.trials[0].epoch["val_loss"])
