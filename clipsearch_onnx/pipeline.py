"""The one way from an image file to a vector, used by every command that embeds an image file
(index, eval, embed, search --image, the TUI, web uploads, distributed partitions).

Reference decoding: the checkpoint's own transformers image processor (`CLIPImageProcessor`,
`SiglipImageProcessor`) on a full Pillow decode, what the model was trained and exported against.
`REFERENCE` reproduces it exactly (tests/test_preprocess.py) on the picture as it is meant to be
seen: every decoding first turns a photo upright by its EXIF orientation (decode.py), as viewers
do and as the pictures models are trained on are; the processor alone, given `Image.open(path)`,
would see a phone photo on its side (cosine 0.83-0.91 to the upright one on tiny test models).

`FAST` differs only for JPEGs larger than `REDUCE_FACTOR` (4) x the resize target: libjpeg-turbo
decodes them reduced in the DCT domain (at M/8 through simplejpeg, clipsearch_onnx/turbo.py; at
1/2, 1/4 or 1/8 through Pillow without it), never below 4x the resize target, and the model's own
resize then runs over the region that holds the whole picture, with the full-resolution geometry.
It saves 2.6-3.2x of the decode CPU on 5-12 MP photos at S = 224.

Which command decodes which way (`decoding_for`, the one place that decides):
- bulk commands, `index` and `embed-shards` (on Ray too), decode `FAST` (`BULK_DECODING`): they
  decode every photo of a collection, where the decode is most of the CPU;
- single files, `embed`, `search --image` and image query terms (URLs too), the TUI's image
  queries and web uploads, decode `REFERENCE` (`SINGLE_DECODING`): `clipsearch embed` must give
  PyTorch's `get_image_features` with the checkpoint's own processor to cosine >= 0.9999 in
  fp32 (issue 16), which FAST misses on sensitive checkpoints for JPEGs a few times the model's
  image size (0.9995-0.9999 at 800x600 for S = 112; raising REDUCE_FACTOR does not fix it). An
  indexed file used as a query reuses its stored vector anyway, so self-matches stay exact;
- the `decoding` setting (`--decoding`, CLIPSEARCH_DECODING, config.toml) makes every command
  decode the one way it names: `fast` makes `embed` give exactly the vectors `index` stores,
  `reference` makes `index` decode exactly (and slower);
- `eval` always decodes the reference way, whatever the setting.

Tolerance of FAST (the bar), on the sensitive tiny checkpoint (tests/factories.py: weights std
0.2, two pictures ~0.5 apart), fp32: image-embedding cosine to the reference >= 0.998 per image
and >= 0.9995 on average (normal weights: ~0.99998). Measured by `python -m bench --only imaging`
(48 photo-sized 1-12 MP and 48 web-sized 0.2-0.5 MP detailed JPEGs each at S = 32, 64 and 224):
worst 0.9985 (S = 224, a 2 MP photo decoded at 5/8), every mean >= 0.9998; Pillow's 1/2-1/8
alone: worst 0.9994. Reducing to 2x or 3x the target instead: worst 0.972 and 0.997; the old
draft mode (down to 1x, with the reduced image's own geometry): 0.876. The worst case in
tests/test_pipeline.py, 1-pixel colour lines in a 4:2:0 JPEG, is a reduced decode keeping chroma
sharper than upsampling it then resizing does.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from clipsearch_onnx import fingerprint
from clipsearch_onnx.decode import FileFacts, check_header, decode, read_facts, reason
from clipsearch_onnx.errors import ImageError
from clipsearch_onnx.scan import not_a_file
from clipsearch_onnx.settings import DECODINGS

if TYPE_CHECKING:
    from clipsearch_onnx.encoder import Encoder
    from clipsearch_onnx.preprocess import Preprocessor

__all__ = [
    "BULK_DECODING",
    "DECODINGS",
    "FAST",
    "REFERENCE",
    "SINGLE_DECODING",
    "FileFacts",
    "Loaded",
    "decoded_batches",
    "decoding_for",
    "embed_bytes",
    "embed_file",
    "read_bytes",
    "read_facts",
    "read_file",
]

T = TypeVar("T")
FAST, REFERENCE = DECODINGS  # the `decoding` setting's values
BULK_DECODING = FAST  # index, embed-shards: decode CPU matters (see above)
SINGLE_DECODING = REFERENCE  # embed, query images: exactly the checkpoint's processor (issue 16)
REDUCE_FACTOR = 4  # a reduced JPEG decode keeps at least this many pixels per output pixel
# A file this large is read whole only once its header says it is an image: a 3 GB video named
# x.jpg took 3.2 GB of memory before its skip line, and on a small machine the kernel would end
# the run there, on every run.
CHECK_HEADER_ABOVE = 32 << 20


def decoding_for(setting: str | None, *, bulk: bool) -> str:
    """The decoding a command uses: the `decoding` setting if given, else `BULK_DECODING` for
    the bulk commands and `SINGLE_DECODING` for single files."""
    if setting is None:
        return BULK_DECODING if bulk else SINGLE_DECODING
    _check(setting)
    return setting


def _check(decoding: str) -> None:
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {DECODINGS}, not {decoding!r}")


@dataclass(frozen=True)
class Loaded:
    """One file, read once: its content hash, its model input, its facts and its perceptual
    fingerprint (clipsearch_onnx/fingerprint.py, from the same decoded pixels)."""

    sha256: str
    pixels: np.ndarray  # float32 [3, S, S]
    facts: FileFacts
    fingerprint: int | None = None


def reduce_to(preprocess: Preprocessor) -> Callable[[int, int], tuple[int, int]]:
    """How far FAST decoding may reduce a picture of a given size, for this preprocessor."""

    def least(width: int, height: int) -> tuple[int, int]:
        w, h = preprocess.resized_size(width, height)
        return max(1, math.ceil(w * REDUCE_FACTOR)), max(1, math.ceil(h * REDUCE_FACTOR))

    return least


def read_bytes(
    data: bytes,
    name: str | Path,
    preprocess: Preprocessor,
    decoding: str = SINGLE_DECODING,
    *,
    fingerprints: bool = True,
) -> Loaded:
    """The bytes of one image file (`name` only names it in errors) -> Loaded; any failure
    becomes an ImageError. `fingerprints=False` leaves Loaded.fingerprint None: a query or an
    eval never stores it (1.5 ms at 1000x750, 40 ms at 4000x3000)."""
    _check(decoding)
    if not data:
        raise ImageError(name, "empty file")
    least = reduce_to(preprocess) if decoding == FAST else None
    decoded = decode(name, data=data, reduce_to=least)
    size = (decoded.facts.width, decoded.facts.height)
    try:
        pixels = preprocess.pixels(decoded.image, box=decoded.box, size=size)
        print_ = fingerprint.of_image(decoded.image, decoded.box) if fingerprints else None
    except Exception as exc:  # noqa: BLE001 - e.g. MemoryError on a huge picture
        raise ImageError(name, reason(exc)) from None
    return Loaded(hashlib.sha256(data).hexdigest(), pixels, decoded.facts, print_)


def read_file(
    path: str | Path,
    preprocess: Preprocessor,
    decoding: str = SINGLE_DECODING,
    *,
    fingerprints: bool = True,
) -> Loaded:
    """Reads a file once: its sha256, its preprocessed pixels and its facts (raises ImageError)."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            why = not_a_file(st.st_mode, pipes=True)
            if why is not None:
                raise ImageError(path, why)
            if st.st_size > CHECK_HEADER_ABOVE:
                check_header(fh, path)
                fh.seek(0)
            data = fh.read()
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError, MemoryError...: this file's problem
        raise ImageError(path, reason(exc)) from None
    return read_bytes(data, path, preprocess, decoding, fingerprints=fingerprints)


def embed_file(encoder: Encoder, path: str | Path, decoding: str = SINGLE_DECODING) -> np.ndarray:
    """The unit vector float32 [D] of one image file (raises ImageError)."""
    loaded = read_file(path, encoder.preprocess, decoding, fingerprints=False)
    return encoder.embed_pixels(loaded.pixels[None])[0]


def embed_bytes(
    encoder: Encoder, data: bytes, name: str, decoding: str = SINGLE_DECODING
) -> np.ndarray:
    """The unit vector float32 [D] of an image file's bytes, e.g. an upload (raises ImageError)."""
    loaded = read_bytes(data, name, encoder.preprocess, decoding, fingerprints=False)
    return encoder.embed_pixels(loaded.pixels[None])[0]


def _read_safely(
    path: str, preprocess: Preprocessor, decoding: str, fingerprints: bool
) -> Loaded | ImageError:
    try:
        return read_file(path, preprocess, decoding, fingerprints=fingerprints)
    except ImageError as exc:
        return exc


def decoded_batches(
    items: Iterable[T],
    path_of: Callable[[T], str],
    preprocess: Preprocessor,
    batch_size: int,
    workers: int = 2,
    decoding: str = BULK_DECODING,
    fingerprints: bool = True,
) -> Iterator[list[tuple[T, Loaded | ImageError]]]:
    """Batches of (item, Loaded or the ImageError that stopped it), in input order, decoded by
    `workers` threads up to three batches ahead of the consumer (Pillow and numpy release the
    GIL while they work, so decoding overlaps inference)."""
    _check(decoding)
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="decode") as pool:
        queue: deque[tuple[T, Future]] = deque()
        it = iter(items)

        def submit() -> None:
            for item in it:
                queue.append(
                    (
                        item,
                        pool.submit(
                            _read_safely, path_of(item), preprocess, decoding, fingerprints
                        ),
                    )
                )
                return

        for _ in range(batch_size * 3):
            submit()
        batch: list[tuple[T, Loaded | ImageError]] = []
        try:
            while queue:
                item, future = queue.popleft()
                submit()
                batch.append((item, future.result()))
                if len(batch) == batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
        finally:
            for _, future in queue:
                future.cancel()
