"""A bounded load test on loopback: 8 threads, 400 requests of every kind at once, no errors, and
every search (by text or by uploaded image) answered exactly as it is answered alone (per-thread
SQLite connections and OpenVINO infer requests, shared ONNX Runtime sessions and FAISS index). Latency figures are `python -m bench --only web`'s job."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.factories import default_corpus

THREADS = 8
REQUESTS = 400


def _upload(client: httpx.Client, data: bytes) -> list[str]:
    response = client.post("/api/search", files={"image": ("query.jpg", data, "image/jpeg")})
    return [r["path"] for r in response.json()["results"]] if response.status_code == 200 else []


def test_concurrent_requests_are_answered_right(web_server, web_collection):
    queries = default_corpus()[:12]
    uploads = [p.read_bytes() for p in web_collection.images[:6]]
    with httpx.Client(base_url=web_server.url, timeout=60) as client:
        alone = {
            q: [r["path"] for r in client.get("/api/search", params={"q": q}).json()["results"]]
            for q in queries
        }
        alone_uploads = [_upload(client, data) for data in uploads]
        ids = [
            r["id"]
            for r in client.get("/api/search", params={"q": "x", "k": 100}).json()["results"]
        ]
    rng = random.Random(5)
    plan = [
        (rng.choice(("search", "search", "similar", "thumb", "upload")), rng.randrange(1000))
        for _ in range(REQUESTS)
    ]

    def one(step: tuple[str, int], client: httpx.Client) -> str | None:
        kind, n = step
        if kind == "search":
            q = queries[n % len(queries)]
            response = client.get("/api/search", params={"q": q})
            got = [r["path"] for r in response.json()["results"]]
            return None if got == alone[q] else f"{q!r}: {got} != {alone[q]}"
        if kind == "upload":
            got = _upload(client, uploads[n % len(uploads)])
            want = alone_uploads[n % len(uploads)]
            return None if got == want else f"upload {n % len(uploads)}: {got} != {want}"
        item = ids[n % len(ids)]
        if kind == "similar":
            first = client.get(f"/api/similar/{item}").json()["results"][0]["id"]
            return None if first == item else f"similar {item} came back with {first} first"
        response = client.get(f"/thumb/{item}")
        ok = response.status_code == 200 and response.content[:2] == b"\xff\xd8"
        return None if ok else f"thumbnail {item}: {response.status_code}"

    def worker(steps: list[tuple[str, int]]) -> list[str]:
        with httpx.Client(base_url=web_server.url, timeout=60) as client:
            return [e for step in steps if (e := one(step, client))]

    with ThreadPoolExecutor(THREADS) as pool:
        errors = [
            e for errs in pool.map(worker, [plan[i::THREADS] for i in range(THREADS)]) for e in errs
        ]
    assert errors == []
