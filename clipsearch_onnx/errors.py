"""The exceptions the core raises, and the exit codes the CLI maps them to.

The library raises; the edges (CLI, TUI) report. Every message is meant to be shown to a user as
one line, and names what to do about it where there is something to do.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the `clipsearch` command (documented in `clipsearch --help`)."""

    OK = 0
    ERROR = 1  # anything not listed below
    USAGE = 2  # bad command-line arguments (argparse's own code) or settings
    MODEL = 3  # model directory missing, incomplete, damaged or mismatched
    INDEX = 4  # index missing, damaged, or built with another model
    INPUT = 5  # a query image, query file or captions file that cannot be used
    PARTIAL = 6  # `search --queries`: some lines failed (each has an error result); rest answered
    TERMINAL = 7  # `clipsearch tui` without a terminal (stdin or stdout is not one)
    HANGUP = 129  # the TUI's terminal went away (closed, hung up)
    INTERRUPTED = 130  # Ctrl-C; finished batches are kept


class ClipSearchError(Exception):
    """Base class of every error the core raises on purpose."""

    exit_code = ExitCode.ERROR


class UsageError(ClipSearchError):
    """Command-line arguments that cannot go together (argparse reports the rest itself)."""

    exit_code = ExitCode.USAGE


class SettingsError(UsageError):
    """A setting (flag, CLIPSEARCH_* variable, config.toml) has a value that cannot be used."""


class ModelError(ClipSearchError):
    """The model directory is missing, incomplete, damaged, or does not fit the index."""

    exit_code = ExitCode.MODEL


class IndexError_(ClipSearchError):  # noqa: N801 - avoid shadowing the builtin IndexError
    """The index is missing, damaged, or was built with another model or precision."""

    exit_code = ExitCode.INDEX


class IndexNotFound(IndexError_):
    pass


class IndexCorrupt(IndexError_):
    pass


class InputError(ClipSearchError):
    """A user-supplied input (query image, query file, captions file) cannot be used."""

    exit_code = ExitCode.INPUT


class ImageError(InputError):
    """An image cannot be read or decoded. `path` names it, `reason` says why."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class NoTerminal(ClipSearchError):
    """A terminal UI was started without a terminal to draw on and read keys from."""

    exit_code = ExitCode.TERMINAL


class DatasetError(ClipSearchError):
    """A dataset cannot be downloaded or laid out."""


class JobError(ClipSearchError):
    """A distributed embedding job cannot start or a partition failed after its retries."""
