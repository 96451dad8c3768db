"""A run's name, notes and tags: what the user says about a finished run, kept in the run file itself.

The run file is the single truth, so they are root attributes of the file (schema.ANNOTATION_ATTRS), not a
side database, and the file keeps its name on disk (other tools and open overlays refer to it by path). The
name replaces the config's name wherever the run is shown; an empty name gives the config's back.

The same rules check what a user types (UserError, one line) and what a file holds (the reader calls
`problem_in_*`, so a hostile value makes the file read as damaged with the reason, never a crash).
"""
from __future__ import annotations

import functools
import importlib.util
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine import schema
from engine.errors import RunFileError, UserError

# Whether a process writing a run file can be seen (flock, see runfile_reader.is_being_written); where it cannot
# (Windows), a run whose status is still `running` is never changed.
_WRITERS_VISIBLE = importlib.util.find_spec("fcntl") is not None
MAX_NAME_CHARS = 120
MAX_NOTES_CHARS = 20_000
MAX_TAG_CHARS = 40
MAX_TAGS = 32
# A tag is typed in a comma-separated list (the app's field); a comma inside one could never be typed back.
TAG_SEPARATOR = ","


@dataclass(frozen=True)
class Annotations:
    name: str = ""                  # "" when the config's name is shown
    notes: str = ""
    tags: tuple[str, ...] = ()


def _control_characters(text: str, allowed: str = "") -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cs") and c not in allowed for c in text)


def problem_in_name(name: str) -> str:
    """Why this cannot be a run's name ('' when it can)."""
    if len(name) > MAX_NAME_CHARS:
        return f"a name of {len(name)} characters, longer than {MAX_NAME_CHARS}"
    if _control_characters(name):
        return "a name must be one line of text (no line breaks or control characters)"
    if name != name.strip():
        return "a name must not start or end with spaces"
    return ""


def problem_in_notes(notes: str) -> str:
    if len(notes) > MAX_NOTES_CHARS:
        return f"notes of {len(notes)} characters, longer than {MAX_NOTES_CHARS}"
    if _control_characters(notes, allowed="\n\t"):
        return "notes hold control characters (only text, line breaks and tabs)"
    return ""


def problem_in_tag(tag: str) -> str:
    shown = tag if len(tag) <= MAX_TAG_CHARS else tag[:MAX_TAG_CHARS] + "…"
    if not tag or tag != tag.strip():
        return f"tag {shown!r}: empty, or starts or ends with spaces"
    if len(tag) > MAX_TAG_CHARS:
        return f"tag {shown!r}: longer than {MAX_TAG_CHARS} characters"
    if TAG_SEPARATOR in tag or _control_characters(tag):
        return f"tag {shown!r}: holds a comma, a line break or a control character"
    return ""


def problem_in_tags(tags: tuple[str, ...]) -> str:
    if len(tags) > MAX_TAGS:
        return f"{len(tags)} tags, more than {MAX_TAGS}"
    for tag in tags:
        if problem := problem_in_tag(tag):
            return problem
    if len({tag.casefold() for tag in tags}) != len(tags):
        return "the same tag twice"
    return ""


def parse_tags(text: str) -> tuple[str, ...]:
    """Tags typed as 'baseline, lr sweep': split at commas, spaces trimmed, empties and repeats dropped."""
    return merge_tags((), (part.strip() for part in text.split(TAG_SEPARATOR)))


def merge_tags(tags: Iterable[str], added: Iterable[str] = (), removed: Iterable[str] = ()) -> tuple[str, ...]:
    """tags + added - removed, in order, compared without case (the first spelling is kept)."""
    gone = {tag.strip().casefold() for tag in removed}
    result: dict[str, str] = {}
    for tag in (*tags, *added):
        tag = tag.strip()
        if tag and tag.casefold() not in gone:
            result.setdefault(tag.casefold(), tag)
    return tuple(result.values())


def tags_text(tags: Iterable[str]) -> str:
    return f"{TAG_SEPARATOR} ".join(tags)


def _checked(name: str | None, notes: str | None, tags: tuple[str, ...] | None) -> None:
    for problem in (problem_in_name(name.strip()) if name is not None else "",
                    problem_in_notes(notes) if notes is not None else "",
                    problem_in_tags(tags) if tags is not None else ""):
        if problem:
            raise UserError(problem[0].upper() + problem[1:])


def annotate(path: str | Path, *, name: str | None = None, notes: str | None = None,
             tags: Iterable[str] | None = None, add_tags: Iterable[str] = (),
             remove_tags: Iterable[str] = ()) -> Annotations:
    """Change a run file's name, notes or tags (None: leave as it is); returns what the file holds afterwards.

    Refused with RunFileError while any process writes the file (a live sweep, a resume) or when the file is
    damaged; UserError for a value that breaks the rules above. The write happens in the reader process, as
    every read does, so a damaged file that crashes HDF5 cannot take the app with it; and it reserves its room
    first, as the run writer does, so a full disk leaves the old values."""
    from engine import reader_process
    tags = tuple(tags) if tags is not None else None
    add_tags, remove_tags = tuple(add_tags), tuple(remove_tags)
    if notes is not None:   # text pasted from Windows: its line breaks are \r\n, and \r counts as a control character
        notes = notes.replace("\r\n", "\n").replace("\r", "\n")
    _checked(name, notes, merge_tags(tags or (), add_tags) if tags is not None or add_tags else None)
    change = functools.partial(_annotate_here, name=name.strip() if name is not None else None, notes=notes,
                               tags=tags, add_tags=add_tags, remove_tags=remove_tags)
    return reader_process.call(change, Path(path))


def _annotate_here(path: Path, *, name: str | None, notes: str | None, tags: tuple[str, ...] | None,
                   add_tags: tuple[str, ...], remove_tags: tuple[str, ...]) -> Annotations:
    from engine.runfile import set_root_attributes
    from engine.runfile_reader import is_being_written, read_header_here

    if is_being_written(path):
        raise RunFileError(_busy(path))
    header = read_header_here(path)
    if header.status == schema.RUNNING and header.being_written:
        raise RunFileError(_busy(path))
    if header.status == schema.RUNNING and not _WRITERS_VISIBLE:
        raise RunFileError(f"{path}: its sweep has not ended, and on this system a sweep that is still writing it "
                           "cannot be told from one that was interrupted; resume it (or let it finish) first")
    after = Annotations(name=header.given_name if name is None else name,
                        notes=header.notes if notes is None else notes,
                        tags=merge_tags(header.tags if tags is None else tags, add_tags, remove_tags))
    _checked(after.name, after.notes, after.tags)
    # Empty values are removed, not stored: a file without them reads exactly as one never annotated.
    values = {schema.DISPLAY_NAME_ATTR: after.name or None, schema.NOTES_ATTR: after.notes or None,
              schema.TAGS_ATTR: list(after.tags) or None}
    try:
        set_root_attributes(path, values)
    except BlockingIOError:
        raise RunFileError(_busy(path)) from None
    except OSError as error:
        raise RunFileError(f"{path}: cannot be changed ({error.strerror or error}); its name, notes and tags "
                           "are as they were") from None
    return after


def _busy(path: Path) -> str:
    return (f"{path}: a sweep is writing this run now; its name, notes and tags can be changed once it has "
            "finished or been stopped")
