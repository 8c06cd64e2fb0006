"""The query socket: while `clipsearch serve` runs, `clipsearch search` on the same index asks it
instead of loading the model (issue 15). Protocol and socket placement: `clipsearch_onnx.daemon`.

The socket lives in a private folder (0700, ours, not a symlink) and is itself 0600; a peer of
another uid is refused all the same (SO_PEERCRED). Anything the server cannot answer exactly as
a local search would (another model or precision, an error) is declined, and the client then
searches locally, so both paths print the same.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import sys
import threading
from pathlib import Path
from typing import Any

from clipsearch_onnx.daemon import PROTOCOL, socket_path
from clipsearch_onnx.errors import ClipSearchError

from .remote_search import Decline, answer
from .service import SearchService

MAX_REQUEST = 1 << 20
READ_TIMEOUT_S = 5.0
ANSWER_TIMEOUT_S = 60.0
MAX_CLIENTS = 16


def private_dir(folder: Path) -> bool:
    """Creates `folder` 0700 if needed; True if it is a real folder only we can enter."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not (st.st_mode & 0o077)


def _alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _peer_uid(conn: socket.socket) -> int | None:
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)[1]


class QuerySocket:
    def __init__(self, service: SearchService):
        self.service = service
        self.path = Path(socket_path(service.index_dir))
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)

    def start(self) -> str | None:
        """Listens; returns why not (another server answers there, an unsafe folder), or None."""
        if not private_dir(self.path.parent):
            return f"{self.path.parent} is not a private folder of ours"
        if self.path.exists() or self.path.is_symlink():
            if _alive(self.path):
                return f"another clipsearch serve already answers for this index ({self.path})"
            self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            os.chmod(self.path, 0o600)
            sock.listen(64)
        except OSError as exc:
            sock.close()
            return f"cannot listen on {self.path}: {exc.strerror}"
        self._sock, self._inode = sock, os.stat(self.path).st_ino
        threading.Thread(target=self._accept, name="clipsearch-socket", daemon=True).start()
        return None

    def stop(self) -> None:
        if self._sock is None:
            return
        self._sock.close()
        self._sock = None
        try:
            if os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
        except OSError:
            pass

    def _accept(self) -> None:
        sock = self._sock
        while sock is not None and sock is self._sock:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # closed by stop()
            if not self._slots.acquire(blocking=False):
                conn.close()  # busy: the client searches locally
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(READ_TIMEOUT_S)
                if _peer_uid(conn) not in (None, os.getuid()):
                    return
                answer = self._answer(self._read(conn))
                conn.sendall(json.dumps(answer, ensure_ascii=False).encode("utf-8") + b"\n")
        except OSError:
            pass  # the client went away; it searches locally
        finally:
            self._slots.release()

    @staticmethod
    def _read(conn: socket.socket) -> bytes:
        data = b""
        while b"\n" not in data and len(data) <= MAX_REQUEST:
            chunk = conn.recv(1 << 16)
            if not chunk:
                break
            data += chunk
        return data

    def _answer(self, raw: bytes) -> dict[str, Any]:
        try:
            request = json.loads(raw)
            if not isinstance(request, dict) or request.get("v") != PROTOCOL:
                raise Decline("protocol")
            if request.get("op") != "cli":
                raise Decline("unknown operation")
            future = self.service.pool.submit(self.service.run, lambda s: answer(request, s))
            stdout = future.result(timeout=ANSWER_TIMEOUT_S)
        except (ValueError, Decline, ClipSearchError) as exc:
            return {"v": PROTOCOL, "ok": False, "reason": str(exc)}
        except Exception as exc:  # a bug: the client still runs the search itself
            print(f"clipsearch serve: query socket: {exc!r}", file=sys.stderr)
            return {"v": PROTOCOL, "ok": False, "reason": "internal error"}
        return {"v": PROTOCOL, "ok": True, "stdout": stdout}
