"""A folder of run files in words, for the app's Runs tab and `main.py runs`: how each run ended, what is wrong
with a file that is not one, and which runs a filter's words match."""
from __future__ import annotations

from pathlib import Path

from engine import schema
from engine.runfile import RunHeader

RUN_SUFFIX = ".h5"


def status_text(header: RunHeader) -> str:
    """How a run ended, in words: 'finished', 'finished · 8 of 10 trials completed, 2 out of memory'."""
    if header.status == schema.RUNNING and not header.being_written:
        status = schema.INTERRUPTED_LABEL
    else:
        status = schema.RUN_STATUS_LABELS.get(header.status, schema.STATUS_LABELS[header.status])
    counts = dict(header.trial_statuses)
    done = counts.get(schema.COMPLETED, 0)
    if not header.trial_count or done == header.trial_count:
        return status
    details = [f"{done} of {header.trial_count} trials {schema.STATUS_LABELS[schema.COMPLETED]}"]
    details += [f"{counts[name]} {schema.STATUS_LABELS[name]}" for name in schema.STATUSES
                if name not in (schema.COMPLETED, schema.RUNNING, schema.CANCELLED) and counts.get(name)]
    return f"{status} · {', '.join(details)}"


def problem_text(error: str) -> str:
    """'damaged: <what is wrong>' for a damaged run file, 'not a run file: <why>' for anything else."""
    damaged = "damaged run file ("
    if error.startswith(damaged) and error.endswith(")"):
        return f"damaged: {error[len(damaged):-1]}"
    return f"not a run file: {error}"


def short_error(error: str, path: Path) -> str:
    """A reader's error without the file's path in front (the listing shows the file already)."""
    prefix = f"{path}: "
    return error[len(prefix):] if error.startswith(prefix) else error


def matches(texts: list[str], words: list[str]) -> bool:
    """True when every word is in one of the texts, without regard to case."""
    folded = [text.casefold() for text in texts]
    return all(any(word.casefold() in text for text in folded) for word in words)


def run_files(folder: Path) -> list[Path]:
    """The run files (*.h5) in a folder, by name. Raises OSError when the folder cannot be read."""
    return sorted(path for path in Path(folder).iterdir() if path.suffix.lower() == RUN_SUFFIX and path.is_file())
