"""Reading run files that may be damaged: every value is checked for its type, shape and range before it is
used, and anything wrong becomes one RunFileError line naming the file and what is wrong.

These functions run inside the reader process (engine/reader_process.py), never in the app's or the command
line's own process: a damaged file can make the HDF5 library itself crash, which no check here can prevent.
docs/run-files.md has the measurements behind that choice.
"""
from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from engine import schema
from engine.errors import RunFileError
from engine.runfile import RunData, RunHeader, TrialData

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
CONFIG_SECTIONS = ("data", "model", "train", "sweep")
# A dataset may claim no more bytes than the whole file holds: a damaged size must not make numpy allocate
# petabytes. Chunks never written read as zeros without taking space, so allow some slack for those.
_SIZE_SLACK_BYTES = 1 << 20


class Damage(Exception):
    """One thing wrong in a run file, in words (the caller adds the file name)."""


def read_header_here(path: str | Path) -> RunHeader:
    """The header of a run file, read in this process. Raises RunFileError for any damage."""
    return _guarded(Path(path), lambda handle: _header(Path(path), handle))


def read_run_here(path: str | Path) -> RunData:
    """Every trial and metric of a run file, read in this process. Raises RunFileError for any damage."""
    return _guarded(Path(path), lambda handle: _run(Path(path), handle))


def read_attempts_here(path: str | Path) -> dict[str, list[TrialData]]:
    """Earlier attempts of trials that a resume trained again, by trial name, oldest first."""
    def attempts(handle: h5py.File) -> dict[str, list[TrialData]]:
        group = handle.get(schema.ATTEMPTS_GROUP)
        if group is None:
            return {}
        limit = _file_size(handle)
        precision = _config_precision(_string(handle.attrs, "config"))
        result = {}
        for name in group:
            tries = _group(group, name, f"{schema.ATTEMPTS_GROUP}/{name}")
            numbers = sorted(tries, key=lambda number: int(number) if number.isdigit() else math.inf)
            result[name] = [_trial(name, _group(tries, number, f"{schema.ATTEMPTS_GROUP}/{name}/{number}"), limit,
                                   precision) for number in numbers]
        return result
    return _guarded(Path(path), attempts)


def is_being_written(path: str | Path) -> bool:
    """True while a process holds the file open for writing. HDF5 locks a file it writes (flock, exclusive);
    a shared lock that cannot be taken means a writer is at work, so a `running` status is true and not the
    mark of a writer that died."""
    try:
        import fcntl
    except ImportError:   # Windows: no flock; a file being written then reads as interrupted until it closes
        return False
    try:
        # O_NONBLOCK: a pipe given as a run file must not block here.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(descriptor)


# ------------------------------------------------------------------------------------------------ opening


def _guarded(path: Path, read):
    """Open the file, run `read` on it, and turn whatever goes wrong into one RunFileError line."""
    handle = _open(path)
    try:
        return read(handle)
    except RunFileError:
        raise
    except Damage as damage:
        raise RunFileError(_one_line(f"{path}: damaged run file ({damage})")) from None
    except Exception as error:  # noqa: BLE001 — h5py raises RuntimeError, TypeError, SystemError... on damage
        raise RunFileError(_one_line(f"{path}: damaged run file ({_describe(error)})")) from None
    finally:
        try:
            handle.close()
        except Exception:  # noqa: BLE001 — closing a damaged file can fail too; nothing was written to it
            pass


def _open(path: Path) -> h5py.File:
    try:
        if path.is_dir():
            raise RunFileError(f"{path}: is a folder, not a run file")
        if not path.exists():
            raise RunFileError(f"{path}: no such file")
        if not path.is_file():   # a pipe or a device would block or never end
            raise RunFileError(f"{path}: not a regular file, not a run file")
        size = path.stat().st_size
        with path.open("rb") as stream:
            start = stream.read(len(HDF5_SIGNATURE))
    except OSError as error:
        raise RunFileError(_one_line(f"{path}: cannot be read ({error.strerror or error})")) from None
    if size == 0:
        raise RunFileError(f"{path}: empty file, not a run file (yet)")
    if start != HDF5_SIGNATURE:
        raise RunFileError(f"{path}: not a Batch Size Lab run file (not an HDF5 file)")
    try:
        # locking=False: a run that another process is writing can be read (HDF5 would refuse while the
        # writer holds its lock); the writer flushes whole epochs, and a read that catches it mid-flush fails
        # and is retried by engine.runfile.
        handle = h5py.File(path, "r", locking=False)
    except Exception as error:  # noqa: BLE001 — see _guarded
        raise RunFileError(_one_line(f"{path}: damaged run file (HDF5 cannot open it: {_describe(error)})")) from None
    try:
        _check_format(path, handle)
    except BaseException as error:
        try:
            handle.close()
        except Exception:  # noqa: BLE001
            pass
        if isinstance(error, (RunFileError, KeyboardInterrupt, SystemExit)):
            raise
        if isinstance(error, Damage):
            raise RunFileError(_one_line(f"{path}: damaged run file ({error})")) from None
        raise RunFileError(_one_line(f"{path}: damaged run file ({_describe(error)})")) from None
    return handle


def _check_format(path: Path, handle: h5py.File) -> None:
    attrs = handle.attrs
    fmt = _attr(attrs, "format", None)
    if fmt is None or not isinstance(_scalar(fmt), (str, bytes)) or _text(_scalar(fmt)) != schema.FORMAT:
        raise RunFileError(f"{path}: not a Batch Size Lab run file (HDF5, but no format = '{schema.FORMAT}' "
                           "attribute)")
    version = _integer(attrs, "format_version", minimum=1)
    if version > schema.FORMAT_VERSION:
        raise RunFileError(f"{path}: written by a newer Batch Size Lab (format version {version}); "
                           f"this one reads up to {schema.FORMAT_VERSION}")
    _group(handle, schema.TRIALS_GROUP, schema.TRIALS_GROUP)


# ------------------------------------------------------------------------------------------------ reading


def _header(path: Path, handle: h5py.File) -> RunHeader:
    attrs = handle.attrs
    config = _config(_string(attrs, "config"))
    trials = _group(handle, schema.TRIALS_GROUP, schema.TRIALS_GROUP)
    batch_sizes: set[int] = set()
    statuses: dict[str, int] = {}
    count = 0
    for name in trials:
        group = _group(trials, name, f"{schema.TRIALS_GROUP}/{name}")
        where = f"trial {name}: "
        batch_sizes.add(_integer(group.attrs, "batch_size", minimum=1, where=where))
        status = _status(group.attrs, where)
        statuses[status] = statuses.get(status, 0) + 1
        count += 1
    status = _status(attrs, "")
    being_written = status == schema.RUNNING and is_being_written(path)
    given_name, notes, tags = _annotations(attrs)
    return RunHeader(
        path=path, name=given_name or str(config.get("name", path.stem)), created=_string(attrs, "created", ""),
        status=status, dataset=str(config.get("data", {}).get("dataset", "")),
        model=str(config.get("model", {}).get("kind", "")), batch_sizes=sorted(batch_sizes), trial_count=count,
        trial_statuses=statuses, device_name=_string(attrs, "device_name", ""), being_written=being_written,
        given_name=given_name, notes=notes, tags=tags, config_text=_string(attrs, "config"))


def _annotations(attrs) -> tuple[str, str, tuple[str, ...]]:
    """The name, notes and tags a user gave the run, checked by the rules that allowed them in (none in files
    that lack them, version 1 among them)."""
    from engine import annotations
    name = _string(attrs, schema.DISPLAY_NAME_ATTR, "")
    notes = _string(attrs, schema.NOTES_ATTR, "")
    tags = _texts(attrs, schema.TAGS_ATTR)
    texts = [(schema.DISPLAY_NAME_ATTR, name), (schema.NOTES_ATTR, notes), *((schema.TAGS_ATTR, tag) for tag in tags)]
    for key, text in texts:
        # h5py decodes bytes that are not UTF-8 into lone surrogates rather than failing.
        if any("\ud800" <= character <= "\udfff" for character in text):
            raise Damage(f"{key}: text that is not UTF-8")
    for key, problem in ((schema.DISPLAY_NAME_ATTR, annotations.problem_in_name(name)),
                         (schema.NOTES_ATTR, annotations.problem_in_notes(notes)),
                         (schema.TAGS_ATTR, annotations.problem_in_tags(tags))):
        if problem:
            raise Damage(f"{key}: {problem}")
    return name, notes, tags


def _texts(attrs, key: str) -> tuple[str, ...]:
    """A one-dimensional array of texts (an empty tuple when the attribute is missing)."""
    if key not in attrs:
        return ()
    value = attrs[key]
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype.kind not in "OSU":
        raise Damage(f"{key} = {_show(_scalar(value))}, expected a list of texts")
    texts = []
    for item in value.tolist():
        if not isinstance(item, (str, bytes)):
            raise Damage(f"{key}: {_show(item)}, expected text")
        try:
            texts.append(_text(item))
        except UnicodeDecodeError:
            raise Damage(f"{key}: text that is not UTF-8") from None
    return tuple(texts)


def _run(path: Path, handle: h5py.File) -> RunData:
    header = _header(path, handle)
    attrs = handle.attrs
    environment = {key: _environment_value(attrs, key) for key in schema.ENVIRONMENT_ATTRS if key in attrs}
    limit = _file_size(handle)
    trials_group = handle[schema.TRIALS_GROUP]
    precision = _config_precision(_string(attrs, "config"))
    trials = [_trial(name, trials_group[name], limit, precision) for name in trials_group]
    trials.sort(key=lambda t: (t.batch_size, t.base_lr, t.precision, t.seed))
    num_classes = _integer(attrs, "num_classes", minimum=1) if "num_classes" in attrs else None
    majority = (_number(attrs, "val_majority_fraction", minimum=0.0, maximum=1.0)
                if "val_majority_fraction" in attrs else None)
    return RunData(path=path, header=header, config_text=_string(attrs, "config"), environment=environment,
                   trials=trials, num_classes=num_classes, val_majority_fraction=majority)


def _config_precision(text: str) -> str:
    """The config's train.precision, which every trial of a file without the precision attribute trained with."""
    value = _config(text).get("train", {}).get("precision", "fp32")
    return value if isinstance(value, str) else ""


def _trial(name: str, group: h5py.Group, limit: int, config_precision: str) -> TrialData:
    attrs = group.attrs
    where = f"trial {name}: "
    lr = _number(attrs, "lr", minimum=0.0, where=where)
    return TrialData(
        name=name, batch_size=_integer(attrs, "batch_size", minimum=1, where=where),
        seed=_integer(attrs, "seed", minimum=0, where=where), lr=lr,
        base_lr=_number(attrs, "base_lr", minimum=0.0, where=where) if "base_lr" in attrs else lr,
        status=_status(attrs, where), error=_string(attrs, "error", "", where=where),
        parameter_count=_integer(attrs, "parameter_count", minimum=0, default=0, where=where),
        steps_per_epoch=_integer(attrs, "steps_per_epoch", minimum=0, default=0, where=where),
        proposed_by=_string(attrs, "proposed_by", "grid", where=where),
        search_point=_integer(attrs, "search_point", minimum=0, where=where) if "search_point" in attrs else -1,
        objective=_measured(attrs, "objective", where),
        pruned_step=_integer(attrs, "pruned_step", minimum=0, where=where) if "pruned_step" in attrs else -1,
        epoch=_columns(group, schema.EPOCH_GROUP, schema.EPOCH_METRICS, limit, where),
        step=_columns(group, schema.STEP_GROUP, schema.STEP_METRICS, limit, where),
        # Files written before these groups existed lack them: no evaluations on a schedule (the epoch rows
        # stand in), no noise scale measured.
        **{sub: _columns(group, sub, schema.TRIAL_GROUPS[sub], limit, where)
           for sub in schema.OPTIONAL_TRIAL_GROUPS if sub in group},
        step_memory_bytes=(_number(attrs, "step_memory_bytes", minimum=0, where=where)
                           if "step_memory_bytes" in attrs else math.nan),
        step_memory_method=_string(attrs, "step_memory_method", "", where=where),
        telemetry_unavailable=_string(attrs, schema.TELEMETRY_UNAVAILABLE_ATTR, "", where=where),
        noise_scale_unavailable=_string(attrs, schema.NOISE_UNAVAILABLE_ATTR, "", where=where),
        ranks=_integer(attrs, "ranks", minimum=1, default=1, where=where),
        execution=_string(attrs, schema.EXECUTION_ATTR, "", where=where),
        communication_s=_measured(attrs, "communication_s", where),
        precision=_string(attrs, schema.TRIAL_PRECISION_ATTR, config_precision, where=where))


def _columns(trial: h5py.Group, sub: str, metrics: tuple[schema.Metric, ...], limit: int,
             where: str) -> dict[str, np.ndarray]:
    group = _group(trial, sub, f"{where}{sub}")
    data = {}
    for metric in metrics:
        label = f"{where}{sub}/{metric.name}"
        dataset = group.get(metric.name)
        if not isinstance(dataset, h5py.Dataset):
            raise Damage(f"{label}: missing" if dataset is None else f"{label}: not a dataset")
        if len(dataset.shape) != 1:
            raise Damage(f"{label}: shape {dataset.shape}, expected one dimension")
        if dataset.dtype.kind not in "iuf" or dataset.dtype.itemsize > 8:
            raise Damage(f"{label}: values of type {dataset.dtype}, expected numbers")
        if dataset.shape[0] * dataset.dtype.itemsize > limit:
            raise Damage(f"{label}: claims {dataset.shape[0]} rows, more than the file holds")
        values = np.asarray(dataset[()])
        if np.dtype(metric.dtype).kind == "i" and values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            raise Damage(f"{label}: values that are not whole numbers")
        data[metric.name] = values.astype(metric.dtype)
    # Columns are written together; if a crash ever left them uneven, keep the rows all of them have.
    rows = min(len(values) for values in data.values())
    return {key: values[:rows] for key, values in data.items()}


# ------------------------------------------------------------------------------------------------ values


def _group(parent: h5py.Group, name: str, label: str) -> h5py.Group:
    group = parent.get(name)
    if group is None:
        raise Damage(f"no '{label}' group")
    if not isinstance(group, h5py.Group):
        raise Damage(f"'{label}' is not a group")
    return group


_MISSING = object()


def _attr(attrs, key: str, default: Any = _MISSING, where: str = "") -> Any:
    if key not in attrs:
        if default is _MISSING:
            raise Damage(f"{where}no '{key}' attribute")
        return default
    return attrs[key]


def _scalar(value: Any) -> Any:
    """A plain Python scalar, or the value unchanged when it is not one (an array, a reference...)."""
    if isinstance(value, np.ndarray):
        if value.shape != ():
            return value
        value = value[()]
    return value.item() if isinstance(value, np.generic) else value


def _integer(attrs, key: str, *, minimum: int, default: Any = _MISSING, where: str = "") -> int:
    value = _scalar(_attr(attrs, key, default, where))
    if isinstance(value, bool) or not isinstance(value, int):
        raise Damage(f"{where}{key} = {_show(value)}, expected a whole number")
    if value < minimum:
        raise Damage(f"{where}{key} = {value}, expected at least {minimum}")
    return value


def _number(attrs, key: str, *, minimum: float, maximum: float = math.inf, where: str = "") -> float:
    value = _scalar(_attr(attrs, key, where=where))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Damage(f"{where}{key} = {_show(value)}, expected a number")
    value = float(value)
    if not (minimum <= value <= maximum) or not math.isfinite(value):
        raise Damage(f"{where}{key} = {value}, expected a number from {minimum:g} to {maximum:g}")
    return value


def _string(attrs, key: str, default: Any = _MISSING, where: str = "") -> str:
    value = _scalar(_attr(attrs, key, default, where))
    if not isinstance(value, (str, bytes)):
        raise Damage(f"{where}{key} = {_show(value)}, expected text")
    try:
        return _text(value)
    except UnicodeDecodeError:
        raise Damage(f"{where}{key}: text that is not UTF-8") from None


def _status(attrs, where: str) -> str:
    status = _string(attrs, "status", schema.RUNNING, where)
    if status not in schema.STATUSES:
        raise Damage(f"{where}status = {_show(status)}, expected one of {', '.join(schema.STATUSES)}")
    return status


def _measured(attrs, key: str, where: str) -> float:
    """A number that may be NaN, which stands for "not measured" (as in files written before the key)."""
    if key not in attrs:
        return math.nan
    value = _scalar(attrs[key])
    if isinstance(value, float) and math.isnan(value):
        return math.nan
    return _number(attrs, key, minimum=-math.inf, where=where)


def _environment_value(attrs, key: str) -> Any:
    value = _scalar(attrs[key])
    if isinstance(value, bytes):
        value = _string(attrs, key)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Damage(f"{key} = {_show(value)}, expected text or a number")
    return value


def _config(text: str) -> dict[str, Any]:
    try:
        config = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as error:
        raise Damage(f"its config is not valid TOML ({error})") from None
    if "name" in config and not isinstance(config["name"], str):
        raise Damage(f"config: name = {_show(config['name'])}, expected text")
    for section in CONFIG_SECTIONS:
        if section in config and not isinstance(config[section], dict):
            raise Damage(f"config: {section} = {_show(config[section])}, expected a table")
    for section, key in (("data", "dataset"), ("model", "kind")):
        value = config.get(section, {}).get(key, "")
        if not isinstance(value, str):
            raise Damage(f"config: {section}.{key} = {_show(value)}, expected text")
    return config


def _file_size(handle: h5py.File) -> int:
    return os.path.getsize(handle.filename) + _SIZE_SLACK_BYTES


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _show(value: Any) -> str:
    if isinstance(value, np.ndarray):
        shown = repr(value.ravel()[:8].tolist())
        if value.size > 8 or value.ndim > 1:
            shown = f"an array of shape {value.shape}: {shown[:-1]}, ...]"
    else:
        shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:397] + "..."
