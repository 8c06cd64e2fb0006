"""`clipsearch serve`: open the index once, then answer HTTP on a TCP port and queries of
`clipsearch search` on a Unix socket until Ctrl-C."""

from __future__ import annotations

import hashlib
import socket
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clipsearch_onnx.errors import ClipSearchError, ExitCode
from clipsearch_onnx.paths import cache_dir
from clipsearch_onnx.settings import Settings

from . import options as default


class ServeError(ClipSearchError):
    """The server cannot start with these options."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class ServeOptions:
    host: str = default.DEFAULT_HOST
    """Address to listen on; anything but the loopback needs a token."""
    port: int = default.DEFAULT_PORT
    """TCP port (0: any free one; the URL printed says which)."""
    token: str | None = None
    """Secret every request must carry (Bearer header, cookie, or ?token=)."""
    max_upload_mb: float = default.DEFAULT_MAX_UPLOAD_MB
    """Largest query image upload, in MB (10^6 bytes)."""
    max_upload_pixels: int = default.DEFAULT_MAX_UPLOAD_PIXELS
    """Largest query image upload, in pixels (checked from its header before decoding)."""
    thumbnail_cache: Path | None = None
    """Thumbnail folder; default: a folder per index under the clipsearch cache."""
    thumbnail_cache_mb: float = default.DEFAULT_THUMBNAIL_CACHE_MB
    """Disk budget of the thumbnail folder, in MB."""
    workers: int = default.DEFAULT_WORKERS
    """Query worker threads (each holds its own SQLite connection)."""
    query_socket: bool = True
    """Also answer `clipsearch search` on this index over a Unix socket."""


def thumbnail_folder(index_dir: Path) -> Path:
    digest = hashlib.sha256(str(index_dir.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "thumbnails" / digest


def _listen(host: str, port: int) -> socket.socket:
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1] as in URLs
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {host}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(256)
    except OSError as exc:
        sock.close()
        raise ServeError(
            f"cannot listen on {host}:{port}: {exc.strerror} (pick another --port, 0 for any)"
        ) from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(
    settings: Settings,
    options: ServeOptions,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> int:
    import uvicorn

    from .app import Limits, create_app
    from .security import host_policy, token_policy
    from .service import SearchService
    from .socket_server import QuerySocket
    from .thumbnails import ThumbnailCache

    refusal = host_policy(options.host, options.token) or token_policy(options.token)
    if refusal:
        raise ServeError(refusal)
    if options.max_upload_mb <= 0 or options.max_upload_pixels <= 0 or options.workers < 1:
        raise ServeError("--max-upload-mb, --max-upload-pixels and --workers must be positive")
    from PIL import Image

    # Catalogued pictures were accepted by the indexer; their size is no news in the log.
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    service = SearchService(settings, options.workers)
    index_dir = service.index_dir
    thumbs = ThumbnailCache(
        options.thumbnail_cache or thumbnail_folder(index_dir),
        int(options.thumbnail_cache_mb * 1e6),
    )
    limits = Limits(int(options.max_upload_mb * 1e6), options.max_upload_pixels)
    app = create_app(service, thumbs, limits, options.token)
    sock = _listen(options.host, options.port)
    query_socket = QuerySocket(service) if options.query_socket else None
    why_not = query_socket.start() if query_socket else None
    url = url_of(sock)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    print(url, flush=True)  # stdout is data: where the server is, for scripts
    count = service.base.count
    print(
        f"clipsearch: serving {index_dir} ({count} images) at {url} "
        f"(Ctrl-C stops){'' if options.token else '; loopback only'}",
        file=sys.stderr,
        flush=True,
    )
    if why_not:
        print(f"clipsearch: no query socket: {why_not}", file=sys.stderr, flush=True)
    elif query_socket:
        print(f"clipsearch: `clipsearch search` answers via {query_socket.path}", file=sys.stderr)
    if on_ready:
        on_ready(url)
    try:
        server.run(sockets=[sock])
    finally:
        if query_socket:
            query_socket.stop()
        sock.close()
        service.close()
    return ExitCode.OK
