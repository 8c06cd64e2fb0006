"""Writing results to stdout (stdout is data; diagnostics go to stderr)."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO


def print_json(data: Any, out: TextIO | None = None) -> None:
    """One JSON document on one line (on stdout unless `out` says otherwise)."""
    (out or sys.stdout).write(json.dumps(data, ensure_ascii=False) + "\n")
