"""Writing and reading run files (HDF5, one per experiment). The layout is in engine/schema.py; the choices
below are measured in docs/run-files.md.

Crash safety: per-step rows are buffered in memory and written together with each epoch row, followed by a
flush. Between flushes the writer does not touch the file, so a writer killed at any moment other than
inside that short write leaves a file that opens and holds every finished epoch.

File format: HDF5's 1.8 format (libver v108), whose metadata all carries checksums, and a Fletcher-32
checksum on every dataset, so damage reads as an error rather than as wrong numbers. Not the 1.10 format:
it marks a file "open for writing" and then refuses to open a crashed writer's file.

A full disk or a file size limit: before each write the writer reserves the room it can need (with
posix_fallocate), so a write never starts that the disk cannot hold. When the room is not there, the sweep
stops with RunWriteError and the file, closed from the room kept for that, holds every finished epoch.

Creation is exclusive (HDF5's create-only mode, O_EXCL underneath): a file that exists is never truncated.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from engine import schema
from engine.errors import RunFileError, RunWriteError

_CHUNK_ROWS = {schema.EPOCH_GROUP: 64, schema.STEP_GROUP: 4096, schema.EVAL_GROUP: 64, schema.NOISE_GROUP: 256,
               schema.TELEMETRY_GROUP: 1024, schema.TRAINING_CLOCK_GROUP: 256}
# Rows that wait in memory for the next epoch row (or the trial's end) to be written with it.
_BUFFERED_GROUPS = (schema.STEP_GROUP, schema.EVAL_GROUP, schema.NOISE_GROUP, schema.TELEMETRY_GROUP,
                    schema.TRAINING_CLOCK_GROUP)
LIBVER = ("v108", "v108")
# Room reserved before each write, beyond the rows themselves: one new chunk per dataset, the metadata that
# grows with it (B-tree nodes, object headers), and what closing the file after a failed reservation writes.
# tests/test_disk_full.py checks under twenty file size limits that no write ever needs more.
METADATA_ROOM = 64 * 1024
TRIAL_ROOM = 128 * 1024
CLOSE_ROOM = 64 * 1024


def run_file_path(out_dir: Path, name: str, stamp: str, number: int = 1) -> Path:
    """out_dir/<name>-<stamp>[-<number>].h5, the name shortened (at a character boundary) to fit the file
    system's limit on a file name's bytes, and characters a file name cannot hold replaced."""
    suffix = f"-{stamp}" + (f"-{number}" if number > 1 else "") + ".h5"
    try:
        limit = min(os.pathconf(out_dir, "PC_NAME_MAX"), 255)
    except (AttributeError, OSError, ValueError):
        limit = 255
    safe = "".join("_" if ord(c) < 32 or c in "/\\\x7f" else c for c in name) or "run"
    budget = max(1, limit - len(suffix.encode()))
    return out_dir / (safe.encode()[:budget].decode("utf-8", "ignore") + suffix)


def _now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


class RunWriter:
    """Writes one run file as a sweep goes. Not thread-safe: one writer, one thread."""

    def __init__(self, path: Path, config_text: str, environment: dict[str, Any]):
        """Creates the file; raises FileExistsError when it exists (never overwritten), RunWriteError when the
        disk has no room for it (the empty file is removed again)."""
        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "x", libver=LIBVER)
        except OSError as error:
            # HDF5 says "file exists" without an errno when this process has that file open already.
            if isinstance(error, FileExistsError) or "file exists" in str(error):
                raise FileExistsError(errno.EEXIST, "File exists", str(self.path)) from None
            raise _write_error(self.path, error) from None
        self._room = _Room(self.path)
        self._failure: RunWriteError | None = None
        self._open_trials: set[str] = set()
        try:
            with self._writing(METADATA_ROOM + len(config_text.encode())):
                self._write_header(config_text, environment)
        except RunWriteError:
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise

    def _write_header(self, config_text: str, environment: dict[str, Any]) -> None:
        attrs = self._file.attrs
        attrs["format"] = schema.FORMAT
        attrs["format_version"] = schema.FORMAT_VERSION
        attrs["config"] = config_text
        self.created = _now_iso()
        attrs["created"] = self.created
        attrs["status"] = schema.RUNNING
        for key, value in environment.items():
            # str() turns str subclasses (torch's version object) into text h5py stores as a string.
            attrs[key] = str(value) if isinstance(value, str) else value
        self._trials = self._file.create_group(schema.TRIALS_GROUP)
        self._pending: dict[str, dict[str, list[dict[str, np.ndarray]]]] = {}
        self._file.flush()

    @classmethod
    def create(cls, out_dir: Path, name: str, config_text: str, environment: dict[str, Any]) -> "RunWriter":
        """A new run file in out_dir, named <name>-<date>-<time>[-<n>].h5: never one that exists, so two runs
        of one name started in the same second, by two processes, get two files."""
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        number = 1
        while True:
            try:
                return cls(run_file_path(Path(out_dir), name, stamp, number), config_text, environment)
            except FileExistsError:
                number += 1

    @classmethod
    def reopen(cls, path: Path) -> "RunWriter":
        """Continue writing a run file that a resume goes on with: the header stays as written, the status is
        `running` again and now is added to the `resumed` list. Raises OSError when HDF5 cannot open the file
        for writing (read-only, or locked by a process that is still writing it), RunWriteError when the disk
        has no room. What it adds is written in this writer's format, whatever the file's own."""
        writer = cls.__new__(cls)
        writer.path = Path(path)
        # locking=True whatever the environment says: two writers on one file would destroy it.
        writer._file = h5py.File(writer.path, "r+", libver=LIBVER, locking=True)
        writer._trials = writer._file[schema.TRIALS_GROUP]
        writer._pending = {}
        writer._room, writer._failure, writer._open_trials = _Room(writer.path), None, set()
        attrs = writer._file.attrs
        writer.created = _text(attrs.get("created", ""))
        with writer._writing(METADATA_ROOM):
            earlier = attrs.get(schema.RESUMED_ATTR)
            earlier = [] if earlier is None else [_text(moment) for moment in np.atleast_1d(earlier)]
            attrs[schema.RESUMED_ATTR] = [*earlier, _now_iso()]
            attrs["status"] = schema.RUNNING
            writer._file.flush()
        return writer

    def set_aside(self, name: str) -> int:
        """Move a trial that is to be trained again out of /trials into /attempts/<name>/<n>, untouched but for
        schema.ATTEMPT_ATTRS; returns n (1 for the first earlier attempt)."""
        with self._writing(METADATA_ROOM):
            attempts = self._file.require_group(schema.ATTEMPTS_GROUP).require_group(name)
            number = len(attempts) + 1
            self._file.move(f"{schema.TRIALS_GROUP}/{name}", f"{schema.ATTEMPTS_GROUP}/{name}/{number}")
            moved = attempts[str(number)].attrs
            for key, value in zip(schema.ATTEMPT_ATTRS, (name, number, _now_iso())):
                moved[key] = value
            self._file.flush()
        return number

    def start_trial(self, name: str, attrs: dict[str, Any]) -> None:
        with self._writing(TRIAL_ROOM):
            group = self._trials.create_group(name)
            self._open_trials.add(name)
            for key, value in attrs.items():
                group.attrs[key] = value
            group.attrs["status"] = schema.RUNNING
            group.attrs["error"] = ""
            for group_name, metrics in schema.TRIAL_GROUPS.items():
                sub = group.create_group(group_name)
                for metric in metrics:
                    dataset = sub.create_dataset(metric.name, shape=(0,), maxshape=(None,), dtype=metric.dtype,
                                                 chunks=(_CHUNK_ROWS[group_name],), fletcher32=True)
                    dataset.attrs["units"] = metric.units
            self._pending[name] = {group_name: [] for group_name in _BUFFERED_GROUPS}
            self._file.flush()

    def add_steps(self, name: str, columns: dict[str, np.ndarray]) -> None:
        """Queue step rows; they reach the file with the next epoch row or when the trial ends."""
        self.add_rows(name, schema.STEP_GROUP, columns)

    def add_rows(self, name: str, group_name: str, columns: dict[str, np.ndarray]) -> None:
        """Queue rows of a step, eval or noise group (one array per metric of schema.TRIAL_GROUPS[group_name]);
        they reach the file with the next epoch row or when the trial ends."""
        if self._failure is not None:   # the file is closed; a trial that never started has no queue
            raise self._failure
        self._pending[name][group_name].append({key: np.atleast_1d(values) for key, values in columns.items()})

    def add_epoch(self, name: str, metrics: dict[str, float]) -> None:
        with self._writing(self._pending_room(name) + self._rows_room(name, schema.EPOCH_GROUP, 1)):
            self._write_pending(name)
            epoch_group = self._trials[name][schema.EPOCH_GROUP]
            _append(epoch_group, {m.name: np.asarray([metrics[m.name]]) for m in schema.EPOCH_METRICS})
            self._file.flush()

    def set_trial_attrs(self, name: str, attrs: dict[str, Any]) -> None:
        """Attributes learnt about a trial after it started (a search's objective, a pruned trial's step)."""
        with self._writing(METADATA_ROOM):
            for key, value in attrs.items():
                self._trials[name].attrs[key] = value
            self._file.flush()

    def end_trial(self, name: str, status: str, error: str = "") -> None:
        with self._writing(self._pending_room(name) + len(error.encode())):
            self._write_pending(name)
            group = self._trials[name]
            group.attrs["status"] = status
            group.attrs["error"] = error
            self._open_trials.discard(name)
            self._file.flush()

    def add_table(self, group_name: str, metrics: tuple[schema.Metric, ...], columns: dict[str, np.ndarray],
                  attrs: dict[str, Any]) -> None:
        """A root group of one-dimensional datasets (one per metric, with its units) and attributes, written at
        once: for files that hold something other than trials (find-max-batch's tries)."""
        room = sum(np.asarray(columns[m.name]).nbytes for m in metrics) + METADATA_ROOM
        with self._writing(room):
            group = self._file.create_group(group_name)
            for metric in metrics:
                dataset = group.create_dataset(metric.name, data=np.asarray(columns[metric.name], dtype=metric.dtype),
                                               fletcher32=True)
                dataset.attrs["units"] = metric.units
            for key, value in attrs.items():
                group.attrs[key] = value
            self._file.flush()

    def close(self, status: str) -> None:
        """Mark the run finished with this status and close the file. After a RunWriteError the file was
        closed already, with the status `failed`."""
        if not self._file.id.valid:
            return
        try:
            with self._writing(None):   # the previous write reserved the room for this
                self._file.attrs["status"] = status
                self._file.attrs["finished"] = _now_iso()
                self._file.flush()
        except RunWriteError:
            return
        self._close_file()

    @property
    def failure(self) -> RunWriteError | None:
        """The write error that stopped this writer, if one did."""
        return self._failure

    @contextlib.contextmanager
    def _writing(self, room: int | None):
        """Reserve `room` bytes (plus what closing needs) before touching the file; a write error or a
        missing room stops the writer for good, and the file is closed with every finished epoch."""
        if self._failure is not None:
            raise self._failure
        try:
            if room is not None:
                self._room.reserve(self._file.id.get_filesize(), room + CLOSE_ROOM)
        except OSError as error:
            self._stop(_write_error(self.path, error), reserved=True)
        try:
            yield
        except OSError as error:
            self._stop(_write_error(self.path, error), reserved=False)
        except RuntimeError as error:  # h5py reports some failed flushes as RuntimeError
            self._stop(RunWriteError(f"cannot write {self.path} ({error}); the run stopped"), reserved=False)

    def _stop(self, failure: RunWriteError, reserved: bool):
        """Close the file for good after a write error; with the room that the previous write reserved for
        closing, the running trials are marked failed with the reason. Raises the failure."""
        self._failure = failure
        if reserved:
            # Nothing was written since the last flush, and CLOSE_ROOM is allocated: this close fits.
            with contextlib.suppress(OSError, RuntimeError):
                for name in sorted(self._open_trials):
                    self._trials[name].attrs["status"] = schema.FAILED
                    self._trials[name].attrs["error"] = str(failure)
                self._file.attrs["status"] = schema.FAILED
                self._file.attrs["finished"] = _now_iso()
                self._file.flush()
        self._close_file()
        raise failure

    def _close_file(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self._file.close()
        self._room.close()

    def _pending_room(self, name: str) -> int:
        if self._failure is not None:   # the file is closed: nothing to measure, the failure is raised next
            return 0
        pending = self._pending.get(name, {})
        # Rows counted by each group's first column (telemetry rows have no step column).
        return sum(self._rows_room(name, group_name,
                                   sum(len(chunk[schema.TRIAL_GROUPS[group_name][0].name]) for chunk in chunks))
                   for group_name, chunks in pending.items())

    def _rows_room(self, name: str, group_name: str, rows: int) -> int:
        """The most appending `rows` rows to a trial's group can add to the file: the chunks they start
        (allocated whole, plus a 4-byte checksum) and the metadata that indexes them."""
        if not rows or self._failure is not None:
            return 0
        group = self._trials[name][group_name]
        metrics = schema.TRIAL_GROUPS[group_name]
        chunk_rows = _CHUNK_ROWS[group_name]
        before = group[metrics[0].name].shape[0]
        new_chunks = -(-(before + rows) // chunk_rows) - -(-before // chunk_rows)
        row_bytes = sum(np.dtype(m.dtype).itemsize for m in metrics)
        return new_chunks * (chunk_rows * row_bytes + 4 * len(metrics)) + METADATA_ROOM

    def _write_pending(self, name: str) -> None:
        for group_name, pending in self._pending[name].items():
            if not pending:
                continue
            columns = {m.name: np.concatenate([chunk[m.name] for chunk in pending])
                       for m in schema.TRIAL_GROUPS[group_name]}
            _append(self._trials[name][group_name], columns)
            pending.clear()


def set_root_attributes(path: Path, values: dict[str, Any]) -> None:
    """Set root attributes of a run file that no process is writing (None removes one), with the writer's care:
    HDF5's lock is held throughout (a writer that starts meanwhile is refused), the room is reserved before
    anything is written (a full disk changes nothing), and h5py writes each value as a new attribute renamed
    over the old one, so a value that fails to write leaves the old. Raises OSError when the file cannot be
    opened for writing (BlockingIOError: another process holds it), RunWriteError when there is no room."""
    path = Path(path)
    handle = h5py.File(path, "r+", libver=LIBVER, locking=True)
    room = _Room(path)
    try:
        needed = METADATA_ROOM + CLOSE_ROOM + sum(len(str(value).encode()) for value in values.values())
        try:
            room.reserve(handle.id.get_filesize(), needed)
        except OSError as error:
            raise _write_error(path, error, "nothing in it was changed") from None
        try:
            for key, value in values.items():
                if value is None:
                    if key in handle.attrs:
                        del handle.attrs[key]
                else:
                    handle.attrs[key] = value
            handle.flush()
        except (OSError, RuntimeError) as error:   # h5py reports some failed writes as RuntimeError
            raise RunWriteError(f"cannot write {path} ({error})") from None
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            handle.close()
        room.close()


def _write_error(path: Path, error: OSError,
                 consequence: str = "the run stopped, and the file keeps every epoch finished before this"
                 ) -> RunWriteError:
    reason = {errno.ENOSPC: f"disk full writing {path}", errno.EFBIG: f"file size limit reached writing {path}",
              errno.EDQUOT: f"disk quota exceeded writing {path}"}.get(
        error.errno, f"cannot write {path} ({error.strerror or error})")
    return RunWriteError(f"{reason}; {consequence}")


class _Room:
    """Keeps disk blocks allocated at the end of a file being written, so that HDF5's next write cannot fail
    halfway for lack of space (which would leave its metadata half-written and the file unreadable).

    HDF5 writes only at or below its end-of-allocation mark; posix_fallocate from there on claims the blocks
    first, and fails with ENOSPC (a full disk) or EFBIG (a file size limit, `ulimit -f`) before anything is
    written. Where posix_fallocate is missing (Windows, macOS), the free space is checked instead."""

    def __init__(self, path: Path):
        self.path = path
        self._descriptor = os.open(path, os.O_RDWR) if hasattr(os, "posix_fallocate") else None

    def reserve(self, end_of_data: int, room: int) -> None:
        if self._descriptor is not None:
            os.posix_fallocate(self._descriptor, end_of_data, max(room, 1))
            return
        import shutil
        if shutil.disk_usage(self.path.parent).free < room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close(self) -> None:
        """Give back the room not used: cut the file where HDF5's data ends (read from its superblock)."""
        if self._descriptor is None:
            return
        try:
            end = _end_of_data(self._descriptor)
            if end is not None and end < os.fstat(self._descriptor).st_size:
                os.ftruncate(self._descriptor, end)
        except OSError:
            pass
        finally:
            os.close(self._descriptor)
            self._descriptor = None


def _end_of_data(descriptor: int) -> int | None:
    """The end-of-file address in an HDF5 superblock at offset 0 (versions 0 to 3, 8-byte addresses)."""
    head = os.pread(descriptor, 64, 0)
    if len(head) < 56 or head[:8] != b"\x89HDF\r\n\x1a\n":
        return None
    version = head[8]
    if version in (0, 1):
        offset = 40 if version == 0 else 44
        if head[13] != 8:
            return None
    elif version in (2, 3):
        offset = 28
        if head[9] != 8:
            return None
    else:
        return None
    return int.from_bytes(head[offset:offset + 8], "little")


def _append(group: h5py.Group, columns: dict[str, np.ndarray]) -> None:
    for key, values in columns.items():
        dataset = group[key]
        start = dataset.shape[0]
        dataset.resize((start + len(values),))
        dataset[start:] = values


def _empty(group_name: str) -> dict[str, np.ndarray]:
    return {m.name: np.empty(0, dtype=m.dtype) for m in schema.TRIAL_GROUPS[group_name]}


@dataclass
class TrialData:
    name: str
    batch_size: int
    seed: int
    lr: float
    base_lr: float
    status: str
    error: str
    parameter_count: int
    steps_per_epoch: int
    epoch: dict[str, np.ndarray]   # one array per schema.EPOCH_METRICS name, all the same length
    step: dict[str, np.ndarray]    # one array per schema.STEP_METRICS name
    # schema.SEARCH_TRIAL_ATTRS; files written before them read as a grid's trials, with nothing unmeasured made up.
    proposed_by: str = "grid"
    search_point: int = -1
    objective: float = math.nan
    pruned_step: int = -1
    # schema.EVAL_METRICS and schema.NOISE_METRICS columns; empty in files written before those groups.
    eval: dict[str, np.ndarray] = field(default_factory=lambda: _empty(schema.EVAL_GROUP))
    noise: dict[str, np.ndarray] = field(default_factory=lambda: _empty(schema.NOISE_GROUP))
    # schema.TELEMETRY_METRICS columns and why a source was not sampled; empty in files written before them.
    telemetry: dict[str, np.ndarray] = field(default_factory=lambda: _empty(schema.TELEMETRY_GROUP))
    telemetry_unavailable: str = ""
    # schema.TRAINING_CLOCK_METRICS columns: the training clock on the telemetry's; empty in files written before it.
    training_clock: dict[str, np.ndarray] = field(default_factory=lambda: _empty(schema.TRAINING_CLOCK_GROUP))
    noise_scale_unavailable: str = ""    # schema.NOISE_UNAVAILABLE_ATTR: why the noise scale was not measured
    # schema.TRIAL_MEMORY_ATTRS; NaN and "" where the file lacks them (version 1, a trial stopped before its 2nd step).
    step_memory_bytes: float = math.nan
    step_memory_method: str = ""
    # schema.RANK_ATTRS: a trial trained in one process (every trial of files before them) has 1 rank, and no
    # communication time, which is not measured rather than zero.
    ranks: int = 1
    communication_s: float = math.nan
    # schema.EXECUTION_ATTR: how it trained when sweep.ensemble asked; "" where the file does not say.
    execution: str = ""
    # schema.TRIAL_PRECISION_ATTR; files written before it take their config's train.precision ("" if unreadable).
    precision: str = ""

    @property
    def epochs_done(self) -> int:
        return len(self.epoch["epoch"])


@dataclass
class RunHeader:
    """What the runs browser lists, read without loading any metric arrays."""
    path: Path
    name: str
    created: str
    status: str
    dataset: str
    model: str
    batch_sizes: list[int]
    trial_count: int
    trial_statuses: dict[str, int]
    device_name: str
    being_written: bool = False     # a process holds the file open for writing now
    # What the user said about the run (engine.annotations): the name they gave it ('' when none; `name` is then
    # the config's), notes and tags.
    given_name: str = ""
    notes: str = ""
    tags: tuple[str, ...] = ()
    config_text: str = ""           # the experiment config as stored (TOML), for comparing runs without their data

    @property
    def note(self) -> str:
        """What a reader should know about a file that is not finished, in words ('' when finished)."""
        if self.status != schema.RUNNING:
            return ""
        if self.being_written:
            return "being written: a sweep is running"
        return ("not closed by its writer (a crash, a kill or a power cut): it holds every epoch that finished "
                "before that")


@dataclass
class RunData:
    path: Path
    header: RunHeader
    config_text: str
    environment: dict[str, Any]
    trials: list[TrialData] = field(default_factory=list)
    num_classes: int | None = None                 # None in files written before it was recorded
    val_majority_fraction: float | None = None     # the largest class's share of the validation set

    @property
    def config(self) -> dict[str, Any]:
        """The config as a plain table (not re-validated: its dataset file may have moved since)."""
        return tomllib.loads(self.config_text)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# Reading. Run files come from anywhere (other machines, crashed writers, damaged disks) and a damaged HDF5
# file can crash the HDF5 library, so every read happens in the reader process, with every value checked
# (engine/runfile_reader.py). A file another process is writing is read without HDF5's lock; a read that
# catches the writer mid-flush fails and is tried again a few times.
LIVE_READ_ATTEMPTS = 5
LIVE_READ_PAUSE_S = 0.1


def read_header(path: str | Path) -> RunHeader:
    """The summary of a run file for a listing. Raises RunFileError for anything that is not a run file."""
    from engine.runfile_reader import read_header_here
    return _read(read_header_here, Path(path))


def read_run(path: str | Path) -> RunData:
    """Every trial and metric of a run file. Raises RunFileError for anything that is not a run file."""
    from engine.runfile_reader import read_run_here
    return _read(read_run_here, Path(path))


def read_attempts(path: str | Path) -> dict[str, list[TrialData]]:
    """Earlier attempts of trials that a resume trained again, by trial name, oldest first. read_run leaves
    them out: metrics and analyses use each trial's last attempt, the one in /trials."""
    from engine.runfile_reader import read_attempts_here
    return _read(read_attempts_here, Path(path))


def _read(function, path: Path):
    import time

    from engine import reader_process
    from engine.runfile_reader import is_being_written

    for attempt in range(1, LIVE_READ_ATTEMPTS + 1):
        try:
            return reader_process.call(function, path)
        except RunFileError:
            if not is_being_written(path):
                raise
            if attempt == LIVE_READ_ATTEMPTS:
                # Not damage: the writer saved so often that every try caught it mid-save (epochs of a few
                # milliseconds); the file itself is whole between saves.
                raise RunFileError(f"{path}: could not be read while it is being written: each of "
                                   f"{LIVE_READ_ATTEMPTS} tries caught the writer saving; try again, or once the "
                                   "run has ended") from None
        time.sleep(LIVE_READ_PAUSE_S * attempt)
