"""Asking a running `clipsearch serve` to answer a query over its Unix socket (issue 15: queries
without start-up).

Standard library only: a one-shot `clipsearch search` must not pay for numpy, onnxruntime or FAISS
before it knows whether a server can answer for it. Without an answer (no socket, nobody
listening, a declined or garbled answer, a timeout) the caller searches locally, which gives the
same output. The server side is `clipsearch_web.socket_server`.

Protocol: one request per connection, a JSON object on one line each way.
  request:  {"v": 1, "op": "search", "index": REALPATH, "text": ..., "image": ABSPATH | None,
             "image_arg": AS_GIVEN | None, "k": N, "model": ABSPATH | None,
             "precision": ... | None}
  answer:   {"v": 1, "ok": true, "response": <Response.to_json()>} or {"v": 1, "ok": false,
             "reason": ...} (the caller then searches locally and reports any error itself).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from clipsearch_onnx import paths

PROTOCOL = 1
DISABLE_ENV = "CLIPSEARCH_NO_DAEMON"  # set to 1: never ask a server (always search locally)
ANSWER_TIMEOUT = 30.0  # seconds; a server this slow is worse than loading the model here
MAX_ANSWER = 64 << 20
MAX_SOCKET_PATH = 100  # bytes; the kernel's limit for a socket's path is 107


def _fnv1a64(data: bytes) -> int:
    """A 64-bit name for a path. Not hashlib: loading OpenSSL costs a one-shot search ~3 ms, and
    a collision would only make the server decline (it checks the index path itself)."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def socket_path(index_dir: Path | str) -> Path:
    """Where a server for `index_dir` listens (one socket per index folder, by its real path)."""
    real = os.fsencode(os.path.realpath(index_dir))
    path = paths.runtime_dir() / f"index-{_fnv1a64(real):016x}.sock"
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:  # a deep $XDG_RUNTIME_DIR
        path = paths.runtime_dir(fallback=True) / path.name
    return path


def _image_arg(image: str | None) -> str | None:
    if image is None or "://" in image:
        return image
    return os.path.abspath(os.path.expanduser(image))


def search_request(
    text: str | None,
    image: str | None,
    k: int,
    model_dir: Path | None = None,
    precision: str | None = None,
) -> dict[str, Any]:
    """A search as `clipsearch search` would run it here (paths made absolute: the server's
    working directory is not ours)."""
    return {
        "op": "search",
        "text": text,
        "image": _image_arg(image),
        "image_arg": image,
        "k": k,
        "model": None if model_dir is None else os.path.abspath(model_dir),
        "precision": precision,
    }


def ask(index_dir: Path | str, request: dict[str, Any], timeout: float = ANSWER_TIMEOUT):
    """The server's `response` for `request`, or None when no server answers for `index_dir`."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return None
    payload = {"v": PROTOCOL, "index": os.path.realpath(index_dir), **request}
    chunks: list[bytes] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path(index_dir)))
            sock.sendall(json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n")
            sock.shutdown(socket.SHUT_WR)
            size = 0
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER:
                    return None
    except OSError:  # no socket file, nobody listening, a timeout: search locally
        return None
    try:
        answer = json.loads(b"".join(chunks))
    except ValueError:
        return None
    if not isinstance(answer, dict) or answer.get("v") != PROTOCOL or answer.get("ok") is not True:
        return None
    response = answer.get("response")
    return response if isinstance(response, dict) else None
