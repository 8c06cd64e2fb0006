"""The defaults of `clipsearch serve`'s options, in one place. Nothing but constants: the command
line shows them in its help, and `clipsearch search` builds that parser too, on its way to
asking a running server (issue 15: every import there costs the one-shot query)."""

TOKEN_ENV = "CLIPSEARCH_TOKEN"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_MAX_UPLOAD_PIXELS = 50_000_000
DEFAULT_THUMBNAIL_CACHE_MB = 256.0
DEFAULT_WORKERS = 4
