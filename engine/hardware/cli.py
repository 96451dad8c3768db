"""`find-max-batch`: the command line's side of engine.hardware.max_batch. engine/cli.py adds the parser and calls
`find_max_batch_command`; heavy imports wait until the command runs, so --help answers at once."""
from __future__ import annotations

import argparse
import signal
import sys
import threading


def add_find_max_batch(commands) -> None:
    command = commands.add_parser(
        "find-max-batch", help="the largest batch size of an experiment's model and data that fits in memory "
        "(a few real training steps and an evaluation batch per try); writes the tries to a run file")
    command.add_argument("config", help="experiment config (TOML), or the name of a bundled preset such as 'demo'")
    command.add_argument("--out", default=".", help="folder for the run file of the tries (default: the current "
                         "folder)")
    command.add_argument("--device", choices=("auto", "cpu", "cuda"), help="overrides sweep.device of the config")
    command.add_argument("--memory-limit", metavar="SIZE", help="the memory a training step may use, e.g. 2GiB or "
                         "512MiB (default: the RAM available, or the GPU's free memory)")
    command.add_argument("--margin", type=float, default=0.1, help="share of the largest fit kept free in the "
                         "answer, for what the measurement cannot see (default 0.1)")


def find_max_batch_command(args: argparse.Namespace) -> int:
    from engine.cli import EXIT_INTERRUPTED, EXIT_OK, resolve_config_path
    from engine.config import load_config
    from engine.hardware.max_batch import find_max_batch, parse_memory_size, write_max_batch_file
    from engine.sweep import environment

    limit = parse_memory_size(args.memory_limit) if args.memory_limit is not None else None
    config = load_config(resolve_config_path(args.config))
    stop = threading.Event()

    def on_sigint(signum, frame):  # first Ctrl-C: end after the try under way; a second one: abort
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = find_max_batch(config, device=args.device, memory_limit=limit, margin=args.margin, stop=stop,
                                on_probe=lambda probe: print(probe.describe(), file=sys.stderr, flush=True))
    finally:
        signal.signal(signal.SIGINT, previous)
    import torch
    path = write_max_batch_file(result, config, args.out, environment(torch.device(result.device)))
    print(result.outcome, file=sys.stderr)
    print(path)
    return EXIT_INTERRUPTED if stop.is_set() else EXIT_OK
