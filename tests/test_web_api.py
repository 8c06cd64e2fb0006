"""`clipsearch serve`'s JSON API against a real server process on a free loopback port."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from tests.fixtures_web import clipsearch_cmd, start_server, web_env

QUERY = "a dog running on the beach"


@pytest.fixture(scope="module")
def client(web_server):
    with httpx.Client(base_url=web_server.url, timeout=60) as c:
        yield c


def ids_by_path(client) -> dict[str, int]:
    data = client.get("/api/search", params={"q": "a photo", "k": 1000}).json()
    return {r["path"]: r["id"] for r in data["results"]}


def local_search(web_collection, *args: str) -> str:
    cmd = clipsearch_cmd("search", *args, "--index", str(web_collection.index))
    env = web_env(web_collection.home, CLIPSEARCH_NO_DAEMON="1")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout


def test_text_search_answers_what_the_cli_answers_with_loadable_thumbnails(client, web_collection):
    data = client.get("/api/search", params={"q": QUERY, "k": 10}).json()
    cli = json.loads(local_search(web_collection, QUERY, "-k", "10", "--json"))
    assert [r["path"] for r in data["results"]] == [r["path"] for r in cli["results"]]
    assert data["query"] == cli["query"] == {"text": QUERY}
    assert [r["rank"] for r in data["results"]] == list(range(1, 11))
    for result in data["results"]:
        assert result["captions"] == web_collection.captions[result["path"].rsplit("/", 1)[1]]
        thumb = client.get(result["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(thumb.content)) as img:
            assert max(img.size) <= 256 and min(img.size) > 0
    large = client.get(data["results"][0]["thumbnail_url"], params={"size": 1024})
    assert large.status_code == 200


def test_similar_and_an_uploaded_copy_find_the_image_itself_first(client, web_collection):
    ids = ids_by_path(client)
    target = web_collection.images[6]
    similar = client.get(f"/api/similar/{ids[str(target)]}", params={"k": 5}).json()
    assert similar["results"][0]["path"] == str(target)
    assert similar["query"] == {"id": ids[str(target)], "image": str(target)}
    files = {"image": ("copy.jpg", target.read_bytes(), "image/jpeg")}
    upload = client.post("/api/search", files=files, data={"k": "5"}).json()
    assert upload["results"][0]["path"] == str(target)
    assert len(upload["results"]) == 5
    both = client.post("/api/search", files=files, data={"q": "a red car"}).json()
    assert both["query"] == {"text": "a red car", "image": "copy.jpg"}
    original = client.get(f"/image/{ids[str(target)]}")
    assert original.status_code == 200 and original.content == target.read_bytes()


@pytest.mark.parametrize(
    "url",
    [
        "/thumb/../../../../etc/passwd",
        "/thumb/..%2f..%2f..%2fetc%2fpasswd",
        "/image/%2e%2e/%2e%2e/etc/passwd",
        "/image//etc/passwd",
        "/image/%2Fetc%2Fpasswd",
        "/static/../../../etc/passwd",
        "/static/%2e%2e%2f%2e%2e%2fapp.py",
        "/static/..%252f..%252fetc%252fpasswd",
        "//etc/passwd",
        "/image/-1",
        "/image/99999999999999999999999",
        "/thumb/1e3",
    ],
)
def test_nothing_outside_the_catalog_can_be_fetched(web_server, url):
    status, body = _raw_get(web_server.url, url)
    assert 400 <= status < 500, (url, status)
    assert b"root:" not in body and b"import " not in body


def _raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as written (no client-side normalisation of `..`)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@contextmanager
def replaced_by_symlink(path, target):
    saved = path.read_bytes()
    path.unlink()
    path.symlink_to(target)
    try:
        yield
    finally:
        path.unlink()
        path.write_bytes(saved)


def test_a_catalogued_file_that_became_a_symlink_out_of_the_folder_is_refused(
    client, web_collection, tmp_path
):
    ids = ids_by_path(client)
    victim = web_collection.images[3]
    outside = tmp_path / "secret.jpg"
    shutil.copy(web_collection.images[4], outside)  # an image, so only the place gives it away
    with replaced_by_symlink(victim, outside):
        for url in (f"/thumb/{ids[str(victim)]}", f"/image/{ids[str(victim)]}"):
            refused = client.get(url)
            assert refused.status_code == 403, url
            assert "outside the indexed folder" in refused.json()["error"]
    with replaced_by_symlink(victim, web_collection.images[5]):  # a symlink inside is fine
        assert (
            client.get(f"/image/{ids[str(victim)]}").content
            == web_collection.images[5].read_bytes()
        )
    assert client.get(f"/thumb/{ids[str(victim)]}").status_code == 200


def test_the_indexed_folder_replaced_by_a_symlink_out_of_it_is_refused(
    client, web_collection, tmp_path
):
    """The folder's real path is the one the server found at start, not wherever the folder
    points by the time of a request: each catalogued name would be looked up over there."""
    ids = ids_by_path(client)
    victim = web_collection.images[3]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / victim.name).write_bytes(b"a secret that has the name of a catalogued photo")
    photos = web_collection.photos
    moved = photos.with_name(photos.name + "-moved")
    photos.rename(moved)
    photos.symlink_to(elsewhere)
    try:
        for url in (f"/image/{ids[str(victim)]}", f"/thumb/{ids[str(victim)]}"):
            refused = client.get(url)
            assert refused.status_code == 403, url
            assert "outside the indexed folder" in refused.json()["error"]
    finally:
        photos.unlink()
        moved.rename(photos)
    assert client.get(f"/image/{ids[str(victim)]}").content == victim.read_bytes()


@pytest.mark.parametrize("declared", [500_000, 5_000_000], ids=["under-limit", "over-limit"])
def test_an_upload_abandoned_halfway_is_no_error_in_the_log(web_server, client, declared):
    """A client that closes the connection mid-body is a client gone, not a server bug: no
    traceback in the server's log (Starlette re-raises what reaches its 500 handler)."""
    parts = urlsplit(web_server.url)
    before = len(web_server.stderr)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        head = (
            "POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode() + b"--b\r\n" + b"x" * 1000)
    assert client.get("/api/search", params={"q": "a cat", "k": 3}).status_code == 200
    time.sleep(0.5)  # the server notices the closed connection on its next read
    assert "Traceback" not in "".join(web_server.stderr[before:])


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (os.urandom(5000), 400, "not an image"),
        (b"", 400, "empty"),
        (_png(2500, 2000), 413, "over the limit of 4,000,000 pixels"),
        (os.urandom(1_500_000), 413, "over the limit of 1 MB"),
    ],
    ids=["random-bytes", "empty", "too-many-pixels", "too-many-bytes"],
)
def test_a_bad_upload_gets_a_4xx_and_the_server_stays_up(client, payload, status, message):
    files = {"image": ("x.jpg", payload, "image/jpeg")}
    refused = client.post("/api/search", files=files)
    assert refused.status_code == status
    assert message in refused.json()["error"]
    assert client.get("/api/search", params={"q": "a cat", "k": 3}).status_code == 200


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status"),
    [
        ("GET", "/api/search", {}, 400),
        ("GET", "/api/search?q=cat&k=0", {}, 400),
        ("GET", "/api/search?q=cat&k=many", {}, 400),
        ("GET", "/api/search?q=cat&k=100000", {}, 400),
        ("GET", "/api/similar/424242", {}, 404),
        ("GET", "/thumb/1?size=77", {}, 400),
        ("GET", "/api/nothing", {}, 404),
        ("DELETE", "/api/search", {}, 405),
        ("POST", "/api/search", {"data": {"q": "x"}}, 415),
        ("POST", "/api/search", {"files": {"q": (None, "")}}, 400),
        ("GET", "/api/info", {"headers": {"Host": "evil.example"}}, 403),
    ],
)
def test_errors_are_json_with_a_4xx_status(client, method, url, kwargs, status):
    response = client.request(method, url, **kwargs)
    assert response.status_code == status
    body = response.json()
    assert body["status"] == status and body["error"]


def test_info_says_what_the_index_holds(client, web_collection):
    info = client.get("/api/info").json()
    assert info["count"] == len(web_collection.images)
    assert info["server"]["max_upload_bytes"] == 1_000_000


def test_off_the_loopback_the_server_wants_a_token(web_collection):
    cmd = clipsearch_cmd("serve", "--index", str(web_collection.index), "--host", "0.0.0.0")
    refused = subprocess.run(cmd, capture_output=True, text=True, env=web_env(web_collection.home))
    assert refused.returncode == 2 and "--token" in refused.stderr


@pytest.mark.parametrize("token", ["a;b", "two words", "50%"])
def test_a_token_that_a_cookie_or_url_would_mangle_is_refused(web_collection, token):
    cmd = clipsearch_cmd("serve", "--index", str(web_collection.index), "--token", token)
    env = {**web_env(web_collection.home), "CLIPSEARCH_TOKEN": token}
    refused = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("clipsearch: error: --token must be printable ASCII")


def test_a_bracketed_ipv6_loopback_host_is_served(web_collection):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server = start_server(web_collection, "--host", "[::1]")
    try:
        assert server.url.startswith("http://[::1]:")
        assert httpx.get(f"{server.url}/api/info", timeout=30).json()["count"] > 0
    finally:
        server.stop()


def test_with_a_token_every_request_must_carry_it():
    asyncio.run(_token_checks())


async def _token_checks() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from clipsearch_web.security import Guard

    app = Guard(Starlette(routes=[Route("/", lambda r: PlainTextResponse("ok"))]), "s3cret")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://192.0.2.1") as c:
        assert (await c.get("/")).status_code == 401
        assert (await c.get("/", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await c.get("/", headers={"Authorization": "Bearer s3cret"})).status_code == 200
        first = await c.get("/?token=s3cret")
        assert first.status_code == 200
        assert "clipsearch_token=s3cret" in first.headers["set-cookie"]
        assert "HttpOnly" in first.headers["set-cookie"]
        cookie = {"Cookie": "theme=dark; clipsearch_token=s3cret"}
        assert (await c.get("/", headers=cookie)).status_code == 200


def test_a_republished_index_is_answered_from_without_a_restart(client, web_collection, tmp_path):
    from clipsearch_onnx.cli import main
    from tests.factories import make_images

    (extra,) = make_images(tmp_path, 1, size=(80, 60), seed=99)
    added = web_collection.photos / "added-later.jpg"
    index = ["--model", str(web_collection.model), "--index", str(web_collection.index), "-q"]
    index += ["--captions", str(web_collection.captions_file)]
    added.write_bytes(extra.read_bytes())
    try:
        assert main(["index", str(web_collection.photos), *index]) == 0
        assert client.get("/api/info").json()["count"] == len(web_collection.images) + 1
        files = {"image": ("new.jpg", added.read_bytes(), "image/jpeg")}
        assert client.post("/api/search", files=files).json()["results"][0]["path"] == str(added)
    finally:
        added.unlink()
        assert main(["index", str(web_collection.photos), *index]) == 0
    assert client.get("/api/info").json()["count"] == len(web_collection.images)


def test_filters_are_query_parameters(client, web_collection):
    """under, glob, after/before, min_size, sort and collapse, as `search`'s options."""
    photos = str(web_collection.photos)
    pngs = client.get("/api/search", params={"q": "a photo", "k": 5, "glob": "*.png"}).json()
    assert len(pngs["results"]) == 5 and all(r["path"].endswith(".png") for r in pngs["results"])
    assert pngs["query"]["filter"] == {"glob": "*.png"}
    under = {"q": "a photo", "k": 3, "under": photos, "sort": "path", "after": "2000-01-01"}
    data = client.get("/api/search", params=under).json()
    paths = [r["path"] for r in data["results"]]
    assert paths == sorted(paths) and all(p.startswith(photos + "/") for p in paths)
    assert all(r["date"] >= "2000-01-01" for r in data["results"])
    nothing = client.get("/api/search", params={"q": "a photo", "before": "1990-01-01"}).json()
    assert nothing["results"] == []
    first = data["results"][0]["id"]
    similar = client.get(f"/api/similar/{first}", params={"k": 3, "glob": "*.jpg"}).json()
    assert similar["results"] and all(r["path"].endswith(".jpg") for r in similar["results"])
    for bad in ({"under": "photos"}, {"after": "soon"}, {"min_size": "big"}, {"sort": "size"}):
        answer = client.get("/api/search", params={"q": "a photo", **bad})
        assert answer.status_code == 400 and answer.json()["error"], bad
