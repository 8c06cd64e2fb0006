"""The options of `clipsearch serve`, with their defaults (standard library only: the command
line reads the defaults for its help without importing the server)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TOKEN_ENV = "CLIPSEARCH_TOKEN"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_MAX_UPLOAD_PIXELS = 50_000_000
DEFAULT_THUMBNAIL_CACHE_MB = 256.0
DEFAULT_WORKERS = 4


@dataclass(frozen=True)
class ServeOptions:
    host: str = DEFAULT_HOST
    """Address to listen on; anything but the loopback needs a token."""
    port: int = DEFAULT_PORT
    """TCP port (0: any free one; the URL printed says which)."""
    token: str | None = None
    """Secret every request must carry (Bearer header, cookie, or ?token=)."""
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    """Largest query image upload, in MB (10^6 bytes)."""
    max_upload_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS
    """Largest query image upload, in pixels (checked from its header before decoding)."""
    thumbnail_cache: Path | None = None
    """Thumbnail folder; default: a folder per index under the clipsearch cache."""
    thumbnail_cache_mb: float = DEFAULT_THUMBNAIL_CACHE_MB
    """Disk budget of the thumbnail folder, in MB."""
    workers: int = DEFAULT_WORKERS
    """Query worker threads (each holds its own SQLite connection)."""
    query_socket: bool = True
    """Also answer `clipsearch search` on this index over a Unix socket."""
