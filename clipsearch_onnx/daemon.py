"""Handing a one-shot `clipsearch search` to a running `clipsearch serve` (issue 15: queries
without start-up).

This runs before the command line is even imported (`clipsearch_onnx.entry`), so it uses the
standard library alone and parses nothing: it sends its arguments, working directory, the
environment variables that decide settings, and its terminal to the server of the index the
arguments name, and prints what the server answers. The server parses the arguments with the
CLI's own parser and answers only what it can answer exactly as this process would (the same
index, model and settings, a plain query); anything else it declines. Without an answer (no
server, a declined request, a timeout, a garbled reply) the caller runs the command itself, which
prints the same. The server side is `clipsearch_web.socket_server`.

Protocol: one request per connection, a JSON object on one line each way.
  request:  {"v": 2, "op": "cli", "argv": ARGS_AFTER_SEARCH, "cwd": ..., "env": {...},
             "columns": N | null}
  answer:   {"v": 2, "ok": true, "stdout": TEXT} or {"v": 2, "ok": false, "reason": ...}
"""

from __future__ import annotations

import json
import os
import sys

PROTOCOL = 2
DISABLE_ENV = "CLIPSEARCH_NO_DAEMON"  # set to 1: never ask a server (always search locally)
ANSWER_TIMEOUT = 30.0  # seconds; a server this slow is worse than loading the model here
MAX_ANSWER = 64 << 20
MAX_SOCKET_PATH = 100  # bytes; the kernel's limit for a socket's path is 107
# What settings depend on besides the arguments: the server answers only if its values are ours.
ENV_KEYS = ("HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME")
ENV_PREFIX = "CLIPSEARCH_"
ENV_IGNORED = ("CLIPSEARCH_NO_DAEMON", "CLIPSEARCH_TOKEN", "CLIPSEARCH_DEBUG")
NOT_FORWARDED = ("-h", "--help", "--queries")


def _fnv1a64(data: bytes) -> int:
    """A 64-bit name for a path (hashlib would load OpenSSL: ~3 ms of a one-shot search; a
    collision only makes the server decline, as it checks the index itself)."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def socket_path(index_dir: str | os.PathLike[str]) -> str:
    """Where a server for `index_dir` listens (one socket per index folder, by its real path)."""
    from clipsearch_onnx import paths

    name = f"index-{_fnv1a64(os.fsencode(os.path.realpath(index_dir))):016x}.sock"
    path = os.path.join(paths.runtime_dir(), name)
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:  # a deep $XDG_RUNTIME_DIR
        path = os.path.join(paths.runtime_dir(fallback=True), name)
    return path


def settings_env(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """The environment variables that decide a command's settings."""
    return {
        k: v
        for k, v in environ.items()
        if (k.startswith(ENV_PREFIX) and k not in ENV_IGNORED) or k in ENV_KEYS
    }


def _index_named(argv: list[str]) -> str:
    """The index folder the arguments name, as the server will resolve it in the common cases
    (--index, $CLIPSEARCH_INDEX, the default). Only picks the socket: the server resolves the
    settings properly and declines if they name another index."""
    index = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--index" and i + 1 < len(argv):
            index = argv[i + 1]
        elif arg.startswith("--index="):
            index = arg.partition("=")[2]
    if index is None:
        index = os.environ.get("CLIPSEARCH_INDEX")
    if index is None:
        from clipsearch_onnx import paths

        index = str(paths.default_index_dir())
    return os.path.abspath(os.path.expanduser(index))


def _columns() -> int | None:
    """The width a table is written for, as the CLI works it out (`cli.results.table_width`:
    COLUMNS or the terminal's width, 80 failing both; None when stdout is no terminal and
    COLUMNS is unset)."""
    if "COLUMNS" not in os.environ and not sys.stdout.isatty():
        return None
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:  # shutil.get_terminal_size's rule, without importing shutil
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def ask(index_dir: str, request: dict, timeout: float = ANSWER_TIMEOUT) -> dict | None:
    """The server's answer to `request`, or None when no server answers for `index_dir`."""
    import _socket  # `socket` itself builds four enums on import: ~3 ms of a one-shot search

    chunks: list[bytes] = []
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(socket_path(index_dir))
            sock.sendall(json.dumps({"v": PROTOCOL, **request}).encode("utf-8") + b"\n")
            sock.shutdown(_socket.SHUT_WR)
            size = 0
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER:
                    return None
        finally:
            sock.close()
    except OSError:  # no socket file, nobody listening, a timeout: run locally
        return None
    try:
        answer = json.loads(b"".join(chunks))
    except ValueError:
        return None
    if not isinstance(answer, dict) or answer.get("v") != PROTOCOL or answer.get("ok") is not True:
        return None
    return answer


def forward(argv: list[str]) -> int | None:
    """Runs `clipsearch ARGV` on a server when it is a search one can answer; the exit code,
    or None when this process must run the command itself."""
    if not argv or argv[0] != "search" or os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return None
    args = argv[1:]
    if any(a in NOT_FORWARDED or a.startswith("--queries=") for a in args):
        return None
    request = {
        "op": "cli",
        "argv": args,
        "cwd": os.getcwd(),
        "env": settings_env(os.environ),
        "columns": _columns(),
    }
    answer = ask(_index_named(args), request)
    if answer is None or not isinstance(answer.get("stdout"), str):
        return None
    sys.stdout.write(answer["stdout"])
    sys.stdout.flush()
    return 0
