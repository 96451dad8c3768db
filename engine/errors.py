"""Errors a user can cause. Each carries a message written for that user; the command line prints it as
one line and exits 2, the GUI shows it in place. Anything else that escapes the engine is a bug."""
from __future__ import annotations


class UserError(Exception):
    """Base class for problems in what the user gave us (a config, a data file, a run file)."""


class Problem(str):
    """One problem in a config: the one-line message itself (naming the key and value), plus `key`, the dotted
    config key it is about ("train.lr"), so that a form can mark that field without reading the words back.
    `key` is None for a problem that is about no single key (an unreadable file, an output folder)."""

    key: str | None

    def __new__(cls, key: str | None, message: str) -> Problem:
        problem = super().__new__(cls, message)
        problem.key = key
        return problem

    def __reduce__(self):
        return Problem, (self.key, str(self))


class ConfigError(UserError):
    """An experiment config is invalid. `problems` holds every problem found as a `Problem` (a str that names
    its key, for the command line, with the key itself in `.key`, for the GUI); plain strings are taken as
    problems about no single key."""

    def __init__(self, problems: list[str]):
        self.problems = [p if isinstance(p, Problem) else Problem(None, p) for p in problems]
        super().__init__("; ".join(self.problems))

    def __reduce__(self):
        return ConfigError, (self.problems,)


class DataError(UserError):
    """A dataset file or folder cannot be used. The message names the file and what is wrong."""


class RunFileError(UserError):
    """A file is not a Batch Size Lab run file, or is damaged."""


class RunWriteError(UserError):
    """A run file cannot be written (a full disk, a file size limit, an I/O error). The message names the file;
    the file keeps every epoch that finished before it. The command line exits 3."""
