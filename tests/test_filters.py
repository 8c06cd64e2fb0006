"""Filters run inside the vector search (issue 14): a folder holding 12 of 8,000 catalogued
images gives exactly those 12 for any query with -k 20, on the numpy flat layout and on IVF,
whether the selection is scored exactly from the shards or through faiss's ID selector; dates
(EXIF, else mtime), sizes and globs select in SQL."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipsearch_onnx import filtered, filters
from clipsearch_onnx.errors import InputError
from clipsearch_onnx.filters import Filter
from clipsearch_onnx.importer import import_shards
from clipsearch_onnx.manifest import Manifest
from clipsearch_onnx.search import open_searcher
from clipsearch_onnx.settings import Settings
from clipsearch_onnx.shards import write_shard

N, CHOSEN = 8000, 12


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module", params=["flat", "ivf-sq8"])
def collection(request, exported_model, tmp_path_factory):
    """8,000 catalogued vectors (imported shards): 12 in /p/trip/, the rest elsewhere, among
    them folders whose names start like it (/p/trip2/, /p/trip.old/). Each image has a date
    (EXIF for even rows, else only mtime), a size, and a .jpg or .png name."""
    root = tmp_path_factory.mktemp(f"filters-{request.param}")
    dim = Manifest.load(exported_model).embedding_dim
    rng = np.random.default_rng(14)
    centres = rng.standard_normal((16, dim))
    base = _unit(centres[rng.integers(0, 16, N)] + 0.4 * rng.standard_normal((N, dim)))
    chosen = rng.choice(N, CHOSEN, replace=False)
    items = []
    for i in range(N):
        folder = "/p/trip" if i in chosen else ("/p/trip2", "/p/trip.old", "/p/home")[i % 3]
        item = {
            "path": f"{folder}/{i:05d}.{'png' if i % 4 == 1 else 'jpg'}",
            "mtime_ns": (1_600_000_000 + 3600 * i) * 10**9,
            "width": 100 + i % 50,
            "height": 80 + i % 30,
        }
        if i % 2 == 0:
            item["taken"] = f"20{10 + i % 10:02d}-0{1 + i % 9}-15T12:00:00"
        items.append(item)
    shards = []
    for part in range(2):
        rows = slice(part * N // 2, (part + 1) * N // 2)
        write_shard(root / f"shard{part}", base[rows], items[rows])
        shards.append(root / f"shard{part}")
    index_dir = root / "index"
    import_shards(index_dir, shards, Manifest.load(exported_model), index_type=request.param)
    searcher = open_searcher(Settings(index_dir=index_dir))
    assert searcher.vectors.meta["type"] == request.param
    yield searcher, base, sorted(items[i]["path"] for i in chosen), items
    searcher.close()


@pytest.mark.parametrize("exact_below", [filtered.EXACT_BELOW, 0], ids=["exact", "selector"])
def test_under_returns_exactly_the_12_of_8000(collection, exact_below, monkeypatch):
    searcher, base, want, _ = collection
    monkeypatch.setattr(filtered, "EXACT_BELOW", exact_below)
    where = Filter.parse(under="/p/trip")
    rng = np.random.default_rng(0)
    queries = np.concatenate(
        [base[rng.integers(0, N, 6)], _unit(rng.standard_normal((4, base.shape[1])))]
    )
    for q in queries:
        unfiltered = {r.path for r in searcher.search_vector(q, 20)}
        assert len(unfiltered & set(want)) < CHOSEN  # the filter has work to do
        results = searcher.search_vector(q, 20, where=where)
        assert sorted(r.path for r in results) == want
        scores = [r.score for r in results]
        assert scores == sorted(scores, reverse=True)
        rows = [int(r.path[-9:-4]) for r in results]
        np.testing.assert_allclose(scores, base[rows] @ q, atol=1e-5)  # exact scores
    # a trailing slash, and k below the count: the best 5 of the 12
    top5 = searcher.search_vector(queries[0], 5, where=Filter.parse(under="/p/trip/"))
    best = sorted(want, key=lambda p: -float(base[int(p[-9:-4])] @ queries[0]))[:5]
    assert [r.path for r in top5] == best


@pytest.mark.parametrize("strategy", ["exact", "post-filter", "sampled", "selector"])
def test_a_broad_filter_gives_the_brute_force_top_k(collection, strategy, monkeypatch):
    """75% of the images allowed (*.jpg): each way of searching among them (see
    filtered.search) finds the top 20 of brute force over the allowed vectors."""
    searcher, base, _, items = collection
    if strategy != "exact":
        monkeypatch.setattr(filtered, "EXACT_BELOW", 0)
    if strategy == "selector":
        monkeypatch.setattr(filtered, "POST_FILTER_FROM", 2.0)
    if strategy == "sampled":  # the share estimated on a sample of ids, as for a large index
        monkeypatch.setattr(filtered, "SAMPLE_ABOVE", 0)
    rows = np.array([i for i, it in enumerate(items) if it["path"].endswith(".jpg")])
    rng = np.random.default_rng(1)
    recalls = []
    for q in base[rng.integers(0, N, 8)]:
        got = [
            int(r.path[-9:-4]) for r in searcher.search_vector(q, 20, where=Filter(glob="*.jpg"))
        ]
        want = rows[np.argsort(-(base[rows] @ q), kind="stable")[:20]]
        assert all(items[i]["path"].endswith(".jpg") for i in got) and len(got) == 20
        recalls.append(len(set(got) & set(want.tolist())) / 20)
    exact = searcher.vectors.meta["type"] == "flat" or strategy == "exact"
    assert np.mean(recalls) == 1.0 if exact else np.mean(recalls) >= 0.9


def _want(items, keep):
    return sorted(it["path"] for it in items if keep(it))


def _date(item) -> str:
    import datetime as dt

    if "taken" in item:
        return item["taken"]
    return dt.datetime.fromtimestamp(item["mtime_ns"] // 10**9).strftime("%Y-%m-%dT%H:%M:%S")


def test_dates_sizes_and_globs_select_in_sql(collection):
    searcher, _, _, items = collection
    catalog = searcher.catalog

    def chosen(**kw) -> list[str]:
        ids = filters.select(catalog, Filter.parse(**kw)).ids
        return sorted(it.path for it in catalog.by_ids(ids.tolist()).values())

    # EXIF dates where there are, the mtime (local time) elsewhere
    got = chosen(after="2012-01-01", before="2013-12-31")
    assert got == _want(items, lambda it: "2012-01-01" <= _date(it) < "2014-01-01")
    assert any("taken" in it for it in items if it["path"] in got)
    got = chosen(after="2020-09-14T00:00", before="2020-09-20")
    assert got and got == _want(items, lambda it: "2020-09-14" <= _date(it) < "2020-09-21")
    assert all("taken" not in it for it in items if it["path"] in got)  # mtime alone
    assert chosen(min_size="148x108") == _want(
        items, lambda it: it["width"] >= 148 and it["height"] >= 108
    )
    assert chosen(glob="*.png", under="/p/home") == _want(
        items, lambda it: it["path"].startswith("/p/home/") and it["path"].endswith(".png")
    )
    assert chosen(glob="trip2/000*") == _want(
        items, lambda it: it["path"].startswith("/p/trip2/000")
    )


def test_sort_by_date_and_path(collection):
    searcher, base, _, items = collection
    by_path = {it["path"]: it for it in items}
    q = base[7]
    results = searcher.search_vector(q, 15, where=Filter.parse(sort="date"))
    assert {r.path for r in results} == {r.path for r in searcher.search_vector(q, 15)}
    assert [r.date for r in results] == sorted(_date(by_path[r.path]) for r in results)
    assert [r.rank for r in results] == list(range(1, 16))
    results = searcher.search_vector(q, 15, where=Filter.parse(sort="path"))
    assert [r.path for r in results] == sorted(r.path for r in results)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"after": "2020-13-01"}, "--after takes a date"),
        ({"before": "yesterday"}, "--before takes a date"),
        ({"after": "2021-01-01", "before": "2020-01-01"}, "nothing can match"),
        ({"min_size": "800"}, "--min-size takes WIDTHxHEIGHT"),
        ({"under": " "}, "--under needs a folder"),
        ({"sort": "size"}, "--sort takes"),
    ],
)
def test_bad_filters_are_one_clear_error(kw, message):
    with pytest.raises(InputError, match=message):
        Filter.parse(**kw)


def test_filter_in_the_response(collection):
    searcher, _, want, _ = collection
    vector = searcher.vector_of(1)
    assert vector is not None
    q = json.loads(
        json.dumps(searcher.similar(1, 3, where=Filter.parse(under="/p/trip")).to_json())
    )
    assert q["query"]["filter"] == {"under": "/p/trip"}
    assert {r["path"] for r in q["results"]} <= set(want)


def test_cli_filters_on_exif_dates_and_mtimes(tmp_path, exported_model):
    """`clipsearch search` over real files: EXIF DateTimeOriginal where a JPEG has one, else the
    mtime set by os.utime; --sort date orders by that date, --under and --min-size narrow."""
    import datetime as dt
    import os

    from tests.fixtures_collection import make_distinct_images, run_cli
    from tests.test_streaming_writes import exif_jpeg

    photos = tmp_path / "photos"
    dated = {
        "2019/a.jpg": "2019:07:04 10:00:00",
        "2021/b.jpg": "2021:02:01 08:30:00",
        "2021/c.jpg": "2021:12:31 23:59:00",
    }
    for name, taken in dated.items():
        exif_jpeg(photos / name, (96, 64), taken)
        os.utime(photos / name, (0, dt.datetime(2024, 1, 1).timestamp()))  # EXIF wins over it
    mtimes = {"old/d.png": dt.datetime(2018, 5, 5, 12), "new/e.png": dt.datetime(2021, 6, 1, 12)}
    for name, when in mtimes.items():
        [path] = make_distinct_images(photos / os.path.dirname(name), [os.path.basename(name)])
        os.utime(path, (when.timestamp(), when.timestamp()))
    index = tmp_path / "index"
    done = run_cli("index", photos, "--model", exported_model, "--index", index, home=tmp_path)
    assert done.returncode == 0, done.stderr

    def search(*args: str) -> list[dict]:
        proc = run_cli("search", "a photo", "--index", index, "--json", *args, home=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["results"]

    def names(results: list[dict]) -> list[str]:
        return [os.path.relpath(r["path"], photos) for r in results]

    assert sorted(names(search("--after", "2021-01-01", "--before", "2021-12-31"))) == [
        "2021/b.jpg", "2021/c.jpg", "new/e.png"
    ]  # fmt: skip
    assert names(search("--before", "2019-07-04T10:00")) == ["old/d.png"]
    got = search("--sort", "date")
    assert names(got) == ["old/d.png", "2019/a.jpg", "2021/b.jpg", "new/e.png", "2021/c.jpg"]
    assert got[1]["date"] == "2019-07-04T10:00:00" and got[0]["date"] == "2018-05-05T12:00:00"
    assert sorted(names(search("--under", str(photos / "2021")))) == ["2021/b.jpg", "2021/c.jpg"]
    assert sorted(names(search("--under", "photos/2021/"))) == ["2021/b.jpg", "2021/c.jpg"]  # cwd
    assert sorted(names(search("--min-size", "90x60", "--glob", "*.jpg"))) == sorted(dated)
    # --sort orders the results kept: the same two best as without it, by date
    query = ("--image", str(photos / "2019/a.jpg"), "--exclude-query", "-k", "2")
    best = search(*query)
    by_date = search(*query, "--sort", "date")
    assert sorted(names(by_date)) == sorted(names(best)) and "2019/a.jpg" not in names(best)
    assert [r["date"] for r in by_date] == sorted(r["date"] for r in by_date)
    proc = run_cli("search", "x", "--index", index, "--after", "June", home=tmp_path)
    assert proc.returncode == 5 and proc.stderr.startswith("clipsearch: error: --after takes")


def test_the_table_shows_dates_and_hidden_copies_after_the_path():
    from clipsearch_onnx.cli.results import format_table

    data = {
        "query": {"text": "x", "filter": {"sort": "date", "collapse": True}},
        "results": [
            {"rank": 1, "score": 0.5, "path": "/a/very/long/folder/name/IMG_0001.jpg",
             "captions": [], "date": "2021-07-14T09:30:00", "copies": 2},
            {"rank": 2, "score": 0.4, "path": "/b/IMG_0002.jpg", "captions": [], "copies": 1},
            {"rank": 3, "score": 0.3, "path": "/b/IMG_0003.jpg", "captions": []},
        ],
    }  # fmt: skip
    for width in (None, 60):
        lines = format_table(data, width).splitlines()[-3:]
        assert lines[0].endswith("IMG_0001.jpg  (2021-07-14 09:30:00, +2 copies)"), lines
        assert lines[1].endswith("IMG_0002.jpg  (+1 copy)") and lines[2].endswith("IMG_0003.jpg")
        assert width is None or all(len(line) <= width for line in lines)
    data["results"] = []
    assert "no image passes the filters" in format_table(data)
