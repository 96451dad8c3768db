"""Does the timed thread count keep up with the best fixed one? Throughput ratios, same process, same data.

For each batch size, one trial of the same model on the same in-memory data trains with each fixed thread count
(1, 2, 4, ... up to the cores this process may use, as `--threads N` would) and with the automatic policy (the
free cores, then the count that timed fastest on a few of the trial's own steps: engine.hardware.threads). The
automatic throughput counts its timing as training time, so the ratio auto / best fixed is what a user gets.
`timed` is the automatic policy told that no other process holds a core, so that it times every count: on a machine
shared with other work `auto` often sees the cores taken and trains on one thread without timing, and `timed` shows
what the timing alone would choose. The settings are interleaved over several rounds; throughputs are the median
over rounds, and each ratio the median of the rounds' own ratios, so that drift in machine load between rounds
cancels.

Run: `.venv/bin/python benchmarks/threads.py [--rounds 5] [--steps 400]` (the defaults gave the README's figures).
The README's performance section quotes them; on a machine shared with other work, say so next to them.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.engine_overhead import make_data  # noqa: E402
from engine import schema  # noqa: E402
from engine.config import parse_config  # noqa: E402
from engine.events import EpochEnded, TrialSpec  # noqa: E402
from engine.hardware.threads import (SweepThreads, ThreadPolicy, available_cores, thread_candidates,  # noqa: E402
                                     training_step_probe)
from engine.train import TrialContext, run_trial  # noqa: E402

BATCH_SIZES = (8, 32, 128, 512)
AUTO, TIMED = "auto", "timed"
PAUSE_S = 0.3


class _NoOtherLoad:
    """A load meter that sees no other process: the cores are all free, so every count is timed."""

    def start(self) -> None:
        pass

    def busy_elsewhere(self) -> float:
        return 0.0


def throughput(config, data, batch_size: int, setting: int | str) -> tuple[float, int, str]:
    """Training examples per second of one trial with `setting` threads, the timing included for auto; the count
    it trained with and why."""
    training_s: list[float] = []

    def on_event(event):
        if isinstance(event, EpochEnded):
            training_s.append(event.metrics["wall_time_s"])

    spec = TrialSpec(index=0, name="bench", batch_size=batch_size, seed=0, base_lr=0.01, lr=0.01)
    context = TrialContext(config=config, dataset=data, device=torch.device("cpu"),
                           train_eval_index=torch.arange(1024), emit=on_event, stop=threading.Event())
    automatic = setting in (AUTO, TIMED)
    # A pause lets the previous measurement's thread pool stop spinning (it slowed the next one, the README's
    # "Command line on a busy machine" says), and is the load meter's first window, which a sweep waits once.
    time.sleep(PAUSE_S)
    threads = SweepThreads(ThreadPolicy(requested=None if automatic else setting),
                           meter=_NoOtherLoad() if setting == TIMED else None)
    time.sleep(0.06)
    started = time.perf_counter()
    choice = threads.choose(training_step_probe(spec, context))
    choosing_s = time.perf_counter() - started
    try:
        assert run_trial(spec, context) == schema.COMPLETED
    finally:
        threads.restore()
    samples = config.train.samples // batch_size * batch_size
    return samples / (training_s[-1] + choosing_s), choice.threads, choice.reason


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=400, help="training steps per trial (enough to be timed)")
    args = parser.parse_args()
    cores = min(available_cores(), torch.get_num_threads())
    fixed = thread_candidates(cores)
    data = make_data(8192)
    print(f"{cores} cores usable; fixed counts {fixed}; {args.steps} steps per trial; median of {args.rounds} rounds")
    print(f"{'batch':>6} " + " ".join(f"{f'{n} thr/s':>10}" for n in fixed)
          + f" {'auto/s':>10} {'threads':>8} {'auto/best':>9} {'timed/s':>10} {'threads':>8} {'timed/best':>10}")
    for batch_size in BATCH_SIZES:
        config = parse_config({"name": "bench", "data": {"dataset": "synthetic"},
                               "model": {"kind": "mlp", "width": 128, "depth": 2},
                               "train": {"optimizer": "sgd", "lr": 0.01, "budget": "samples",
                                         "samples": args.steps * batch_size, "eval_batch_size": 1024},
                               "sweep": {"batch_sizes": [batch_size], "device": "cpu"}})
        # The slowest fixed counts last in a round, so that the automatic ones sit next to one thread in time.
        rates: dict[int | str, list[float]] = {setting: [] for setting in (fixed[0], AUTO, TIMED, *fixed[1:])}
        chosen: dict[str, list[int]] = {AUTO: [], TIMED: []}
        reasons = {}
        for _ in range(args.rounds):
            for setting in rates:
                rate, count, reason = throughput(config, data, batch_size, setting)
                rates[setting].append(rate)
                if setting in chosen:
                    chosen[setting].append(count)
                    reasons[setting] = reason
        median = {setting: statistics.median(values) for setting, values in rates.items()}
        # Each round's ratio to that round's best fixed count, then their median: settings measured minutes apart on
        # a shared machine differ by more than the choice does, rounds a few seconds apart much less.
        ratio = {s: statistics.median(rates[s][r] / max(rates[n][r] for n in fixed) for r in range(args.rounds))
                 for s in (AUTO, TIMED)}
        print(f"{batch_size:>6} " + " ".join(f"{median[n]:>10,.0f}" for n in fixed)
              + "".join(f" {median[s]:>10,.0f} {','.join(map(str, chosen[s])):>8} {ratio[s]:>{len(s) + 5}.2f}"
                        for s in (AUTO, TIMED)))
        for setting in (AUTO, TIMED):
            print(f"       {setting}, last round: {reasons[setting]}")


if __name__ == "__main__":
    main()
