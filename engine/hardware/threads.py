"""How many CPU threads PyTorch trains with: one policy for the command line and the app, decided per trial.

PyTorch's CPU kernels split each operation over a pool of threads that wait for one another at its end. When
another process holds one of the cores, one pool thread waits for the scheduler while the others spin, and
training slows many times over (the README's performance section has the figures). So before each trial the
pool gets only the cores that are free: those this process may run on (its CPU affinity and container quota),
less the cores other processes kept busy since the last decision, less any the client keeps for itself (the
app leaves one to its window). It never grows beyond the thread count PyTorch had when the sweep started
(torch's default, OMP_NUM_THREADS, or the embedding program's torch.set_num_threads), which it restores at the
end. `--threads N` sets exactly N instead.

Within the free cores, the count is measured rather than assumed: a small batch's operations are too short to
share out, so its steps often run faster on fewer threads. Before a trial, a throwaway copy of its training step
(its model, batch size and precision, on the first examples of the training set, its random streams untouched)
is timed at 1, 2, 4, ... threads up to the free cores, and the fastest count wins (ties, within TIE_SHARE, go
to fewer threads). The timing costs about MEASURE_SHARE of the trial: it is planned in steps (a trial too short
to pay for it keeps the free cores) and cut off in seconds (a count far slower than one thread stops after the
step that shows it). A measurement serves every later trial of the same batch size and precision.

The thread count changes the order of floating-point sums, so only runs with the same count give the same
numbers to the last bit; each trial records the count it trained with.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from engine.events import TrialSpec
    from engine.train import TrialContext

# Another process counts as holding a core once it keeps a quarter of it busy: the scheduler gives three
# runnable threads on two cores two thirds of a core each, so a competitor squeezed by our own threads still
# shows as at least that much.
BUSY_CORE_SHARE = 0.25
# The shortest measurement of load worth deciding on; /proc/stat counts in 10 ms ticks.
MIN_WINDOW_S = 0.05
# Timing thread counts may cost this share of the trial's own steps; a trial too short for MIN_TIMED_STEPS at every
# count keeps the free cores. Each count gets WARMUP_STEPS untimed steps (its pool threads wake, caches fill), then
# up to MAX_TIMED_STEPS timed ones, of which the median counts: one step slowed by another process does not decide.
MEASURE_SHARE = 0.02
WARMUP_STEPS = 1
MIN_TIMED_STEPS = 2
MAX_TIMED_STEPS = 5
# Counts whose step time is within this share of the fastest tie, and the fewest threads among them win: fewer
# threads leave cores to everything else, and a difference this small is within a shared machine's noise.
TIE_SHARE = 0.05


@dataclass(frozen=True)
class ThreadPolicy:
    """What the client asks for: exactly `requested` threads, or automatic with `reserve` cores kept free."""
    requested: int | None = None   # --threads N
    reserve: int = 0               # the app keeps one core for its window

    def describe(self) -> str:
        if self.requested is not None:
            return f"fixed: {self.requested} thread{'s' if self.requested != 1 else ''} (--threads)"
        kept = f", {self.reserve} core{'s' if self.reserve != 1 else ''} kept for the app's window" \
            if self.reserve else ""
        return (f"automatic: before each trial, the cores free of other processes{kept}, then the fastest "
                "thread count within them, timed on a few of the trial's own steps")


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str
    # The thread counts timed for this trial and their median seconds per training step; empty when not measured.
    step_seconds: tuple[tuple[int, float], ...] = ()


def decide_threads(cores: int, busy_elsewhere: float | None, ceiling: int, policy: ThreadPolicy) -> ThreadChoice:
    """The thread count for one trial, from the cores this process may use, the cores other processes kept
    busy (None when unmeasured) and the count PyTorch had at the start of the sweep. Pure: tests inject all."""
    if policy.requested is not None:
        return ThreadChoice(policy.requested, "set with --threads")
    usable = max(1, min(ceiling, cores - policy.reserve))
    kept = f", {policy.reserve} kept for the window" if policy.reserve else ""
    if busy_elsewhere is None:
        return ThreadChoice(usable, f"{cores} cores{kept}; load not measured")
    taken = math.floor(busy_elsewhere + 1 - BUSY_CORE_SHARE)
    threads = max(1, min(usable, cores - taken))
    reason = f"{cores} core{'s' if cores != 1 else ''}, {busy_elsewhere:.1f} busy with other processes{kept}"
    if threads == ceiling < cores - taken - policy.reserve:
        reason += f"; at most {ceiling}, PyTorch's setting when the sweep started"
    return ThreadChoice(threads, reason)


def thread_candidates(free: int) -> list[int]:
    """The counts worth timing within `free` threads: powers of two, and `free` itself."""
    candidates = [1]
    while candidates[-1] * 2 < free:
        candidates.append(candidates[-1] * 2)
    return candidates + [free] if free > 1 else candidates


def timed_steps_within_budget(trial_steps: int, candidates: int) -> int:
    """Timed steps per thread count that keep the whole measurement (one first warm-up step, then each count's
    warm-up and timed steps) within MEASURE_SHARE of the trial's steps; 0 when not even MIN_TIMED_STEPS fit."""
    budget = math.floor(trial_steps * MEASURE_SHARE) - 1
    timed = min(MAX_TIMED_STEPS, budget // candidates - WARMUP_STEPS)
    return timed if timed >= MIN_TIMED_STEPS else 0


def fastest_threads(step_seconds: Mapping[int, float]) -> int:
    """The fewest threads whose seconds per step are within TIE_SHARE of the fastest. Pure: tests give the times."""
    fastest = min(step_seconds.values())
    return min(threads for threads, seconds in step_seconds.items() if seconds <= fastest * (1 + TIE_SHARE))


def measure_step_seconds(step: Callable[[], None], candidates: list[int], timed_steps: int, trial_steps: int,
                         set_threads: Callable[[int], None], clock: Callable[[], float]) -> dict[int, float]:
    """The median seconds of `step` at each thread count after its warm-up; the clock is injected for tests.

    The first count (one thread) sets the time budget: MEASURE_SHARE of the trial at its speed. A count that
    overruns it is far slower than the first and cannot win, so it stops there with the steps it ran (on a busy
    machine one step on a thread pool waiting for a taken core can cost as much as the whole trial)."""
    seconds: dict[int, float] = {}
    spent, budget_s = 0.0, math.inf
    for position, threads in enumerate(candidates):
        set_threads(threads)
        warmup = WARMUP_STEPS + (1 if position == 0 else 0)   # the very first step allocates every buffer
        times = []
        for _ in range(warmup + timed_steps):
            started = clock()
            step()
            times.append(clock() - started)
            spent += times[-1]
            if spent > budget_s:
                break
        seconds[threads] = statistics.median(times[warmup:] or times)
        if position == 0:
            budget_s = spent + MEASURE_SHARE * trial_steps * seconds[threads]
    return seconds


@dataclass(frozen=True)
class StepProbe:
    """A trial's training step, to be timed: `key` says which trials cost the same per step (a measurement is
    reused for them), `trial_steps` how many steps the trial trains, `make_step` builds a throwaway copy."""
    key: Hashable
    trial_steps: int
    make_step: Callable[[], Callable[[], None]]


def training_step_probe(spec: "TrialSpec", context: "TrialContext") -> StepProbe | None:
    """A copy of the trial's training step, on the CPU: its model (initialised from its seed, the caller's random
    state restored), optimizer and precision, on the first examples of the training set. None on a GPU, where the
    CPU threads only feed the device."""
    if context.device.type != "cpu":
        return None
    import torch

    from engine.hardware.precision import StepPrecision, trial_precision
    from engine.models import build_model
    from engine.train import make_optimizer, total_steps

    config, data = context.config, context.dataset
    precision = trial_precision(spec, config.train)

    def make_step() -> Callable[[], None]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            model = build_model(config.model, data.input_shape, data.kind, data.num_classes).to(context.device)
        optimizer = make_optimizer(config.train, model.parameters(), spec.lr)
        step_precision = StepPrecision(precision, config.train.accumulation_steps, context.device)
        inputs, targets = data.x_train[:spec.batch_size], data.y_train[:spec.batch_size]
        parameters = [p for p in model.parameters() if p.requires_grad]
        model.train()

        def step() -> None:
            for parameter in parameters:
                parameter.grad = None
            step_precision.forward_backward(model, inputs, targets)
            step_precision.unscale(optimizer)
            step_precision.step(optimizer)
        return step

    steps = total_steps(config.train, data.train_size // spec.batch_size, spec.batch_size)
    return StepProbe(key=(spec.batch_size, precision), trial_steps=steps, make_step=make_step)


def _per_step(seconds: Mapping[int, float]) -> str:
    return ", ".join(f"{threads} thread{'s' if threads != 1 else ''} {value * 1e3:.3g} ms"
                     for threads, value in seconds.items())


def split_among_workers(choice: ThreadChoice, workers: int, policy: ThreadPolicy) -> ThreadChoice:
    """Each thread count when `workers` processes train at once: --threads N is each one's count, as it is a
    trial's; otherwise the cores `choice` found free are shared out, at least one each, so that no two workers'
    thread pools wait on one core (the slowdown the module's docstring describes)."""
    if workers <= 1 or policy.requested is not None:
        return choice
    share = max(1, choice.threads // workers)
    return ThreadChoice(share, f"{choice.reason}; shared among {workers} trials at once")


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a container's CPU quota (cgroup v2)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_cpu_quota()
    return max(1, min(cores, math.ceil(quota)) if quota else cores)


def _cgroup_cpu_quota() -> float | None:
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as file:
            group = next((line.strip()[3:] for line in file if line.startswith("0::")), None)
        if group is None:
            return None
        with open(f"/sys/fs/cgroup{group.rstrip('/')}/cpu.max", encoding="utf-8") as file:
            limit, period = file.read().split()[:2]
        return None if limit == "max" else int(limit) / int(period)
    except (OSError, ValueError):
        return None   # no cgroup v2 (another OS, an older container): affinity alone says it


@dataclass(frozen=True)
class CpuCounters:
    """Cumulative CPU seconds: busy time of the cores this process may use, and this process's own."""
    cores_busy: float
    own: float


def read_counters() -> CpuCounters:
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    busy = 0.0
    for index, times in enumerate(psutil.cpu_times(percpu=True)):
        if allowed is None or index in allowed:
            # Waiting for disk is idle time; guest time is already counted in user time.
            busy += sum(times) - times.idle - sum(getattr(times, name, 0.0) for name in ("iowait", "guest",
                                                                                         "guest_nice"))
    return CpuCounters(cores_busy=busy, own=time.process_time())


@dataclass
class LoadMeter:
    """How many cores other processes kept busy since the previous reading: the cores' busy time less this
    process's own CPU time, over the wall time between readings. A trial is a long, free window; only the
    first reading of a sweep waits MIN_WINDOW_S for one."""
    read: Callable[[], CpuCounters] = read_counters
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _last: tuple[float, CpuCounters] | None = field(default=None, init=False)

    def start(self) -> None:
        self._last = self._reading()

    def busy_elsewhere(self) -> float | None:
        """None when the counters cannot be read (a locked-down /proc): the decision then goes by cores alone."""
        if self._last is None:
            self.start()
        if self._last is None:
            return None
        started, before = self._last
        if (waited := self.clock() - started) < MIN_WINDOW_S:
            self.sleep(MIN_WINDOW_S - waited)
        self._last = self._reading()
        if self._last is None or self._last[0] <= started:
            return None
        now, after = self._last
        return max(0.0, (after.cores_busy - before.cores_busy - (after.own - before.own)) / (now - started))

    def _reading(self) -> tuple[float, CpuCounters] | None:
        try:
            return self.clock(), self.read()
        except (OSError, psutil.Error):
            return None


class SweepThreads:
    """The thread decisions of one sweep. `choose()` before each trial sets PyTorch's thread count and returns
    the choice; `restore()` puts back the count the sweep started with."""

    def __init__(self, policy: ThreadPolicy, *, meter: LoadMeter | None = None,
                 cores: Callable[[], int] | None = None, get_threads: Callable[[], int] | None = None,
                 set_threads: Callable[[int], None] | None = None, clock: Callable[[], float] = time.perf_counter):
        import torch   # here, so that `--help` and the policy's description need no torch

        self.policy, self._cores = policy, cores or available_cores
        self._get, self._set = get_threads or torch.get_num_threads, set_threads or torch.set_num_threads
        self.ceiling = self._get()
        self.meter = meter or LoadMeter()
        if policy.requested is None:
            self.meter.start()
        self.choices: list[ThreadChoice] = []
        self._clock = clock
        self._measured: dict[tuple[Hashable, tuple[int, ...]], dict[int, float]] = {}

    def choose(self, probe: StepProbe | None = None) -> ThreadChoice:
        """The next trial's thread count; with `probe` (the trial's step), the fastest within the free cores."""
        busy = self.meter.busy_elsewhere() if self.policy.requested is None else None
        choice = decide_threads(self._cores(), busy, self.ceiling, self.policy)
        if probe is not None and self.policy.requested is None:
            choice = self._fastest(choice, probe)
        self._set(choice.threads)
        self.choices.append(choice)
        return choice

    def _fastest(self, free: ThreadChoice, probe: StepProbe) -> ThreadChoice:
        candidates = thread_candidates(free.threads)
        if len(candidates) == 1:
            return free
        key = (probe.key, tuple(candidates))
        seconds = self._measured.get(key)
        if seconds is None:
            timed = timed_steps_within_budget(probe.trial_steps, len(candidates))
            if not timed:
                return ThreadChoice(free.threads, f"{free.reason}; not timed: {probe.trial_steps} steps are too few "
                                    f"to spend {MEASURE_SHARE:.0%} of them on timing {len(candidates)} thread counts")
            try:
                seconds = measure_step_seconds(probe.make_step(), candidates, timed, probe.trial_steps, self._set,
                                               self._clock)
            except Exception as error:  # noqa: BLE001 — the trial itself then fails, recorded as its outcome
                return ThreadChoice(free.threads, f"{free.reason}; not timed: its step failed "
                                    f"({type(error).__name__})")
            self._measured[key] = seconds
            how = "timed"
        else:
            how = "timed for an earlier trial"
        threads = fastest_threads(seconds)
        return ThreadChoice(threads, f"{free.reason}; {how} per step: {_per_step(seconds)}, so {threads}",
                            tuple(seconds.items()))

    def restore(self) -> None:
        self._set(self.ceiling)


_policy = ThreadPolicy()


def set_thread_policy(policy: ThreadPolicy) -> None:
    """Set by the client once (the command line from --threads, the app with one core kept): PyTorch's thread
    pool belongs to the whole process, so the policy does too."""
    global _policy
    _policy = policy


def thread_policy() -> ThreadPolicy:
    return _policy


@contextmanager
def sweep_threads() -> Iterator[SweepThreads]:
    """Thread decisions for one sweep under the process's policy; the caller's thread count comes back after."""
    threads = SweepThreads(_policy)
    try:
        yield threads
    finally:
        threads.restore()
