"""Decoding ahead of inference: worker threads read and preprocess the next images while ONNX
Runtime runs the current batch (Pillow and numpy release the GIL while they work).

JPEGs are decoded in draft mode by default: libjpeg scales them down by 1/2, 1/4 or 1/8 while
decoding, never below the preprocessor's resize target. On 1-12 MP photos this cuts decoding and
resizing from ~125 to ~25 ms per image, and changes the preprocessed pixels by under half a grey
level on average (image-embedding cosine to a full decode > 0.99999; see BENCHMARKS.md)."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from clipsearch_onnx.errors import ImageError
from clipsearch_onnx.preprocess import Preprocessor, load_image

T = TypeVar("T")
Loaded = tuple[str, np.ndarray]  # (sha256 of the file, preprocessed pixels [3, S, S])


def read_file(path: str, preprocess: Preprocessor, draft: bool = True) -> Loaded:
    """Reads a file once: its sha256 and its preprocessed pixels."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageError(path, f"cannot read: {exc.strerror}") from exc
    if not data:
        raise ImageError(path, "empty file")
    image = load_image(path, data=data, draft=draft, min_side=preprocess.resize_shortest_edge)
    return hashlib.sha256(data).hexdigest(), preprocess([image])[0]


def decoded_batches(
    items: Iterable[T],
    path_of: Callable[[T], str],
    preprocess: Preprocessor,
    batch_size: int,
    workers: int = 2,
    draft: bool = True,
) -> Iterator[list[tuple[T, Loaded | ImageError]]]:
    """Batches of (item, (sha256, pixels) or the ImageError that stopped it), in input order,
    with up to three batches decoding ahead."""
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="decode") as pool:
        queue: deque[tuple[T, Future]] = deque()
        it = iter(items)

        def submit() -> None:
            for item in it:
                queue.append((item, pool.submit(read_file, path_of(item), preprocess, draft)))
                return

        for _ in range(batch_size * 3):
            submit()
        batch: list[tuple[T, Loaded | ImageError]] = []
        try:
            while queue:
                item, future = queue.popleft()
                submit()
                try:
                    outcome: Loaded | ImageError = future.result()
                except ImageError as exc:
                    outcome = exc
                batch.append((item, outcome))
                if len(batch) == batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
        finally:
            for _, future in queue:
                future.cancel()
