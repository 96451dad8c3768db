"""Errors a user can cause. Each carries a message written for that user; the command line prints it as
one line and exits 2, the GUI shows it in place. Anything else that escapes the engine is a bug."""


class UserError(Exception):
    """Base class for problems in what the user gave us (a config, a data file, a run file)."""


class ConfigError(UserError):
    """An experiment config is invalid. `problems` holds every problem found, each naming its key."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class DataError(UserError):
    """A dataset file or folder cannot be used. The message names the file and what is wrong."""


class RunFileError(UserError):
    """A file is not a Batch Size Lab run file, or is damaged."""
