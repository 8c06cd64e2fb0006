"""Writing results to stdout (stdout is data; diagnostics go to stderr)."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(data: Any) -> None:
    """One JSON document on one line."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
