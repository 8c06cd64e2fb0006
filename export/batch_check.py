"""Does an image's int8 vector depend on the other images in its batch?

With dynamic activation scales it does: the scale of each activation comes from the whole batch.
The export measures it on the tower it ships and records the result beside the fidelity figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from export.verify import row_cosines, session

GROUP = 4


def alone_vs_batched(vision: Path, pixels: np.ndarray) -> float:
    """The smallest cosine between an image's vector embedded alone and in a batch of GROUP."""
    sess = session(vision)
    count = len(pixels) - len(pixels) % GROUP
    alone = np.concatenate(
        [sess.run(None, {"pixel_values": pixels[i : i + 1]})[0] for i in range(count)]
    )
    batched = np.concatenate(
        [sess.run(None, {"pixel_values": pixels[i : i + GROUP]})[0] for i in range(0, count, GROUP)]
    )
    return round(float(row_cosines(alone, batched).min()), 6)
