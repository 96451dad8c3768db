"""Writing and reading run files (HDF5, one per experiment). The layout is in engine/schema.py.

Crash safety: per-step rows are buffered in memory and written together with each epoch row, followed by a
flush. Between flushes the writer does not touch the file, so a writer killed at any moment other than
inside that short write leaves a file that opens and holds every finished epoch. The default (oldest)
HDF5 superblock format is kept on purpose: the newer one marks a file "open for writing" and refuses to
reopen it after a crash.
"""
from __future__ import annotations

import datetime as _dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from engine import schema
from engine.errors import RunFileError

_CHUNK_ROWS = {schema.EPOCH_GROUP: 64, schema.STEP_GROUP: 4096}


def _now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


class RunWriter:
    """Writes one run file as a sweep goes. Not thread-safe: one writer, one thread."""

    def __init__(self, path: Path, config_text: str, environment: dict[str, Any]):
        self.path = Path(path)
        self._file = h5py.File(self.path, "w")
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
        self._pending_steps: dict[str, list[dict[str, np.ndarray]]] = {}
        self._file.flush()

    @classmethod
    def reopen(cls, path: Path) -> "RunWriter":
        """Continue writing a run file that a resume goes on with: the header stays as written, the status is
        `running` again and now is added to the `resumed` list. Raises OSError when HDF5 cannot open the file
        for writing (read-only, or locked by a process that is still writing it)."""
        writer = cls.__new__(cls)
        writer.path = Path(path)
        # locking=True whatever the environment says: two writers on one file would destroy it.
        writer._file = h5py.File(writer.path, "r+", locking=True)
        attrs = writer._file.attrs
        writer.created = _text(attrs.get("created", ""))
        earlier = attrs.get(schema.RESUMED_ATTR)
        attrs[schema.RESUMED_ATTR] = [*([] if earlier is None else map(_text, np.atleast_1d(earlier))), _now_iso()]
        attrs["status"] = schema.RUNNING
        writer._trials = writer._file[schema.TRIALS_GROUP]
        writer._pending_steps = {}
        writer._file.flush()
        return writer

    def set_aside(self, name: str) -> int:
        """Move a trial that is to be trained again out of /trials into /attempts/<name>/<n>, untouched but for
        schema.ATTEMPT_ATTRS; returns n (1 for the first earlier attempt)."""
        attempts = self._file.require_group(schema.ATTEMPTS_GROUP).require_group(name)
        number = len(attempts) + 1
        self._file.move(f"{schema.TRIALS_GROUP}/{name}", f"{schema.ATTEMPTS_GROUP}/{name}/{number}")
        moved = attempts[str(number)].attrs
        for key, value in zip(schema.ATTEMPT_ATTRS, (name, number, _now_iso())):
            moved[key] = value
        self._file.flush()
        return number

    def start_trial(self, name: str, attrs: dict[str, Any]) -> None:
        group = self._trials.create_group(name)
        for key, value in attrs.items():
            group.attrs[key] = value
        group.attrs["status"] = schema.RUNNING
        group.attrs["error"] = ""
        for group_name, metrics in ((schema.EPOCH_GROUP, schema.EPOCH_METRICS),
                                    (schema.STEP_GROUP, schema.STEP_METRICS)):
            sub = group.create_group(group_name)
            for metric in metrics:
                dataset = sub.create_dataset(metric.name, shape=(0,), maxshape=(None,), dtype=metric.dtype,
                                             chunks=(_CHUNK_ROWS[group_name],))
                dataset.attrs["units"] = metric.units
        self._pending_steps[name] = []
        self._file.flush()

    def add_steps(self, name: str, columns: dict[str, np.ndarray]) -> None:
        """Queue step rows; they reach the file with the next epoch row or when the trial ends."""
        self._pending_steps[name].append(columns)

    def add_epoch(self, name: str, metrics: dict[str, float]) -> None:
        self._write_pending_steps(name)
        epoch_group = self._trials[name][schema.EPOCH_GROUP]
        _append(epoch_group, {m.name: np.asarray([metrics[m.name]]) for m in schema.EPOCH_METRICS})
        self._file.flush()

    def end_trial(self, name: str, status: str, error: str = "") -> None:
        self._write_pending_steps(name)
        group = self._trials[name]
        group.attrs["status"] = status
        group.attrs["error"] = error
        self._file.flush()

    def close(self, status: str) -> None:
        if not self._file.id.valid:
            return
        self._file.attrs["status"] = status
        self._file.attrs["finished"] = _now_iso()
        self._file.close()

    def _write_pending_steps(self, name: str) -> None:
        pending = self._pending_steps[name]
        if not pending:
            return
        columns = {m.name: np.concatenate([chunk[m.name] for chunk in pending]) for m in schema.STEP_METRICS}
        _append(self._trials[name][schema.STEP_GROUP], columns)
        pending.clear()


def _append(group: h5py.Group, columns: dict[str, np.ndarray]) -> None:
    for key, values in columns.items():
        dataset = group[key]
        start = dataset.shape[0]
        dataset.resize((start + len(values),))
        dataset[start:] = values


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


def _open(path: Path) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise RunFileError(f"{path}: no such file")
    if path.is_dir():
        raise RunFileError(f"{path}: is a folder, not a run file")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise RunFileError(f"{path}: not a Batch Size Lab run file (not readable as HDF5: {error})") from None
    try:
        fmt = handle.attrs.get("format")
        version = handle.attrs.get("format_version")
        if fmt != schema.FORMAT:
            raise RunFileError(f"{path}: not a Batch Size Lab run file (HDF5, but no format = "
                               f"'{schema.FORMAT}' attribute)")
        if version is None or int(version) > schema.FORMAT_VERSION:
            raise RunFileError(f"{path}: written by a newer Batch Size Lab (format version {version}); "
                               f"this one reads up to {schema.FORMAT_VERSION}")
        if schema.TRIALS_GROUP not in handle:
            raise RunFileError(f"{path}: damaged run file (no '{schema.TRIALS_GROUP}' group)")
    except BaseException:
        handle.close()
        raise
    return handle


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _header(path: Path, handle: h5py.File) -> RunHeader:
    attrs = handle.attrs
    try:
        config = tomllib.loads(_text(attrs.get("config", "")))
    except tomllib.TOMLDecodeError:
        config = {}
    trials = handle[schema.TRIALS_GROUP]
    batch_sizes = sorted({int(trials[name].attrs.get("batch_size", 0)) for name in trials})
    statuses: dict[str, int] = {}
    for name in trials:
        status = _text(trials[name].attrs.get("status", schema.RUNNING))
        statuses[status] = statuses.get(status, 0) + 1
    return RunHeader(
        path=Path(path), name=str(config.get("name", Path(path).stem)), created=_text(attrs.get("created", "")),
        status=_text(attrs.get("status", schema.RUNNING)), dataset=str(config.get("data", {}).get("dataset", "")),
        model=str(config.get("model", {}).get("kind", "")), batch_sizes=batch_sizes, trial_count=len(trials),
        trial_statuses=statuses, device_name=_text(attrs.get("device_name", "")))


def read_header(path: str | Path) -> RunHeader:
    """The summary of a run file for a listing. Raises RunFileError for anything that is not a run file."""
    with _open(Path(path)) as handle:
        try:
            return _header(Path(path), handle)
        except (KeyError, OSError, ValueError) as error:
            raise RunFileError(f"{path}: damaged run file ({error})") from None


def read_run(path: str | Path) -> RunData:
    """Every trial and metric of a run file. Raises RunFileError for anything that is not a run file."""
    path = Path(path)
    with _open(path) as handle:
        try:
            header = _header(path, handle)
            environment = {key: _plain(handle.attrs[key]) for key in schema.ENVIRONMENT_ATTRS
                           if key in handle.attrs}
            trials = [_read_trial(name, handle[schema.TRIALS_GROUP][name])
                      for name in handle[schema.TRIALS_GROUP]]
            config_text = _text(handle.attrs.get("config", ""))
            num_classes = int(handle.attrs["num_classes"]) if "num_classes" in handle.attrs else None
            majority = (float(handle.attrs["val_majority_fraction"]) if "val_majority_fraction" in handle.attrs
                        else None)
        except (KeyError, OSError, ValueError, TypeError) as error:
            raise RunFileError(f"{path}: damaged run file ({error})") from None
    trials.sort(key=lambda t: (t.batch_size, t.base_lr, t.seed))
    return RunData(path=path, header=header, config_text=config_text, environment=environment, trials=trials,
                   num_classes=num_classes, val_majority_fraction=majority)


def read_attempts(path: str | Path) -> dict[str, list[TrialData]]:
    """Earlier attempts of trials that a resume trained again, by trial name, oldest first. read_run leaves
    them out: metrics and analyses use each trial's last attempt, the one in /trials."""
    path = Path(path)
    with _open(path) as handle:
        try:
            attempts = handle.get(schema.ATTEMPTS_GROUP, {})
            return {name: [_read_trial(name, attempts[name][number])
                           for number in sorted(attempts[name], key=int)] for name in attempts}
        except (KeyError, OSError, ValueError, TypeError) as error:
            raise RunFileError(f"{path}: damaged run file ({error})") from None


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _read_trial(name: str, group: h5py.Group) -> TrialData:
    def columns(sub: str, metrics: tuple[schema.Metric, ...]) -> dict[str, np.ndarray]:
        data = {m.name: group[sub][m.name][()] for m in metrics}
        # Columns are written together; if a crash ever left them uneven, keep the rows all of them have.
        rows = min(len(values) for values in data.values())
        return {key: values[:rows] for key, values in data.items()}

    attrs = group.attrs
    return TrialData(
        name=name, batch_size=int(attrs["batch_size"]), seed=int(attrs["seed"]), lr=float(attrs["lr"]),
        base_lr=float(attrs.get("base_lr", attrs["lr"])), status=_text(attrs.get("status", schema.RUNNING)),
        error=_text(attrs.get("error", "")), parameter_count=int(attrs.get("parameter_count", 0)),
        steps_per_epoch=int(attrs.get("steps_per_epoch", 0)),
        epoch=columns(schema.EPOCH_GROUP, schema.EPOCH_METRICS), step=columns(schema.STEP_GROUP, schema.STEP_METRICS))
