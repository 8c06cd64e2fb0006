"""`clipsearch serve`: the browser gallery and JSON API (the `clipsearch_web` package, imported
only here), which also answers `clipsearch search` on the same index over a Unix socket."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from clipsearch_onnx.cli.options import add_common, add_decoding, settings_from
from clipsearch_onnx.cli.usage import add_command
from clipsearch_onnx.errors import ClipSearchError
from clipsearch_web.options import TOKEN_ENV

DESCRIPTION = """\
Open the index once and serve a web page and a JSON API on it until Ctrl-C:

  GET  /                         the page (/?q=TEXT opens it on that search)
  GET  /api/search?q=TEXT&k=N    search by text
  POST /api/search               multipart: field `image` (a file) and/or `q` (text), `k`
  GET  /api/similar/ID?k=N       more like the indexed image ID (its stored vector)
  GET  /api/info                 what the index holds
  GET  /thumb/ID[?size=1024]     a JPEG thumbnail;  GET /image/ID  the file itself

Answers are `clipsearch search --json`'s schema plus `id` and `thumbnail_url` per result;
errors are JSON with a 4xx status. Only catalogued files are served, by id, and only while they
stay inside the indexed folder (no symlink out of it). While it runs, `clipsearch search` on the
same index asks it instead of loading the model (set CLIPSEARCH_NO_DAEMON=1 to search locally).
The server listens on the loopback only unless --host says otherwise, which needs --token."""


def register(subparsers: Any) -> argparse.ArgumentParser:
    from clipsearch_web import options as d

    p = add_command(
        subparsers,
        "serve",
        help="the browser gallery and JSON API (and a fast path for `search`)",
        description=DESCRIPTION,
    )
    p.add_argument(
        "--host", default=d.DEFAULT_HOST, help=f"address to listen on ({d.DEFAULT_HOST})"
    )
    p.add_argument(
        "--port",
        type=int,
        default=d.DEFAULT_PORT,
        help=f"TCP port, 0 for any free one ({d.DEFAULT_PORT})",
    )
    p.add_argument(
        "--token",
        metavar="T",
        help=f"secret each request must carry (needed off the loopback; or {TOKEN_ENV}); "
        "open http://HOST:PORT/?token=T once in the browser",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=d.DEFAULT_MAX_UPLOAD_MB,
        metavar="MB",
        help=f"largest upload ({d.DEFAULT_MAX_UPLOAD_MB:g})",
    )
    p.add_argument(
        "--max-upload-pixels",
        type=int,
        default=d.DEFAULT_MAX_UPLOAD_PIXELS,
        metavar="N",
        help=f"largest uploaded image in pixels ({d.DEFAULT_MAX_UPLOAD_PIXELS})",
    )
    p.add_argument(
        "--thumbnail-cache",
        metavar="DIR",
        help="thumbnail folder (default: one per index under CLIPSEARCH_HOME/cache, "
        "else ~/.cache/clipsearch)",
    )
    p.add_argument(
        "--thumbnail-cache-mb",
        type=float,
        default=d.DEFAULT_THUMBNAIL_CACHE_MB,
        metavar="MB",
        help=f"the thumbnail folder's budget ({d.DEFAULT_THUMBNAIL_CACHE_MB:g})",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=d.DEFAULT_WORKERS,
        metavar="N",
        help=f"query threads ({d.DEFAULT_WORKERS})",
    )
    p.add_argument(
        "--no-query-socket",
        action="store_true",
        help="do not answer `clipsearch search` over the Unix socket",
    )
    add_common(p)
    add_decoding(p)
    return p


def run(args: argparse.Namespace) -> int:
    try:
        from clipsearch_web.server import ServeOptions, serve
    except ImportError as exc:
        raise ClipSearchError(
            f"`clipsearch serve` needs the `serve` extra ({exc.name} is missing): "
            "pip install 'clipsearch-onnx[serve]'"
        ) from None
    options = ServeOptions(
        host=args.host,
        port=args.port,
        token=args.token or os.environ.get(TOKEN_ENV) or None,
        max_upload_mb=args.max_upload_mb,
        max_upload_pixels=args.max_upload_pixels,
        thumbnail_cache=Path(args.thumbnail_cache).expanduser() if args.thumbnail_cache else None,
        thumbnail_cache_mb=args.thumbnail_cache_mb,
        workers=args.workers,
        query_socket=not args.no_query_socket,
    )
    return serve(settings_from(args), options)
