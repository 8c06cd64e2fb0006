"""Issue 15's query socket: while `clipsearch serve` runs, `clipsearch search` on the same index
asks it instead of loading the model, prints exactly what a local search prints, and falls back
to searching locally, silently, when no server answers."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from clipsearch_onnx.daemon import settings_env, socket_path
from tests.fixtures_web import clipsearch_cmd, web_env

HEAVY = ("numpy", "onnxruntime", "faiss", "PIL", "tokenizers")


def search(web_collection, *args: str, local: bool = False, cwd=None, **env: str):
    cmd = clipsearch_cmd("search", *args, "--index", str(web_collection.index))
    extra = {"CLIPSEARCH_NO_DAEMON": "1"} if local else {}
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=web_env(web_collection.home, **extra, **env),
        check=True,
    )


def without_took(stdout: str) -> str:
    return re.sub(r'"took_ms": [0-9.]+', '"took_ms": 0', stdout)


def imported(stderr: str) -> set[str]:
    """Top-level modules named in `python -X importtime` output."""
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)", stderr, re.M)
    return {n.split(".")[0] for n in names}


def quiet(stderr: str) -> str:
    return "".join(line for line in stderr.splitlines(True) if not line.startswith("import time"))


@pytest.mark.parametrize(
    "args",
    [
        ("a dog running on the beach", "--json"),
        ("a cat", "--image", "img_0005.png", "-k", "2"),
        ("a red car", "--paths", "-k", "4"),
    ],
    ids=["text-json", "text-and-relative-image-table-60-columns", "paths"],
)
def test_a_search_through_the_server_prints_what_a_local_search_prints(
    web_server, web_collection, args
):
    cwd = web_collection.photos  # a relative image path is the client's, not the server's
    env = {"PYTHONPROFILEIMPORTTIME": "1", "COLUMNS": "60"}  # a table fitted to 60 columns
    served = search(web_collection, *args, cwd=cwd, **env)
    local = search(web_collection, *args, cwd=cwd, local=True, **env)
    assert served.stdout.strip()
    assert without_took(served.stdout) == without_took(local.stdout)
    assert quiet(served.stderr) == quiet(local.stderr) == ""
    # The answer came from the server: this process loaded none of what a search needs, nor
    # the command line itself (the server parsed the arguments).
    assert not imported(served.stderr) & {*HEAVY, "argparse"}
    assert {"numpy", "onnxruntime", "tokenizers"} <= imported(local.stderr)


def test_without_a_server_the_search_is_local_and_silent(web_server, web_collection, monkeypatch):
    # Another runtime folder: no socket there at first, then a stale one nobody listens on.
    runtime = tempfile.mkdtemp(prefix="cs-", dir="/tmp")
    env = {"XDG_RUNTIME_DIR": runtime, "PYTHONPROFILEIMPORTTIME": "1"}
    try:
        first = search(web_collection, "a red car", "--json", **env)
        monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
        stale = Path(socket_path(web_collection.index))
        stale.parent.mkdir(mode=0o700)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(stale))  # bound, never listening: connections are refused
            second = search(web_collection, "a red car", "--json", **env)
    finally:
        shutil.rmtree(runtime)
    assert json.loads(first.stdout)["results"]
    assert without_took(first.stdout) == without_took(second.stdout)
    for run in (first, second):
        assert quiet(run.stderr) == ""
        assert "onnxruntime" in imported(run.stderr)


def test_what_the_server_cannot_answer_exactly_is_answered_locally(web_server, web_collection):
    index = ["--index", str(web_collection.index)]
    env = web_env(web_collection.home)
    # The index holds int8 embeddings: the local rules refuse an fp32 query, with their message.
    cmd = clipsearch_cmd("search", "a cat", "--precision", "fp32", *index)
    refused = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert refused.returncode == 3 and "int8 embeddings" in refused.stderr
    cmd = clipsearch_cmd("search", "--image", "nope.jpg", *index)
    gone = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert gone.returncode == 5 and "nope.jpg does not exist" in gone.stderr
    # An option beyond a plain query (another thread count here) is searched for locally.
    served = search(web_collection, "a cat", "--threads", "2", PYTHONPROFILEIMPORTTIME="1")
    assert "onnxruntime" in imported(served.stderr) and served.stdout.strip()
    # Another decoding of query images than the server's (reference, the default) too; the
    # server's own is answered by the server.
    local = search(web_collection, "a cat", "--decoding", "fast", PYTHONPROFILEIMPORTTIME="1")
    assert "onnxruntime" in imported(local.stderr) and local.stdout.strip()
    served = search(web_collection, "a cat", "--decoding", "reference", PYTHONPROFILEIMPORTTIME="1")
    assert "onnxruntime" not in imported(served.stderr) and served.stdout.strip()


def test_the_socket_is_private(web_server, web_collection, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", web_env(web_collection.home)["XDG_RUNTIME_DIR"])
    path = Path(socket_path(web_collection.index))
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    env = settings_env(web_env(web_collection.home))
    request = {"v": 2, "op": "cli", "argv": ["x"], "cwd": "/", "env": {**env, "HOME": "/elsewhere"}}
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        answer = json.loads(sock.makefile("rb").read())
    assert answer["ok"] is False  # another environment: declined, the client searches itself
