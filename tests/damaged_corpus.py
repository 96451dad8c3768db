"""Damaged run files, made from a real one, and a harness that feeds them to `report` and the GUI's loaders.

    python tests/damaged_corpus.py --count 3000          # the long version (make fuzz)
    python tests/damaged_corpus.py --count 300 --in-process --legacy   # figures for docs/run-files.md

Every case is run in ONE worker process; when the worker dies (a signal) or stops answering (a hang), the case
is recorded and a new worker goes on with the next case. A case passes when each consumer either reads the
file or answers one RunFileError line that names the file, with no traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine import schema  # noqa: E402
from engine.runfile import RunWriter  # noqa: E402

CONFIG = """name = "corpus"
[data]
dataset = "mnist1d"
[model]
kind = "mlp"
[train]
lr = 0.05
epochs = 3
seeds = [0]
[sweep]
batch_sizes = [16, 64]
"""
ENVIRONMENT = {"python_version": "3.11.7", "torch_version": "2.13.0", "app_version": "0.1.0", "device": "cpu",
               "device_name": "test cpu", "cpu_count": 2, "platform": "Linux"}


def write_source(path: Path, epochs: int = 3, steps_per_epoch: int = 40) -> Path:
    """A run file written by the engine's own writer: two trials, realistic columns."""
    rng = np.random.default_rng(0)
    writer = RunWriter(path, CONFIG, ENVIRONMENT)
    for batch_size, status in ((16, schema.COMPLETED), (64, schema.DIVERGED)):
        name = schema.trial_name(batch_size, 0)
        writer.start_trial(name, {"batch_size": batch_size, "seed": 0, "lr": 0.05, "base_lr": 0.05,
                                  "parameter_count": 12345, "steps_per_epoch": steps_per_epoch})
        for epoch in range(1, epochs + 1):
            steps = np.arange((epoch - 1) * steps_per_epoch + 1, epoch * steps_per_epoch + 1)
            writer.add_steps(name, {"step": steps, "samples": steps * batch_size, "wall_time_s": steps * 0.01,
                                    "loss": rng.random(len(steps)).astype(np.float32),
                                    "lr": np.full(len(steps), 0.05, np.float32),
                                    "grad_norm": rng.random(len(steps)).astype(np.float32)})
            writer.add_epoch(name, {"epoch": epoch, "step": epoch * steps_per_epoch,
                                    "samples": epoch * steps_per_epoch * batch_size, "wall_time_s": epoch * 0.4,
                                    "train_loss": 1.0 / epoch, "train_accuracy": 0.3 + 0.1 * epoch,
                                    "val_loss": 1.1 / epoch, "val_accuracy": 0.25 + 0.1 * epoch,
                                    "samples_per_s": 1000.0, "peak_memory_bytes": 2 ** 20})
        writer.end_trial(name, status)
    writer.close(schema.COMPLETED)
    return path


def write_legacy_copy(source: Path, path: Path) -> Path:
    """The same run as format version 1 files were first written: HDF5's oldest format (no checksums on its
    metadata) and no checksum on the data, as the writer did before it asked for them."""
    with h5py.File(source, "r") as original, h5py.File(path, "w") as copy:
        for key, value in original.attrs.items():
            copy.attrs[key] = value

        def visit(name, item):
            if isinstance(item, h5py.Group):
                group = copy.require_group(name)
            else:
                group = copy.create_dataset(name, data=item[()], maxshape=(None,), chunks=item.chunks)
            for key, value in item.attrs.items():
                group.attrs[key] = value
        original.visititems(visit)
    return path


# ------------------------------------------------------------------------------------------------ the corpus

WRONG_VALUES = {
    "text": "abc", "array": np.array([1, 2]), "nan": float("nan"), "zero": 0, "negative": -5,
    "huge": 10 ** 18, "bool": True, "matrix": np.ones((2, 2)), "empty_array": np.array([], dtype=np.int64),
}
DATASET_DAMAGE = ("two_d", "text", "scalar", "missing", "huge_shape", "group", "short", "nan", "bool", "compound")
# Hostile values for the name, notes and tags a user gives a run, beyond the wrong types every root attribute gets.
ANNOTATION_DAMAGE = {
    "name_escape_codes": (schema.DISPLAY_NAME_ATTR, "run\x1b[2J\x1b[31mred"),
    "name_not_utf8": (schema.DISPLAY_NAME_ATTR, np.bytes_(b"\xc3\x28\xff")),
    "name_huge": (schema.DISPLAY_NAME_ATTR, "n" * 1_000_000),
    "notes_huge": (schema.NOTES_ATTR, "x" * 3_000_000),
    "tags_not_utf8": (schema.TAGS_ATTR, np.array([b"ok", b"\xff\xfe"], dtype=h5py.string_dtype("ascii"))),
    "tags_many": (schema.TAGS_ATTR, np.array([f"t{n}" for n in range(100_000)], dtype=h5py.string_dtype())),
    "tags_line_break": (schema.TAGS_ATTR, np.array(["a\nb"], dtype=h5py.string_dtype())),
    "tags_compound": (schema.TAGS_ATTR, np.zeros(2, dtype=[("a", "f8"), ("b", "i4")])),
}
CONFIG_DAMAGE = {
    "data_number": 'name = "x"\ndata = 5\n', "model_list": 'name = "x"\nmodel = [1]\n', "name_number": "name = 5\n",
    "not_toml": "[[[", "dataset_number": 'name = "x"\n[data]\ndataset = 7\n', "empty": "",
    "kind_table": 'name = "x"\n[model]\nkind = {a = 1}\n', "deep": "a = " + "[" * 2000 + "]" * 2000 + "\n",
}


# Single-byte flips (offset, xor) that make HDF5 itself crash (SIGSEGV) reading write_legacy_copy(write_source()):
# found with `python tests/damaged_corpus.py --in-process --legacy`; the layout is fixed, so they always crash it.
LEGACY_CRASHERS = ((1065, 155), (1593, 125), (1665, 107))


@dataclass
class Case:
    name: str
    path: Path


def _flip(data: bytearray, positions, rng: random.Random) -> None:
    for position in positions:
        data[position] ^= rng.randrange(1, 256)


def make_corpus(source: Path, folder: Path, count: int, seed: int = 0, structured: bool = True,
                flips: tuple[tuple[int, int], ...] = ()) -> list[Case]:
    """About `count` damaged variants of `source`: every attribute and dataset given wrong types, shapes and
    values, config damage, non-HDF5 files (when `structured`), then the given byte `flips`, truncations, bit
    flips (1 to 512 bytes) and header flips."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    original = source.read_bytes()
    cases: list[Case] = []

    def add(name: str, data: bytes | None = None) -> Path:
        path = folder / f"{len(cases):05d}-{name}.h5"
        if data is None:
            shutil.copyfile(source, path)
        else:
            path.write_bytes(data)
        cases.append(Case(name, path))
        return path

    for offset, xor in flips:
        data = bytearray(original)
        data[offset] ^= xor
        add(f"flip-{offset}", bytes(data))
    if structured:
        _structured_damage(source, original, rng, add)
    size = len(original)
    cuts = sorted({1, 7, 8, 40, 100, 512, 2048, size // 4, size // 2, size - 100, size - 1})
    for cut in cuts:
        add(f"truncated-{cut}", original[:cut])
    # Byte-level damage until the corpus has `count` files.
    while len(cases) < count:
        kind = rng.choice(("header", "flips", "flips", "single", "truncate"))
        data = bytearray(original)
        if kind == "header":
            _flip(data, [rng.randrange(min(4096, size))], rng)
        elif kind == "single":
            _flip(data, [rng.randrange(size)], rng)
        elif kind == "flips":
            _flip(data, rng.sample(range(size), rng.randint(1, 512)), rng)
        else:
            data = data[:rng.randrange(1, size)]
        add(f"{kind}-{len(cases)}", bytes(data))
    return cases


def _structured_damage(source: Path, original: bytes, rng: random.Random, add) -> None:
    """Each attribute and dataset made wrong in each way (through h5py), config damage, non-HDF5 files."""
    with h5py.File(source, "r") as handle:
        trial_names = list(handle[schema.TRIALS_GROUP])
    trial = f"{schema.TRIALS_GROUP}/{trial_names[0]}"
    root_keys = ["format", "format_version", "config", "created", "status", *schema.ENVIRONMENT_ATTRS,
                 *schema.CLASS_BALANCE_ATTRS]
    for key in root_keys:
        for label, value in WRONG_VALUES.items():
            with h5py.File(add(f"root-{key}-{label}"), "r+") as handle:
                handle.attrs[key] = value
        with h5py.File(add(f"root-{key}-deleted"), "r+") as handle:
            if key in handle.attrs:
                del handle.attrs[key]
    for key in schema.TRIAL_ATTRS:
        for label, value in WRONG_VALUES.items():
            with h5py.File(add(f"trial-{key}-{label}"), "r+") as handle:
                handle[trial].attrs[key] = value
        with h5py.File(add(f"trial-{key}-deleted"), "r+") as handle:
            del handle[trial].attrs[key]
    # The source has no name, notes or tags: only wrong values, no "deleted" variants that would copy it unchanged.
    for key in schema.ANNOTATION_ATTRS:
        for label, value in WRONG_VALUES.items():
            with h5py.File(add(f"root-{key}-{label}"), "r+") as handle:
                handle.attrs[key] = value
    for label, (key, value) in ANNOTATION_DAMAGE.items():
        with h5py.File(add(f"annotation-{label}"), "r+") as handle:
            handle.attrs[key] = value
    for label, text in CONFIG_DAMAGE.items():
        with h5py.File(add(f"config-{label}"), "r+") as handle:
            handle.attrs["config"] = text
    for group_name, metrics in ((schema.EPOCH_GROUP, schema.EPOCH_METRICS), (schema.STEP_GROUP, schema.STEP_METRICS)):
        for metric in metrics:
            for damage in DATASET_DAMAGE:
                with h5py.File(add(f"dataset-{group_name}-{metric.name}-{damage}"), "r+") as handle:
                    _damage_dataset(handle[f"{trial}/{group_name}"], metric.name, damage)
    for label in ("trials_is_dataset", "trial_is_dataset", "epoch_is_dataset", "no_trials"):
        with h5py.File(add(f"layout-{label}"), "r+") as handle:
            if label == "trials_is_dataset":
                del handle[schema.TRIALS_GROUP]
                handle[schema.TRIALS_GROUP] = np.arange(3)
            elif label == "trial_is_dataset":
                del handle[trial]
                handle[trial] = np.arange(3)
            elif label == "epoch_is_dataset":
                del handle[f"{trial}/{schema.EPOCH_GROUP}"]
                handle[f"{trial}/{schema.EPOCH_GROUP}"] = np.arange(3)
            else:
                del handle[schema.TRIALS_GROUP]

    # Files that are not HDF5 at all, or barely.
    add("empty", b"")
    add("text", b"not a run file\n" * 10)
    add("random", bytes(rng.randrange(256) for _ in range(4096)))
    add("png", b"\x89PNG\r\n\x1a\n" + bytes(200))
    add("signature_only", original[:8])
    add("signature_then_random", original[:8] + bytes(rng.randrange(256) for _ in range(2048)))


def _damage_dataset(group: h5py.Group, name: str, damage: str) -> None:
    values = group[name][()]
    del group[name]
    if damage == "two_d":
        group[name] = np.ones((len(values), 2))
    elif damage == "text":
        group[name] = np.array([b"abc"] * max(len(values), 1))
    elif damage == "scalar":
        group[name] = 3.0
    elif damage == "huge_shape":
        # Claims 2**55 rows without storing them: reading it would ask numpy for 256 PiB.
        group.create_dataset(name, shape=(2 ** 55,), maxshape=(None,), chunks=(64,), dtype="f8")
    elif damage == "group":
        group.create_group(name)
    elif damage == "short":
        group[name] = values[:1]
    elif damage == "nan":
        group[name] = np.full(len(values), np.nan)
    elif damage == "bool":
        group[name] = np.ones(len(values), dtype=bool)
    elif damage == "compound":
        group[name] = np.zeros(len(values), dtype=[("a", "f8"), ("b", "i4")])


# ------------------------------------------------------------------------------------------------ the worker


def _worker(in_process: bool, listing: Path) -> None:
    """Reads case paths from the listing file, one per line; answers one JSON line per case on stdout."""
    import contextlib
    import io
    import traceback

    from engine.cli import main as cli_main
    from engine.errors import RunFileError
    from engine.runfile import read_header, read_run
    from engine.runfile_reader import read_header_here, read_run_here

    header_reader, run_reader = (read_header_here, read_run_here) if in_process else (read_header, read_run)
    out = sys.stdout
    sys.stdout = io.StringIO()   # what the consumers print must not mix with the answers
    for path in listing.read_text().splitlines():
        problems = []
        if not in_process:
            stdout, stderr = io.StringIO(), io.StringIO()
            try:
                with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                    code = cli_main(["report", path])
            except BaseException:  # noqa: BLE001 — a traceback is what this harness counts
                code, problems = -1, problems + ["report: " + traceback.format_exc(limit=3)]
            errors = stderr.getvalue().strip().splitlines()
            if code == 2 and (len(errors) != 1 or path not in errors[0]):
                problems.append(f"report: not one line naming the file: {errors!r}")
            elif code not in (0, 2) and not problems:
                problems.append(f"report: exit status {code}: {errors!r}")
        for label, reader in (("read_header", header_reader), ("read_run", run_reader)):
            try:
                reader(path)
            except RunFileError as error:
                if "\n" in str(error) or path not in str(error):
                    problems.append(f"{label}: not one line naming the file: {error}")
            except BaseException:  # noqa: BLE001
                problems.append(f"{label}: " + traceback.format_exc(limit=3))
        out.write(json.dumps({"path": path, "problems": problems}) + "\n")
        out.flush()


@dataclass
class Outcome:
    crashes: list[tuple[str, str]] = field(default_factory=list)   # (case path, signal)
    hangs: list[str] = field(default_factory=list)
    tracebacks: list[tuple[str, list[str]]] = field(default_factory=list)
    passed: int = 0
    seconds: float = 0.0


def spin_forever(path: Path) -> None:
    """A reader-process function that never ends and burns CPU, as HDF5 looping on a damaged file does."""
    while True:
        pass


def wait_then_answer(path: Path) -> str:
    """A reader-process function that waits without working (for a core, a slow disk), then answers."""
    time.sleep(1.5)
    return "answered"


def run_corpus(paths: list[Path], in_process: bool = False, hang_s: float = 120.0) -> Outcome:
    """Each path through the consumers in one worker process, restarted after a crash or a hang."""
    outcome = Outcome()
    started = time.monotonic()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    pending = [str(path) for path in paths]
    listing = Path(paths[0]).parent / "pending.txt"
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(listing)]
    command += ["--in-process"] if in_process else []
    while pending:
        listing.write_text("".join(path + "\n" for path in pending))
        worker = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, env=env,
                                  cwd=ROOT)
        while pending:
            ready, _, _ = select.select([worker.stdout], [], [], hang_s)
            line = worker.stdout.readline() if ready else None
            if not line:
                if line is None:
                    worker.kill()
                    outcome.hangs.append(pending.pop(0))
                else:
                    code = worker.wait()
                    how = signal.Signals(-code).name if code < 0 else f"exit status {code}"
                    outcome.crashes.append((pending.pop(0), how))
                break
            answer = json.loads(line)
            assert answer["path"] == pending[0], (answer, pending[0])
            pending.pop(0)
            if answer["problems"]:
                outcome.tracebacks.append((answer["path"], answer["problems"]))
            else:
                outcome.passed += 1
        worker.wait()
    outcome.seconds = time.monotonic() - started
    return outcome


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=3000, help="how many damaged files")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--in-process", action="store_true",
                        help="read in the harness's worker itself, without the reader process (to measure crashes)")
    parser.add_argument("--legacy", action="store_true", help="damage a file in the format version 1 writer's "
                        "HDF5 settings (oldest format, no checksums)")
    parser.add_argument("--folder", type=Path, help="keep the corpus here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.in_process, args.worker)
        return 0
    import tempfile
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.folder or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        source = write_source(folder / "source.h5")
        if args.legacy:
            source = write_legacy_copy(source, folder / "legacy.h5")
        cases = make_corpus(source, folder / "corpus", args.count, args.seed,
                            flips=LEGACY_CRASHERS if args.legacy else ())
        outcome = run_corpus([case.path for case in cases], in_process=args.in_process)
    for path, how in outcome.crashes:
        print(f"CRASH {how}: {path}")
    for path in outcome.hangs:
        print(f"HANG: {path}")
    for path, problems in outcome.tracebacks:
        print(f"TRACEBACK: {path}\n  " + "\n  ".join(problems))
    print(f"{len(cases)} damaged files in {outcome.seconds:.1f} s: {outcome.passed} passed, "
          f"{len(outcome.crashes)} crashes, {len(outcome.hangs)} hangs, {len(outcome.tracebacks)} with tracebacks")
    return 0 if outcome.passed == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
