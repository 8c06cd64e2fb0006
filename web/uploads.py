"""Reading an uploaded query image: multipart/form-data with a field `image` and/or `q`, capped
in bytes while it streams in and in pixels before anything is decoded.

An over-limit body is read on and dropped before the 413 goes out, up to DRAIN_LIMIT: a client
still writing a large body to a server that closed the connection would see a reset instead of the
answer. Past that the connection is closed: a client cannot make the server read more than
DRAIN_LIMIT per request.
"""

from __future__ import annotations

import io
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

DRAIN_LIMIT = 64 << 20
MAX_TEXT_FIELD = 64 << 10


class UploadRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Upload:
    text: str | None
    k: str | None
    name: str | None
    data: bytes | None


def _too_large(limit: int) -> UploadRefused:
    return UploadRefused(
        413,
        f"the upload is over the limit of {limit / 1e6:g} MB (clipsearch serve --max-upload-mb)",
    )


async def _drain(stream: AsyncIterator[bytes], seen: int) -> None:
    async for chunk in stream:
        seen += len(chunk)
        if seen > DRAIN_LIMIT:
            break


async def read_upload(request: Request, max_bytes: int) -> Upload:
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise UploadRefused(
            415, "POST /api/search takes multipart/form-data with a field `image` and/or `q`"
        )
    stream = request.stream()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        await _drain(stream, 0)
        raise _too_large(max_bytes)
    body = bytearray()
    async for chunk in stream:
        body += chunk
        if len(body) > max_bytes:
            await _drain(stream, len(body))
            raise _too_large(max_bytes)

    async def replay() -> AsyncGenerator[bytes, None]:
        yield bytes(body)

    parser = MultiPartParser(
        request.headers, replay(), max_files=1, max_fields=8, max_part_size=MAX_TEXT_FIELD
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise UploadRefused(400, f"malformed multipart upload: {exc.message}") from None
    try:
        image = form.get("image")
        text, k = form.get("q"), form.get("k")
        if image is not None and not isinstance(image, UploadFile):
            raise UploadRefused(400, "the field `image` must be a file")
        if isinstance(text, UploadFile) or isinstance(k, UploadFile):
            raise UploadRefused(400, "the fields `q` and `k` must be plain text")
        if image is None:
            return Upload(text, k, None, None)
        data = await image.read()
        if not data:
            raise UploadRefused(400, "the uploaded image is empty")
        return Upload(text, k, image.filename or "upload", data)
    finally:
        await form.close()


def check_pixels(data: bytes, max_pixels: int) -> None:
    """Refuses what is not an image, or one over `max_pixels`, from its header alone."""
    from PIL import Image

    width: int | None = None
    height: int | None = None
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except Image.DecompressionBombError:
        pass
    except Exception:  # Pillow raises many types for what it cannot identify
        raise UploadRefused(
            400, "the upload is not an image (or not in a format this server can read)"
        ) from None
    if width is None or height is None or width * height > max_pixels:
        size = "" if width is None else f" ({width} x {height})"
        raise UploadRefused(
            413,
            f"the image{size} is over the limit of {max_pixels:,} pixels "
            "(clipsearch serve --max-upload-pixels)",
        )
