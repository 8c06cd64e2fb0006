"""The HTTP edge: one endpoint class per route, each a thin call into the library's Searcher.

Answers are the library's own JSON (`Response.to_json()`, the schema of `search --json`) plus,
per result, `id` (catalog id) and `thumbnail_url` (relative to the server). Files are reached by
catalog id only. Errors are JSON `{"error": ..., "status": ...}`: 4xx for anything the request
got wrong, 503 when the index or model cannot be used, 500 only for a bug.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from clipsearch_onnx import __version__, query
from clipsearch_onnx.errors import (
    ClipSearchError,
    IndexError_,
    InputError,
    ModelError,
    UsageError,
)
from clipsearch_onnx.filters import Filter
from clipsearch_onnx.relevance import Cut
from clipsearch_onnx.search import Searcher

from .files import NotServed, OpenFile, Roots, open_item
from .security import Guard
from .service import SearchService
from .thumbnails import SIZES, ThumbnailCache
from .uploads import UploadRefused, check_pixels, read_upload

T = TypeVar("T")
STATIC = Path(__file__).parent / "static"
MAX_ID = (1 << 63) - 1  # SQLite's integer range
PAGES = {"app.js": "text/javascript", "app.css": "text/css", "favicon.svg": "image/svg+xml"}


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int
    max_upload_pixels: int
    max_k: int = 1000
    max_text: int = 2000


def answer(response: Any) -> dict[str, Any]:
    """`search --json`'s object plus `id` and `thumbnail_url` per result."""
    data = response.to_json()
    for result, out in zip(response.results, data["results"], strict=True):
        out["id"] = result.id
        out["thumbnail_url"] = f"/thumb/{result.id}"
    return data


class Bad(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _k(raw: str | None, limits: Limits) -> int:
    if raw is None or raw == "":
        return 10
    if not re.fullmatch(r"[0-9]{1,7}", raw) or not 1 <= int(raw) <= limits.max_k:
        raise Bad(400, f"k must be a whole number from 1 to {limits.max_k}, not {raw[:20]!r}")
    return int(raw)


def _text(raw: str | None, limits: Limits) -> str | None:
    """The query `q`, in the CLI's query syntax (clipsearch_onnx.query) with texts alone: the
    server reads no file and fetches no URL a request names (send an image as an upload)."""
    if raw is not None and len(raw) > limits.max_text:
        raise Bad(400, f"the query text is over {limits.max_text} characters")
    if not raw or not raw.strip():
        return None
    images = [t for t in query.parse_terms(raw) if t.is_image]
    if images:
        raise Bad(
            400,
            f"q names an image ({images[0].value[:100]}): over HTTP a query's images are "
            "uploads (POST multipart, field `image`); start the term with a backslash to "
            "search for the words",
        )
    return raw


def _number(params: Any, name: str, low: float, high: float) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise Bad(400, f"{name} must be a number from {low:g} to {high:g}, not {raw[:20]!r}")
    return value


def _relevance(params: Any) -> dict[str, Any]:
    """search()'s `cut` and `exclude_query` from min_score, min_prob, cutoff=auto and
    exclude_query=1 (the CLI's --min-score, --min-prob, --cutoff, --exclude-query)."""
    cutoff = params.get("cutoff")
    if cutoff not in (None, "", "auto"):
        raise Bad(400, f"cutoff must be auto, not {cutoff[:20]!r}")
    min_score = _number(params, "min_score", -1, 1)
    min_prob = _number(params, "min_prob", 0, 1)
    cut = None
    if min_score is not None or min_prob is not None or cutoff == "auto":
        cut = Cut(min_score, min_prob, cutoff == "auto")
    return {"cut": cut, "exclude_query": params.get("exclude_query") in ("1", "true", "yes")}


def _where(params: Any) -> Filter | None:
    """search()'s `where` from under (an absolute folder), glob, after, before, min_size, sort
    and collapse=1: the CLI's filter options (clipsearch_onnx/filters.py)."""
    names = ("under", "glob", "after", "before", "min_size", "sort")
    given = {name: params.get(name) or None for name in names}
    collapse = params.get("collapse") in ("1", "true", "yes")
    if not any(given.values()) and not collapse:
        return None
    if given["under"] is not None and not os.path.isabs(given["under"]):
        raise Bad(400, f"under must be an absolute folder, not {given['under'][:100]!r}")
    return Filter.parse(**given, collapse=collapse)


def _item_id(request: Request) -> int:
    item_id = request.path_params["item_id"]
    if item_id > MAX_ID:
        raise Bad(404, f"no image with id {item_id} in the index")
    return item_id


def _upload_name(filename: str) -> str:
    name = os.path.basename(filename.replace("\\", "/"))
    return re.sub(r"[^\w.\- ]", "_", name)[:100] or "upload"


class Endpoint(HTTPEndpoint):
    async def work(self, request: Request, func: Callable[[Searcher], T]) -> T:
        """`func(searcher)` on a query worker thread."""
        service: SearchService = request.app.state.service
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(service.pool, service.run, func)

    def limits(self, request: Request) -> Limits:
        return request.app.state.limits


class SearchEndpoint(Endpoint):
    async def get(self, request: Request) -> Response:
        limits = self.limits(request)
        text = _text(request.query_params.get("q"), limits)
        k = _k(request.query_params.get("k"), limits)
        if text is None:
            raise Bad(400, "give the text to search for as ?q=TEXT (or POST an image)")
        how = {**_relevance(request.query_params), "where": _where(request.query_params)}
        response = await self.work(request, lambda s: s.search(text, k=k, **how))
        return JSONResponse(answer(response))

    async def post(self, request: Request) -> Response:
        limits = self.limits(request)
        upload = await read_upload(request, limits.max_upload_bytes)
        text = _text(upload.text, limits)
        k = _k(upload.k if upload.k is not None else request.query_params.get("k"), limits)
        how = {**_relevance(request.query_params), "where": _where(request.query_params)}
        if upload.data is None:
            if text is None:
                raise Bad(400, "send an image in the field `image`, a text in `q`, or both")
            response = await self.work(request, lambda s: s.search(text, k=k, **how))
            return JSONResponse(answer(response))
        data, name = upload.data, _upload_name(upload.name or "")
        check_pixels(data, limits.max_upload_pixels)
        response = await self.work(
            request, lambda s: s.search(text, name, k, image_data=data, **how)
        )
        return JSONResponse(answer(response))


class SimilarEndpoint(Endpoint):
    async def get(self, request: Request) -> Response:
        item_id = _item_id(request)
        k = _k(request.query_params.get("k"), self.limits(request))
        where = _where(request.query_params)
        try:
            response = await self.work(request, lambda s: s.similar(item_id, k, where=where))
        except InputError as exc:
            raise Bad(404, str(exc)) from None
        return JSONResponse(answer(response))


class InfoEndpoint(Endpoint):
    async def get(self, request: Request) -> Response:
        limits = self.limits(request)
        info = await self.work(request, lambda s: s.info().to_json())
        info["server"] = {
            "version": __version__,
            "max_upload_bytes": limits.max_upload_bytes,
            "max_upload_pixels": limits.max_upload_pixels,
            "max_k": limits.max_k,
            "thumbnail_sizes": list(SIZES),
        }
        return JSONResponse(info)


class ThumbnailEndpoint(Endpoint):
    async def get(self, request: Request) -> Response:
        item_id = _item_id(request)
        raw = request.query_params.get("size", str(SIZES[0]))
        if not raw.isdigit() or int(raw) not in SIZES:
            raise Bad(400, f"size must be one of {', '.join(map(str, SIZES))}")
        thumbs: ThumbnailCache = request.app.state.thumbnails
        roots: Roots = request.app.state.roots

        def make(s: Searcher) -> bytes:
            with open_item(s.catalog, item_id, roots) as opened:
                return thumbs.get(opened, int(raw))

        data = await self.work(request, make)
        headers = {"cache-control": "private, max-age=300"}
        return Response(data, media_type="image/jpeg", headers=headers)


def _chunks(opened: OpenFile) -> Iterator[bytes]:
    try:
        while chunk := os.read(opened.fd, 1 << 20):
            yield chunk
    finally:
        opened.close()


class ImageEndpoint(Endpoint):
    """The catalogued file itself (for the larger view's "open the original")."""

    async def get(self, request: Request) -> Response:
        item_id = _item_id(request)
        roots: Roots = request.app.state.roots
        opened = await self.work(request, lambda s: open_item(s.catalog, item_id, roots))
        kind = mimetypes.guess_type(opened.real_path)[0] or ""
        headers = {"content-length": str(opened.st.st_size), "cache-control": "private"}
        if not kind.startswith("image/"):
            kind = "application/octet-stream"
            headers["content-disposition"] = "attachment"
        return StreamingResponse(_chunks(opened), media_type=kind, headers=headers)


class PageEndpoint(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        if name != "index.html" and name not in PAGES:
            raise Bad(404, "no such page")
        kind = PAGES.get(name, "text/html")
        data = request.app.state.pages[name]
        return Response(data, media_type=kind, headers={"cache-control": "no-cache"})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def _on_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ClientDisconnect):  # gone mid-upload: nobody reads this answer
        return _error(400, "the client closed the connection before the end of the request")
    if isinstance(exc, Bad | NotServed | UploadRefused):
        return _error(exc.status, exc.message)
    if isinstance(exc, HTTPException):
        return _error(exc.status_code, str(exc.detail))
    if isinstance(exc, InputError | UsageError):
        return _error(400, str(exc))
    if isinstance(exc, IndexError_ | ModelError | ClipSearchError):
        return _error(503, str(exc))
    traceback.print_exception(exc, file=sys.stderr)
    return _error(500, f"internal error ({type(exc).__name__}); see the server's log")


def create_app(
    service: SearchService, thumbnails: ThumbnailCache, limits: Limits, token: str | None = None
) -> Guard:
    routes = [
        Route("/", PageEndpoint),
        Route("/static/{name}", PageEndpoint),
        Route("/api/search", SearchEndpoint),
        Route("/api/similar/{item_id:int}", SimilarEndpoint),
        Route("/api/info", InfoEndpoint),
        Route("/thumb/{item_id:int}", ThumbnailEndpoint),
        Route("/image/{item_id:int}", ImageEndpoint),
    ]
    # Starlette re-raises what reaches the handler of Exception (after answering 500): a client
    # that went away is handled as the request errors are, not logged as a server bug.
    known = (Bad, NotServed, UploadRefused, HTTPException, ClipSearchError, ClientDisconnect)
    handlers: dict[Any, Callable] = {exc: _on_error for exc in (*known, Exception)}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.service = service
    app.state.thumbnails = thumbnails
    app.state.limits = limits
    # the indexed folders' real paths as they are now, before any request (files.Roots)
    app.state.roots = roots = Roots()
    service.pool.submit(service.run, lambda s: roots.of(s.catalog)).result()
    app.state.pages = {name: (STATIC / name).read_bytes() for name in ["index.html", *PAGES]}
    return Guard(app, token)
