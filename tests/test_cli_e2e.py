"""The `clipsearch` command end to end, in subprocesses, on a Flickr8k-style folder with broken
files: what a user sees on stdout, stderr and in the exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from clipsearch_onnx.shards import write_shard
from tests.fixtures_collection import (
    assert_one_clean_line,
    catalog_paths,
    make_distinct_images,
    make_flickr,
    run_cli,
    search_json,
)


def test_index_names_each_broken_file_and_counts_the_good_ones(indexed_flickr):
    run, flickr = indexed_flickr.run, indexed_flickr.flickr
    assert "Traceback" not in run.stderr
    for path in flickr.broken:
        assert any(str(path) in line for line in run.stderr.splitlines()), path
    info = run_cli("info", "--index", indexed_flickr.index, "--json", home=indexed_flickr.home)
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["count"] == len(flickr.good)
    assert sorted(s["path"] for s in data["skipped"]) == sorted(map(str, flickr.broken))
    assert catalog_paths(indexed_flickr.index) == sorted(map(str, flickr.good))


@pytest.mark.parametrize("which", [0, 17, "café au lait.jpg", "東京タワー.png", "Straße 12.JPG"])
def test_search_by_image_finds_it_first_with_its_five_captions(indexed_flickr, which):
    flickr = indexed_flickr.flickr
    image = flickr.good[which] if isinstance(which, int) else flickr.images / which
    out = search_json(indexed_flickr.index, indexed_flickr.home, "--image", str(image))
    results = out["results"]
    assert len(results) == 10
    assert results[0]["path"] == str(image)
    assert results[0]["score"] >= 0.99
    assert results[0]["captions"] == flickr.captions[image.name]
    assert len({r["path"] for r in results}) == 10


@pytest.mark.parametrize("text", ["a dog running on the beach", "a red car", "东京 ☃ !?"])
def test_text_search_gives_ten_existing_images_best_first(indexed_flickr, text):
    out = search_json(indexed_flickr.index, indexed_flickr.home, text)
    results = out["results"]
    assert out["query"] == {"text": text}
    assert len(results) == 10
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert [r["rank"] for r in results] == list(range(1, 11))
    assert all(Path(r["path"]).is_file() for r in results)
    assert all(r["path"] in map(str, indexed_flickr.flickr.good) for r in results)


def test_plain_and_jsonl_output_agree_with_json(indexed_flickr):
    image = str(indexed_flickr.flickr.good[3])
    args = ("search", "--image", image, "--index", indexed_flickr.index, "-k", "4")
    as_json = json.loads(run_cli(*args, "--json", home=indexed_flickr.home).stdout)["results"]
    jsonl = run_cli(*args, "--jsonl", home=indexed_flickr.home).stdout.splitlines()
    assert [json.loads(line) for line in jsonl] == as_json
    table = run_cli(*args, home=indexed_flickr.home).stdout.splitlines()
    assert len(table) == 4 and all(
        line.endswith(r["path"]) for line, r in zip(table, as_json, strict=True)
    )


@pytest.mark.parametrize("case", ["missing image", "broken image", "missing index", "no query"])
def test_bad_queries_fail_with_one_clear_line(indexed_flickr, tmp_path, case):
    flickr, index = indexed_flickr.flickr, indexed_flickr.index
    args, code, words = {
        "missing image": (["--image", tmp_path / "nope.jpg", "--index", index], 5, "nope.jpg"),
        "broken image": (["--image", flickr.broken[1], "--index", index], 5, "truncated.jpg"),
        "missing index": (["a dog", "--index", tmp_path / "no-index"], 4, "no index"),
        "no query": (["--index", index], 5, "give a TEXT"),
    }[case]
    proc = run_cli("search", *args, home=indexed_flickr.home)
    assert proc.returncode == code
    assert proc.stdout == ""
    assert_one_clean_line(proc.stderr)
    assert words in proc.stderr


def test_queries_from_a_file_and_from_stdin(indexed_flickr, tmp_path):
    flickr, home = indexed_flickr.flickr, indexed_flickr.home
    image = flickr.images / "東京タワー.png"
    lines = [
        "a dog running on the beach",
        "",
        json.dumps({"image": str(image)}, ensure_ascii=False),
        json.dumps({"text": "a red car", "k": 3}),
    ]
    queries = tmp_path / "queries.txt"
    queries.write_text("\n".join(lines) + "\n", encoding="utf-8")
    index = indexed_flickr.index
    from_file = run_cli("search", "--queries", queries, "--index", index, home=home)
    from_stdin = run_cli(
        "search", "--queries", "-", "--index", index, home=home, input=queries.read_text()
    )
    for proc in (from_file, from_stdin):
        assert proc.returncode == 0, proc.stderr
        answers = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [a["line"] for a in answers] == [1, 3, 4]
        assert [a["query"] for a in answers] == [
            {"text": "a dog running on the beach"},
            {"image": str(image)},
            {"text": "a red car"},
        ]
        assert [len(a["results"]) for a in answers] == [10, 10, 3]
        assert answers[1]["results"][0]["path"] == str(image)
    strip = [{**a, "took_ms": 0} for a in map(json.loads, from_file.stdout.splitlines())]
    assert strip == [{**a, "took_ms": 0} for a in map(json.loads, from_stdin.stdout.splitlines())]


def test_each_bad_query_line_gets_an_error_result_in_its_place(indexed_flickr, tmp_path):
    flickr, home, index = indexed_flickr.flickr, indexed_flickr.home, indexed_flickr.index
    good_image = str(flickr.good[3])
    lines = {
        1: "a dog running on the beach",
        2: '{"text": "a cat"',  # bad JSON
        3: "{}",
        4: json.dumps({"image": str(tmp_path / "nope.jpg")}),
        5: json.dumps({"text": "a cat", "k": 0}),
        6: json.dumps({"text": "a cat", "k": "3"}),
        7: json.dumps({"txt": "typo"}),
        9: json.dumps({"image": good_image, "k": 2}),  # line 8 is blank
        10: json.dumps({"image": str(flickr.broken[1])}),
        11: json.dumps({"text": 5}),
    }
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(f"{lines.get(n, '')}\n" for n in range(1, 12)), encoding="utf-8")
    proc = run_cli("search", "--queries", queries, "--index", index, home=home)
    assert proc.returncode == 6
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [a["line"] for a in answers] == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11]
    good = {a["line"]: a for a in answers if "error" not in a}
    assert sorted(good) == [1, 9]
    assert len(good[1]["results"]) == 10
    assert [r["path"] for r in good[9]["results"]][:1] == [good_image]
    assert len(good[9]["results"]) == 2
    errors = {a["line"]: a["error"] for a in answers if "error" in a}
    assert "bad JSON" in errors[2]
    assert "text" in errors[3] and "image" in errors[3]
    assert "nope.jpg" in errors[4]
    assert "'k'" in errors[5] and "'k'" in errors[6]
    assert "'txt'" in errors[7] and "text, image, k" in errors[7]
    assert "truncated.jpg" in errors[10]
    assert "must be a string" in errors[11]
    assert all(set(a) == {"line", "error"} for a in answers if "error" in a)
    assert proc.stderr.splitlines() == [
        "clipsearch: 8 of 10 queries failed (line 2, 3, 4, 5, 6, 7, 10, 11); "
        'each has an {"line": N, "error": ...} result in the output'
    ]


def test_add_delete_modify_then_reindex(exported_model, tmp_path):
    """Issue 3: add 4, delete 3, modify 1, index again."""
    flickr = make_flickr(tmp_path, seed=1)
    home, index = tmp_path, tmp_path / "index"
    base = ("--model", exported_model, "--index", index, "--captions", flickr.captions_file)
    first = run_cli("index", flickr.images, *base, home=home)
    assert first.returncode == 0, first.stderr

    added = make_distinct_images(
        flickr.images, ["new 1.jpg", "new 2.png", "sub/new 3.jpg", "ñew 4.webp"], seed=99
    )
    deleted = flickr.good[5:8]
    for path in deleted:
        path.unlink()
    modified = flickr.good[10]
    make_distinct_images(flickr.images, [modified.name], seed=1234)
    second = run_cli("index", flickr.images, *base, home=home)
    assert second.returncode == 0, second.stderr
    assert "4 added, 1 changed, 0 moved, 3 removed" in second.stderr

    expected = sorted(str(p) for p in [*flickr.good, *added] if p not in deleted)
    assert catalog_paths(index) == expected  # right count, no duplicates, deleted ones gone
    info = json.loads(run_cli("info", "--index", index, "--json", home=home).stdout)
    assert info["count"] == len(flickr.good) + 4 - 3
    queries = [{"image": str(p)} for p in [*added, modified]] + [{"text": "a dog", "k": 50}]
    proc = run_cli(
        "search", "--queries", "-", "--index", index, home=home,
        input="\n".join(json.dumps(q) for q in queries),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(line)["results"] for line in proc.stdout.splitlines()]
    for query, results in zip(queries, answers, strict=True):
        paths = [r["path"] for r in results]
        assert len(set(paths)) == len(paths)
        assert not {str(p) for p in deleted} & set(paths)
        if "image" in query:
            assert paths[0] == query["image"] and results[0]["score"] >= 0.99
        else:
            assert sorted(paths) == expected


def test_index_refuses_another_model_or_precision(indexed_flickr, tmp_path):
    home, index = indexed_flickr.home, tmp_path / "index"
    shutil.copytree(indexed_flickr.index, index)
    other = tmp_path / "other-model"
    shutil.copytree(indexed_flickr.model, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["created"] = "another export"  # same towers, but another model as far as we know
    (other / "manifest.json").write_text(json.dumps(manifest))
    images = indexed_flickr.flickr.images

    cases = [
        (["index", images, "--model", other], 3, "another model"),
        (["index", images, "--precision", "fp32"], 3, "--precision int8"),
        (["search", "a dog", "--model", other], 3, "another model"),
        (["search", "a dog", "--precision", "fp32"], 3, "int8"),
    ]
    for args, code, words in cases:
        proc = run_cli(*args, "--index", index, home=home)
        assert proc.returncode == code, (args, proc.stderr)
        assert_one_clean_line(proc.stderr)
        assert words in proc.stderr, proc.stderr
    assert catalog_paths(index) == catalog_paths(indexed_flickr.index)  # nothing was mixed in


def test_import_refuses_a_shard_of_another_dimension(indexed_flickr, tmp_path):
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((5, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    shard = tmp_path / "shard16"
    write_shard(shard, emb, [{"path": f"/elsewhere/{i}.jpg"} for i in range(5)])
    index = tmp_path / "index"
    shutil.copytree(indexed_flickr.index, index)
    proc = run_cli("import", shard, "--index", index, home=indexed_flickr.home)
    assert proc.returncode == 5
    assert_one_clean_line(proc.stderr)
    assert "dimension 16" in proc.stderr and "24" in proc.stderr
    assert catalog_paths(index) == catalog_paths(indexed_flickr.index)
