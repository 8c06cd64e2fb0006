"""Decoding ahead of inference: worker threads read and preprocess the next images while ONNX
Runtime runs the current batch (Pillow and numpy release the GIL while they work)."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from clipsearch_onnx.errors import ImageError
from clipsearch_onnx.preprocess import load_image

T = TypeVar("T")
Loaded = tuple[str, np.ndarray]  # (sha256 of the file, preprocessed pixels [3, S, S])


def read_file(path: str, preprocess: Callable) -> Loaded:
    """Reads a file once: its sha256 and its preprocessed pixels."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageError(path, f"cannot read: {exc.strerror}") from exc
    if not data:
        raise ImageError(path, "empty file")
    image = load_image(path, data=data)
    return hashlib.sha256(data).hexdigest(), preprocess([image])[0]


def decoded_batches(
    items: Iterable[T],
    path_of: Callable[[T], str],
    preprocess: Callable,
    batch_size: int,
    workers: int = 2,
) -> Iterator[list[tuple[T, Loaded | ImageError]]]:
    """Batches of (item, (sha256, pixels) or the ImageError that stopped it), in input order,
    with up to three batches decoding ahead."""
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="decode") as pool:
        queue: deque[tuple[T, Future]] = deque()
        it = iter(items)

        def submit() -> None:
            for item in it:
                queue.append((item, pool.submit(read_file, path_of(item), preprocess)))
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
