"""Why an export stopped, and the exit code `python -m export` reports it with."""

from __future__ import annotations

from enum import IntEnum


class ExportExit(IntEnum):
    """Exit codes of `python -m export` (listed in its --help)."""

    OK = 0
    ERROR = 1  # anything not listed below
    USAGE = 2  # bad command-line arguments (argparse's own code)
    SOURCE = 3  # the checkpoint cannot be found, downloaded or read
    FIDELITY = 4  # the exported graphs drift from PyTorch beyond the thresholds
    INTERRUPTED = 130


class ExportError(Exception):
    """An export failure with a one-line message for the user."""

    exit_code = ExportExit.ERROR


class SourceError(ExportError):
    """The checkpoint (hub id or local folder) cannot be found, downloaded or read."""

    exit_code = ExportExit.SOURCE


class FidelityError(ExportError):
    """The exported ONNX graphs do not reproduce PyTorch closely enough."""

    exit_code = ExportExit.FIDELITY
