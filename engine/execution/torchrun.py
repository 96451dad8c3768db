"""A sweep whose trials each train on ranks that torchrun started, on one machine or several:

    torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m engine.execution.torchrun CONFIG.toml --out DIR [--device cpu|cuda] [--threads N]

Every process reads the config and loads the data itself (the same config and data paths on every machine).
Rank 0 runs the sweep as `run` does: it shows progress, writes the one run file and prints its path; before each
trial it sends the trial to the other ranks (a broadcast), which train it with it and send nothing back. The
rank count is torchrun's WORLD_SIZE (sweep.data_parallel is not used), so every batch size must divide by it.
Exit codes as `run`'s; on Ctrl-C at rank 0 every rank stops at the same step.
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

import torch
import torch.distributed as dist

from engine import schema
from engine.events import TrialSpec
from engine.execution.ranks import RankStop, Ranks, measured
from engine.train import TrialContext, run_trial

_launched: Ranks | None = None


def launched_ranks() -> Ranks | None:
    """This process's ranks when torchrun started it and it runs the sweep (rank 0); None otherwise."""
    return _launched


class LaunchedRanks:
    """Rank 0's side: trains each proposed trial together with the other ranks; the interface of
    workers.WorkerPool."""

    def __init__(self, context: TrialContext, ranks: Ranks):
        self.context, self.ranks = context, ranks

    def run(self, propose: Callable[[], TrialSpec | None], tell: Callable[[TrialSpec, str], None]) -> str:
        stop = self.context.stop
        while True:
            spec = None if stop.is_set() else propose()
            dist.broadcast_object_list([spec], src=0)
            if spec is None:
                return schema.CANCELLED if stop.is_set() else schema.COMPLETED
            context = TrialContext(config=self.context.config, dataset=self.context.dataset,
                                   device=self.context.device, train_eval_index=self.context.train_eval_index,
                                   emit=measured(self.context.emit, self.ranks),
                                   stop=RankStop(stop, self.ranks.device), ranks=self.ranks)
            tell(spec, run_trial(spec, context))


def _follow(config, device: torch.device, ranks: Ranks) -> None:
    """A rank other than 0: train each trial rank 0 sends, until it sends None."""
    from engine.sweep import prepare_sweep_data
    dataset, probe = prepare_sweep_data(config, device, lambda event: None)
    while True:
        box: list[TrialSpec | None] = [None]
        dist.broadcast_object_list(box, src=0)
        if box[0] is None:
            return
        run_trial(box[0], TrialContext(config=config, dataset=dataset, device=device, train_eval_index=probe,
                                       emit=lambda event: None, stop=RankStop(threading.Event(), device), ranks=ranks))


def main(argv: list[str]) -> int:
    from engine.cli import EXIT_USER_ERROR, build_parser, main as cli_main, resolve_config_path
    from engine.config import load_config
    from engine.devices import resolve_device
    from engine.errors import ConfigError

    global _launched
    args = build_parser().parse_args(["run", *argv])
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    try:
        config = load_config(resolve_config_path(args.config))
        uneven = [size for size in config.sweep.batch_sizes if size % world]
        if uneven:
            raise ConfigError([f"sweep.batch_sizes contains {uneven[0]}: does not divide among torchrun's "
                               f"{world} ranks"])
        if config.sweep.pruner != "none":
            # Its trials would train unpruned: their ranks are not told a pruner's answer (ranks.py's are).
            raise ConfigError([f"sweep.pruner = {config.sweep.pruner!r}: a search on torchrun's ranks is not "
                               "pruned; set the pruner to none, or use sweep.data_parallel on one machine"])
        device = resolve_device(args.device or config.sweep.device)
    except ConfigError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
    ranks = Ranks(rank, world, config.sweep.rank_batch_norm == "sync", device)
    try:
        if rank != 0:
            _follow(config, device, ranks)
            return 0
        _launched = ranks
        return cli_main(["run", *argv])
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    # The module's own copy, not this __main__ one: the sweep asks that module whether torchrun started it.
    from engine.execution.torchrun import main as module_main
    sys.exit(module_main(sys.argv[1:]))
