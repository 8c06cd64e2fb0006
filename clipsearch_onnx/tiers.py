"""How many segments a generation keeps: merged by size tier, so that there are few of them and
the cost of a merge is proportional to what is merged (a log-structured merge, as Lucene's).

Segments below LEVEL_BASE live entries are one tier; above, a tier spans a factor of FANOUT.
When FANOUT segments share a tier they are merged into one of the next tier; a segment more
than MAX_DEAD dead (files replaced or removed) is rewritten without its dead entries; and there
are never more than MAX_SEGMENTS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipsearch_onnx import segments
from clipsearch_onnx.generations import made, step_name
from clipsearch_onnx.segments import Segment

if TYPE_CHECKING:
    from clipsearch_onnx.publishing import Progress

LEVEL_BASE = 4096  # segments below this many live entries are all one size tier
FANOUT = 4  # this many segments of one tier are merged into one of the next
MAX_SEGMENTS = 12
MAX_DEAD = 0.25  # a segment with more dead entries than this is rewritten without them


@dataclass(eq=False)
class Held:
    """A segment of the new generation and which of its parts are still alive."""

    segment: Segment
    keep: np.ndarray | None  # bool over its parts; None: all
    live: int

    @property
    def dead_fraction(self) -> float:
        return 1 - self.live / max(1, self.segment.count)


def _level(live: int) -> int:
    return 0 if live < LEVEL_BASE else int(math.log(live / LEVEL_BASE, FANOUT)) + 1


def tidy(build: Path, held: list[Held], progress: Progress) -> list[Held]:
    """Merges segments until: no tier holds FANOUT segments, none is more than MAX_DEAD dead,
    and there are at most MAX_SEGMENTS."""
    while True:
        group: list[Held] = []
        levels: dict[int, list[Held]] = {}
        for h in held:
            levels.setdefault(_level(h.live), []).append(h)
        crowded = [hs for hs in levels.values() if len(hs) >= FANOUT]
        if crowded:
            group = crowded[0]
        elif len(held) > MAX_SEGMENTS:
            group = sorted(held, key=lambda h: h.live)[: len(held) - MAX_SEGMENTS + 1]
        else:
            group = [h for h in held if h.dead_fraction > MAX_DEAD][:1]
        if not group:
            return held
        inputs = [
            (h.segment.path.name, None if h.keep is None else h.keep.tobytes()) for h in group
        ]
        dest = made(build, step_name("seg-", inputs))
        if not dest.is_dir():  # (else a killed run merged these already)
            progress.start("merging", len(group[0].segment.sizes))
            segments.merge(dest, [(h.segment, h.keep) for h in group], progress.advance)
        merged = Segment.load(dest, group[0].segment.code_size)
        held = [h for h in held if h not in group] + [Held(merged, None, merged.count)]
