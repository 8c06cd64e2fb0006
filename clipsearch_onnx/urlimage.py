"""Fetching a query image from an http(s) URL (`--image https://...`, a URL term of a query).

Standard library only (urllib). Limits: `timeout` seconds for the whole fetch (connecting and
every read; the body must be in within it too), `max_bytes` of body (the same 20 MB as
`clipsearch serve`'s upload cap by default), and the decoder's own pixel limit once the bytes are
decoded (clipsearch_onnx.decode, $CLIPSEARCH_MAX_PIXELS). Redirects are followed to http(s)
only. A page that says it is not an image (text/html, JSON...) is refused before its body is
read. Every failure is one UrlError line that names the URL.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from clipsearch_onnx import __version__
from clipsearch_onnx.errors import InputError

DEFAULT_MAX_BYTES = 20_000_000  # as `clipsearch serve --max-upload-mb`'s default
DEFAULT_TIMEOUT = 20.0  # seconds
CHUNK = 1 << 16
SCHEMES = ("http", "https")


class UrlError(InputError):
    """A query image URL that cannot be fetched, or whose answer is not an image."""


class _Redirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urllib.parse.urlsplit(newurl).scheme.lower() not in SCHEMES:
            raise UrlError(f"{req.full_url}: redirected to {newurl}, which is not http(s)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _is_image_type(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return (
        not kind
        or kind.startswith("image/")
        or kind in ("application/octet-stream", "binary/octet-stream")
    )


def fetch(
    url: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = DEFAULT_TIMEOUT
) -> bytes:
    """The body of `url` (an image's bytes, to decode), or a UrlError."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise UrlError(f"{url}: only http and https URLs are fetched")
    request = urllib.request.Request(url, headers={"User-Agent": f"clipsearch/{__version__}"})
    opener = urllib.request.build_opener(_Redirects())
    deadline = time.monotonic() + timeout
    try:
        with opener.open(request, timeout=timeout) as response:
            return _read(url, response, max_bytes, deadline, timeout)
    except UrlError:
        raise
    except urllib.error.HTTPError as exc:
        raise UrlError(f"{url}: the server answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise UrlError(f"{url}: no answer within {timeout:g} s") from None
        raise UrlError(f"{url}: cannot fetch it ({reason})") from None
    except TimeoutError:
        raise UrlError(f"{url}: no answer within {timeout:g} s") from None
    except (OSError, ValueError) as exc:  # a reset connection, a malformed URL or answer
        raise UrlError(f"{url}: cannot fetch it ({exc})") from None


def _read(url: str, response: Any, max_bytes: int, deadline: float, timeout: float) -> bytes:
    content_type = response.headers.get("Content-Type", "")
    if not _is_image_type(content_type):
        raise UrlError(f"{url}: not an image (the server sends {content_type.split(';')[0]})")
    too_large = f"{url}: the image is over the limit of {max_bytes / 1e6:g} MB"
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise UrlError(too_large)
    body = bytearray()
    while chunk := response.read(CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise UrlError(too_large)
        if time.monotonic() > deadline:
            raise UrlError(f"{url}: not all in within {timeout:g} s")
    if not body:
        raise UrlError(f"{url}: the answer is empty")
    return bytes(body)
