"""Recorded sweeps for testing the progress estimate: real engine event streams with the moment each arrived.

A recording is made by running a real sweep (`record`) and keeps every event with the seconds since Run was
pressed. Replaying it (`replay`) hands the same events to a consumer with a fake clock set to those moments,
so the estimate is tested against how long a real sweep really took, with no dependence on this machine's
speed. Step columns that timing cannot depend on (loss, learning rate, gradient norm) are stored as zeros to
keep the files small.

    python -m tests.progress_recordings PRESET_OR_CONFIG OUT.json.gz [--device cpu|cuda]

The recordings in tests/data/progress are the presets trained on a 2-core CPU shared with other work, each
made with `nice -n -15` and one torch thread so that the other work disturbed them less (under plain load the
same trial ran from 1 to 13 ms per step, which no estimate can foresee).
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine import events as engine_events
from engine.events import Event, StepsLogged, TrialSpec

RECORDINGS = Path(__file__).parent / "data" / "progress"
_ZEROED = ("loss", "lr", "grad_norm")
_TYPES = {cls.__name__: cls for cls in (engine_events.SweepStarted, engine_events.TrialStarted, StepsLogged,
                                        engine_events.EpochEnded, engine_events.TrialEnded,
                                        engine_events.SweepEnded, engine_events.Message)}


class FakeClock:
    """A clock the test sets: `now` seconds since Run was pressed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _encode(event: Event) -> dict:
    fields = {}
    for field in dataclasses.fields(event):
        value = getattr(event, field.name)
        if isinstance(value, TrialSpec):
            value = dataclasses.asdict(value)
        elif isinstance(value, tuple) and value and isinstance(value[0], TrialSpec):
            value = [dataclasses.asdict(spec) for spec in value]
        elif isinstance(value, np.ndarray):
            # Microseconds are finer than any clock this is compared with, and halve the file.
            value = [] if field.name in _ZEROED else np.round(value, 6).tolist()
        fields[field.name] = value
    return {"type": type(event).__name__, "fields": fields}


def _decode(record: dict) -> Event:
    cls = _TYPES[record["type"]]
    fields = dict(record["fields"])
    if "trial" in fields:
        fields["trial"] = TrialSpec(**fields["trial"])
    if cls is engine_events.SweepStarted:
        fields["trials"] = tuple(TrialSpec(**spec) for spec in fields["trials"])
    if cls is StepsLogged:
        length = len(fields["step"])
        for name in ("step", "samples"):
            fields[name] = np.asarray(fields[name], dtype=np.int64)
        fields["wall_time_s"] = np.asarray(fields["wall_time_s"], dtype=np.float64)
        for name in _ZEROED:
            fields[name] = np.zeros(length, dtype=np.float32)
    return cls(**fields)


def load(path: Path) -> list[tuple[float, Event]]:
    """(seconds since Run was pressed, event) pairs of a recording."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    return [(moment, _decode(record)) for moment, record in data["events"]]


def replay(recording: list[tuple[float, Event]], clock: FakeClock) -> Iterator[tuple[float, Event]]:
    """Each event with the clock set to the moment it arrived; the caller folds it in, then reads."""
    for moment, event in recording:
        clock.now = moment
        yield moment, event


def record(config_path: Path, out: Path, device: str = "cpu") -> Path:
    """Run a real sweep of this config and save its events with their arrival times."""
    import torch

    from engine.config import load_config
    from engine.sweep import run_sweep

    config = load_config(config_path)
    if device == "cpu":
        # One thread: on a machine shared with other programs, two threads waiting for each other make some
        # epochs ten times slower than others, noise that no estimate can predict.
        torch.set_num_threads(1)
    recorded: list[tuple[float, dict]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        run_sweep(config, folder, device=device,
                  on_event=lambda event: recorded.append((time.monotonic() - started, _encode(event))))
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8") as handle:
        json.dump({"config": str(config_path), "device": device, "events": recorded}, handle)
    return out


if __name__ == "__main__":
    arguments = sys.argv[1:]
    chosen_device = "cpu"
    if "--device" in arguments:
        at = arguments.index("--device")
        chosen_device = arguments[at + 1]
        del arguments[at:at + 2]
    print(record(Path(arguments[0]), Path(arguments[1]), chosen_device))
