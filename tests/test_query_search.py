"""Query arithmetic, URL images, relevance cuts and SigLIP probabilities through the real
`clipsearch search` command, a local HTTP server for the URLs, and `clipsearch serve`'s API."""

from __future__ import annotations

import http.server
import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clipsearch_onnx.urlimage import UrlError, fetch
from tests.fixtures_collection import (
    assert_one_clean_line,
    cli_env,
    make_distinct_images,
    run_cli,
    search_json,
)

# ---------------------------------------------------------------- a local web server for URLs


class Pages(http.server.BaseHTTPRequestHandler):
    pages: dict[str, tuple[str, bytes]] = {}  # path -> (content type, body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/huge.jpg":  # says 25 MB are coming
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(25_000_000))
            self.end_headers()
            try:
                self.wfile.write(b"\xff" * 1_000_000)
            except OSError:
                pass
            return
        if self.path == "/stream.jpg":  # no length: the cap must stop the read itself
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"\xff" * 65536)
            except OSError:
                pass
            return
        if self.path not in self.pages:
            self.send_error(404, "Not Found")
            return
        kind, body = self.pages[self.path]
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def web(tmp_path_factory) -> Iterator[tuple[str, dict[str, tuple[str, bytes]]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Pages.pages
    finally:
        server.shutdown()
        server.server_close()


def search(collection, *args: str | Path):
    return run_cli("search", *args, "--index", collection.index, home=collection.root)


def paths_of(data: dict) -> list[str]:
    return [r["path"] for r in data["results"]]


# ---------------------------------------------------------------- query arithmetic


def test_the_flags_say_what_the_syntax_says(indexed_collection):
    c = indexed_collection
    image = c.images[4]
    syntax = search_json(c.index, c.root, f"a red car + 2:{image} - 0.5:a dog", "-k", "8")
    flags = search_json(
        c.index, c.root, "--text", "a red car", "--image", f"2:{image}", "--not", "0.5:a dog",
        "-k", "8",
    )  # fmt: skip
    assert paths_of(syntax) == paths_of(flags)
    assert [r["score"] for r in syntax["results"]] == [r["score"] for r in flags["results"]]
    assert syntax["query"]["terms"] == [
        {"kind": "text", "value": "a red car", "weight": 1.0, "sign": 1},
        {"kind": "image", "value": str(image), "weight": 2.0, "sign": 1},
        {"kind": "text", "value": "a dog", "weight": 0.5, "sign": -1},
    ]
    # a one-word text is still what it was: no terms in the JSON, the same scores
    plain = search_json(c.index, c.root, "a red car", "-k", "3")
    assert plain["query"] == {"text": "a red car"}


def test_an_image_term_pulls_the_ranking_towards_it_by_its_weight(indexed_collection):
    c = indexed_collection
    image = str(c.images[9])
    ranks = []
    for weight in ("0.2", "1", "5"):
        data = search_json(c.index, c.root, f"a red car + {weight}:{image}", "-k", "24")
        ranks.append(paths_of(data).index(image))
    assert ranks[0] >= ranks[1] >= ranks[2] == 0, ranks


def test_a_folder_or_a_missing_file_is_an_error_not_a_text(indexed_collection, tmp_path):
    c = indexed_collection
    folder = search(c, f"{c.photos} + a dog")
    assert folder.returncode == 5
    assert_one_clean_line(folder.stderr)
    assert "is a folder; give the path of an image file" in folder.stderr
    missing = search(c, "a dog - ./no-such.jpg")
    assert missing.returncode == 5 and "does not exist" in missing.stderr
    assert_one_clean_line(missing.stderr)
    escaped = search(c, "\\./no-such.jpg", "--json")
    assert escaped.returncode == 0, escaped.stderr


def test_exclude_query_drops_the_query_image_and_its_copies(indexed_collection, tmp_path):
    c = indexed_collection
    image = c.images[5]
    first = search_json(c.index, c.root, "--image", image, "-k", "3")
    assert paths_of(first)[0] == str(image)
    without = search_json(c.index, c.root, "--image", image, "-k", "3", "--exclude-query")
    assert str(image) not in paths_of(without) and len(without["results"]) == 3
    assert [r["rank"] for r in without["results"]] == [1, 2, 3]
    copy = tmp_path / "copy.jpg"  # elsewhere, not indexed: the same content
    copy.write_bytes(image.read_bytes())
    via_copy = search_json(c.index, c.root, "--image", copy, "-k", "3", "--exclude-query")
    assert str(image) not in paths_of(via_copy)


# ---------------------------------------------------------------- relevance cuts


def test_min_score_drops_everything_below_it(indexed_collection):
    c = indexed_collection
    scores = [r["score"] for r in search_json(c.index, c.root, "a dog", "-k", "10")["results"]]
    threshold = (scores[2] + scores[3]) / 2
    kept = search_json(c.index, c.root, "a dog", "-k", "10", f"--min-score={threshold}")
    assert [r["score"] for r in kept["results"]] == scores[:3]
    assert kept["cut"] == {"before": 10, "min_score": threshold, "kept": 3}
    none = search(c, "a dog", "--min-score", "0.999")
    assert none.returncode == 0
    assert none.stdout.startswith("no results (none of the top 10 passes --min-score 0.999")


def test_min_prob_is_refused_for_clip_saying_why(indexed_collection):
    proc = search(indexed_collection, "a dog", "--min-prob", "0.5")
    assert proc.returncode == 2
    assert_one_clean_line(proc.stderr)
    assert "--min-prob needs a SigLIP model" in proc.stderr
    assert "only compare within one query" in proc.stderr


def test_help_says_clip_scores_compare_within_a_query(indexed_collection):
    out = run_cli("search", "--help", home=indexed_collection.root).stdout
    assert "only compare within one" in " ".join(out.split())
    assert "rock \\- paper" in out and "\\2:1 aspect ratio" in out  # the escapes


# ---------------------------------------------------------------- SigLIP probabilities


@pytest.fixture(scope="module")
def siglip_index(siglip, tmp_path_factory):
    root = tmp_path_factory.mktemp("siglip-query")
    images = make_distinct_images(root / "Images", [f"s{i}.jpg" for i in range(10)], seed=5)
    index = root / "index"
    proc = run_cli(
        "index", root / "Images", "--model", siglip.model, "--index", index, "-q", home=root
    )
    assert proc.returncode == 0, proc.stderr
    return root, index, images, siglip.model


def test_siglip_results_carry_their_match_probability(siglip_index):
    from clipsearch_onnx.manifest import Manifest

    root, index, _, model = siglip_index
    scores = json.loads((Path(model) / "manifest.json").read_text())["scores"]
    assert Manifest.load(model).has_probability
    results = search_json(index, root, "a red car", "-k", "10")["results"]
    for r in results:
        logit = scores["logit_scale"] * r["score"] + scores["logit_bias"]
        assert r["prob"] == pytest.approx(1 / (1 + math.exp(-logit)), abs=2e-6)
    lines = run_cli("search", "a red car", "--index", index, "--jsonl", home=root).stdout
    assert all("prob" in json.loads(line) for line in lines.splitlines())
    probs = [r["prob"] for r in results]  # in score order, as scores are
    distinct = sorted(set(probs), reverse=True)
    threshold = (distinct[0] + distinct[1]) / 2
    cut = search_json(index, root, "a red car", f"--min-prob={threshold}")
    assert [r["prob"] for r in cut["results"]] == [p for p in probs if p >= threshold]
    assert 0 < len(cut["results"]) < len(results)


# ---------------------------------------------------------------- URL images


def test_url_images_work_and_each_failure_is_one_clear_line(indexed_collection, web, tmp_path):
    c = indexed_collection
    base, pages = web
    image = c.images[7]
    pages["/x.jpg"] = ("image/jpeg", image.read_bytes())
    pages["/page.html"] = ("text/html; charset=utf-8", b"<html>hello</html>")
    pages["/garbage.jpg"] = ("image/jpeg", b"not a picture at all")
    by_url = search_json(c.index, c.root, "--image", f"{base}/x.jpg", "-k", "3")
    assert paths_of(by_url)[0] == str(image) and by_url["results"][0]["score"] > 0.99
    assert by_url["query"] == {"image": f"{base}/x.jpg"}
    term = search_json(c.index, c.root, f"{base}/x.jpg + 0.1:a dog", "-k", "3")
    assert paths_of(term)[0] == str(image)
    assert term["query"]["terms"][0] == {
        "kind": "url", "value": f"{base}/x.jpg", "weight": 1.0, "sign": 1,
    }  # fmt: skip
    for path, message in [
        ("/page.html", "not an image (the server sends text/html)"),
        ("/missing.jpg", "the server answered HTTP 404"),
        ("/huge.jpg", "over the limit of 20 MB"),
        ("/garbage.jpg", "garbage.jpg: "),
    ]:
        proc = search(c, "--image", f"{base}{path}")
        assert proc.returncode == 5, (path, proc.stderr)
        assert_one_clean_line(proc.stderr)
        assert f"{base}{path}" in proc.stderr and message in proc.stderr, proc.stderr


def test_the_decoders_pixel_limit_holds_for_url_images(indexed_collection, web, tmp_path):
    c = indexed_collection
    base, pages = web
    (new,) = make_distinct_images(tmp_path, ["new.png"], seed=99, size=(200, 100))
    pages["/new.png"] = ("image/png", new.read_bytes())
    ok = search(c, "--image", f"{base}/new.png", "--json")
    assert ok.returncode == 0, ok.stderr
    proc = run_cli(
        "search", "--image", f"{base}/new.png", "--index", c.index, home=c.root,
        env=cli_env(c.root, CLIPSEARCH_MAX_PIXELS="10000"),
    )  # fmt: skip
    assert proc.returncode == 5
    assert_one_clean_line(proc.stderr)
    assert "CLIPSEARCH_MAX_PIXELS" in proc.stderr


def test_fetch_caps_a_body_of_no_declared_length(web):
    base, _ = web
    with pytest.raises(UrlError, match="over the limit of 0.1 MB"):
        fetch(f"{base}/stream.jpg", max_bytes=100_000)
    with pytest.raises(UrlError, match="only http and https"):
        fetch("file:///etc/passwd")


# ---------------------------------------------------------------- the HTTP API


@pytest.fixture(scope="module")
def client(web_server):
    with httpx.Client(base_url=web_server.url, timeout=60) as c:
        yield c


def test_the_api_takes_the_query_syntax_with_texts_alone(client, web_collection):
    data = client.get("/api/search", params={"q": "a red car - 2:a dog", "k": 5}).json()
    cmd = ["a red car - 2:a dog", "-k", "5", "--index", str(web_collection.index), "--json"]
    local = json.loads(run_cli("search", *cmd, home=web_collection.home).stdout)
    assert paths_of(data) == paths_of(local)
    assert data["query"]["terms"] == local["query"]["terms"]
    refused = client.get("/api/search", params={"q": f"a dog + {web_collection.images[0]}"})
    assert refused.status_code == 400 and "uploads" in refused.json()["error"]
    url = client.get("/api/search", params={"q": "http://127.0.0.1:1/x.jpg"})
    assert url.status_code == 400
    bad = client.get("/api/search", params={"q": "a dog + "})
    assert bad.status_code == 400 and "nothing after" in bad.json()["error"]


def test_the_api_cuts_like_the_cli(client, web_collection):
    full = client.get("/api/search", params={"q": "a red car", "k": 6}).json()
    scores = [r["score"] for r in full["results"]]
    threshold = (scores[1] + scores[2]) / 2
    cut = client.get(
        "/api/search", params={"q": "a red car", "k": 6, "min_score": str(threshold)}
    ).json()
    assert [r["score"] for r in cut["results"]] == scores[:2]
    clip = client.get("/api/search", params={"q": "a red car", "min_prob": "0.5"})
    assert clip.status_code == 400 and "SigLIP" in clip.json()["error"]
    assert client.get("/api/search", params={"q": "x", "cutoff": "magic"}).status_code == 400
    target = web_collection.images[3]
    files = {"image": ("copy.jpg", target.read_bytes(), "image/jpeg")}
    upload = client.post("/api/search?exclude_query=1", files=files, data={"k": "3"}).json()
    assert str(target) not in paths_of(upload) and len(upload["results"]) == 3


def test_arithmetic_through_the_server_prints_what_a_local_search_prints(
    web_server, web_collection
):
    from tests.test_web_daemon import imported, search, without_took

    cwd = web_collection.photos  # ./img_0005.png is the client's file, not the server's
    args = ("a cat + 2:./img_0005.png - a dog", "--json")
    env = {"PYTHONPROFILEIMPORTTIME": "1"}
    served = search(web_collection, *args, cwd=cwd, **env)
    local = search(web_collection, *args, cwd=cwd, local=True, **env)
    assert without_took(served.stdout) == without_took(local.stdout)
    assert json.loads(served.stdout)["query"]["terms"][1]["value"] == str(cwd / "img_0005.png")
    assert "numpy" not in imported(served.stderr)  # the server answered
