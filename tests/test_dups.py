"""Near-duplicates (issue 14): `clipsearch dups` finds exactly the planted copies, on real files
embedded by the sensitive tiny checkpoint and on thousands of imported vectors (flat and IVF,
against brute force); `search --collapse` shows one result per group.

Cropped copies (5% off one side, 5% off all sides) are among the planted copies: the sensitive
checkpoint amplifies pixel differences by design, and a 5% crop moves its embedding as far as a
different picture (0.74-0.88 with the original, distinct pictures up to 0.92), so they are found by
the perceptual fingerprint stored at index time (clipsearch_onnx/fingerprint.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipsearch_onnx.dups import CROP_COSINE, DEFAULT_THRESHOLD, FINGERPRINT_BITS, find_groups
from clipsearch_onnx.fingerprint import candidate_pairs, hamming, of_image
from clipsearch_onnx.importer import import_shards
from clipsearch_onnx.manifest import Manifest
from clipsearch_onnx.shards import write_shard
from tests.factories_dups import half, natural_photo, reencoded, side_cropped
from tests.fixtures_collection import run_cli


@pytest.fixture(scope="module")
def sensitive_model(sensitive_clip) -> Path:
    return sensitive_clip.model


@pytest.fixture(scope="module")
def photos_with_copies(sensitive_model, tmp_path_factory):
    """A folder of 30 distinct pictures, 8 of them with copies in another folder: JPEG q=60,
    half size, 5% cut off one side (the left, the top... in turn) and 5% cut off all sides;
    indexed. Returns (index, home, the expected groups as sorted path lists)."""
    root = tmp_path_factory.mktemp("dups")
    photos = root / "photos"
    (photos / "copies").mkdir(parents=True)
    want = []
    for i in range(30):
        img = natural_photo(1000 + i)
        original = photos / f"p{i:02d}.png"
        img.save(original)
        if i % 4 == 1:
            q60 = photos / "copies" / f"p{i:02d}-q60.jpg"
            reencoded(img).save(q60, quality=60)
            small = photos / "copies" / f"p{i:02d}-half.png"
            half(img).save(small)
            side = photos / "copies" / f"p{i:02d}-side.png"
            side_cropped(img, i // 4).save(side)
            centre = photos / "copies" / f"p{i:02d}-centre.png"
            w, h = img.size
            img.crop((w // 40, h // 40, w - w // 40, h - h // 40)).save(centre)
            want.append(sorted(str(p) for p in (original, q60, small, side, centre)))
    index = root / "index"
    done = run_cli("index", photos, "--model", sensitive_model, "--index", index, home=root)
    assert done.returncode == 0, done.stderr
    return index, root, sorted(want)


def test_the_help_states_the_default_threshold():
    from clipsearch_onnx.cli import dups as cli_dups

    assert cli_dups.DEFAULT_THRESHOLD == DEFAULT_THRESHOLD  # the CLI's copy, for a light --help
    assert cli_dups.FINGERPRINT_BITS == FINGERPRINT_BITS


def test_dups_json_reports_exactly_the_copies(photos_with_copies):
    index, home, want = photos_with_copies
    proc = run_cli("dups", "--index", index, "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    groups = json.loads(proc.stdout)
    assert sorted(g["paths"] for g in groups) == want

    def cropped(p: dict) -> bool:
        return "-side" in p["a"] + p["b"] or "-centre" in p["a"] + p["b"]

    for g in groups:
        assert g["size"] == 5 and len(g["pairs"]) == 10  # every pair of the group, scored
        assert {p["a"] for p in g["pairs"]} | {p["b"] for p in g["pairs"]} == set(g["paths"])
    # crops are too far for the embedding alone (found by their fingerprints)
    assert min(p["score"] for g in groups for p in g["pairs"] if cropped(p)) < DEFAULT_THRESHOLD
    # the margin: re-encoded and resized copies score far above the threshold
    lowest = min(p["score"] for g in groups for p in g["pairs"] if not cropped(p))
    looser = json.loads(run_cli("dups", "--index", index, "--json", "--threshold", "0.5",
                                home=home).stdout)  # fmt: skip
    assert lowest > 0.99 and len(looser) < len(groups) + 3  # a lower threshold merges distinct ones
    # without the fingerprints, the embeddings alone: the same groups but most crops left out
    alone = run_cli("dups", "--index", index, "--json", "--fingerprint-bits", "0", home=home)
    kept = sorted(g["paths"] for g in json.loads(alone.stdout))
    assert len(kept) == len(want) and all(set(k) < set(w) for k, w in zip(kept, want, strict=True))
    assert sum(len(k) for k in kept) < 4 * len(want)  # 5 an original's group with every crop
    plain = run_cli("dups", "--index", index, home=home)
    assert plain.stdout.count("group ") == len(want) and want[0][0] in plain.stdout


def test_dups_among_the_images_a_filter_allows(photos_with_copies):
    index, home, want = photos_with_copies

    def groups(*args: str) -> list[list[str]]:
        proc = run_cli("dups", "--index", index, "--json", *args, home=home)
        assert proc.returncode == 0, proc.stderr
        return sorted(g["paths"] for g in json.loads(proc.stdout))

    copies = str(Path(want[0][0]).parent)
    for g in groups("--under", copies):  # the copies folder alone: never the originals
        assert all(p.startswith(copies) for p in g) and any(set(g) < set(w) for w in want)
    assert groups("--glob", "*.png") == [[p for p in g if p.endswith(".png")] for g in want]
    assert groups("--under", copies, "--glob", "*.jpg") == []


def test_search_collapse_shows_one_result_per_group(photos_with_copies):
    index, home, want = photos_with_copies
    original = want[0][-1]  # p01.png (sorted after the copies/ folder)
    args = ("search", "--image", original, "--index", index, "--json", "-k", "5")
    plain = json.loads(run_cli(*args, home=home).stdout)["results"]
    assert {r["path"] for r in plain[:3]} < set(want[0])  # q60 and half come right after it
    collapsed = json.loads(run_cli(*args, "--collapse", home=home).stdout)["results"]
    assert len(collapsed) == 5 and collapsed[0]["path"] == original
    assert collapsed[0]["copies"] == 4  # the crops too, found by their fingerprints
    assert not {r["path"] for r in collapsed[1:]} & set(want[0])
    group_of = {p: tuple(g) for g in want for p in g}
    longer = json.loads(run_cli(*args[:-1], "20", home=home).stdout)["results"]
    expect, seen = [], set()
    for r in longer:  # the plain ranking, each group at its best member only
        group = group_of.get(r["path"], (r["path"],))
        if group not in seen:
            seen.add(group)
            expect.append(r["path"])
    assert [r["path"] for r in collapsed] == expect[:5]
    # a filter counts only the copies it allows
    filtered = json.loads(run_cli(*args, "--collapse", "--glob", "*.png", home=home).stdout)[
        "results"
    ]
    assert filtered[0]["path"] == original and filtered[0]["copies"] == 3


def _spread_flips(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` (8-16) bit positions of a 64-bit fingerprint, at least two in each 16-bit quarter."""
    per = [2, 2, 2, 2]
    for q in rng.choice(4, size=n - 8):
        per[q] += 1
    return np.concatenate(
        [16 * q + rng.choice(16, size=k, replace=False) for q, k in enumerate(per)]
    )


def test_candidate_pairs_finds_every_pair_within_the_distance():
    """Every pair within the distance, however its differing bits are spread: pairs 8-14 bits
    apart with at least two in each 16-bit quarter (a 5% crop of a flat graphic measured 12:
    3, 3, 2, 4), which the multi-index hashing used before (a quarter within one bit) missed."""
    rng = np.random.default_rng(3)
    prints = rng.integers(-(2**63), 2**63 - 1, 3000, dtype=np.int64)
    for a in range(0, 200, 2):
        mask = np.bitwise_or.reduce(np.left_shift(1, _spread_flips(rng, 8 + a % 7)))
        prints[a + 1] = prints[a] ^ mask.astype(np.int64)
    ids = np.arange(len(prints)) * 3 + 7  # catalog ids need not be positions
    bits = hamming(prints[:, None], prints[None, :])
    for distance in (0, 7, FINGERPRINT_BITS, 20):
        want = {
            (int(ids[a]), int(ids[b]))
            for a, b in zip(*np.nonzero(np.triu(bits <= distance, 1)), strict=True)
        }
        got = [
            (a, b, d)
            for x, y, dist in candidate_pairs(ids, prints, distance, block=1000)
            for a, b, d in zip(x.tolist(), y.tolist(), dist.tolist(), strict=True)
        ]
        assert len(got) == len(want) and {(a, b) for a, b, _ in got} == want
        assert all(d == bits[(a - 7) // 3, (b - 7) // 3] for a, b, d in got)
    assert len(want) >= 100  # the planted pairs, and the 20-bit pairs of random ones


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("index_type", ["flat", "ivf-sq8"])
def test_groups_equal_brute_force_on_thousands_of_vectors(index_type, exported_model, tmp_path):
    """3,000 imported vectors with planted near-duplicates (pairs, chains of three whose ends
    are below the threshold, a group split across shards) and fingerprints in items.jsonl
    (pairs 1-7 bits apart, or 8-14 spread over the whole fingerprint, whose vectors score about
    0.78, linked; pairs as close whose vectors are unrelated, not linked; rows without one): the groups equal the connected
    components of all pairs at or above the threshold or within FINGERPRINT_BITS and at or
    above CROP_COSINE, computed by brute force."""
    dim = Manifest.load(exported_model).embedding_dim
    rng = np.random.default_rng(5)
    n = 3000
    base = _unit(rng.standard_normal((n, dim)))
    for a in range(0, 300, 6):  # b = a + 1 close to a; c = a + 2 close to b (a chain)
        base[a + 1] = _unit(base[a : a + 1] + 0.045 * rng.standard_normal((1, dim)))[0]
        if a % 12 == 0:
            base[a + 2] = _unit(base[a + 1 : a + 2] + 0.045 * rng.standard_normal((1, dim)))[0]
    base[2999] = _unit(base[600:601] + 0.05 * rng.standard_normal((1, dim)))[0]  # other shard
    prints = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
    for a in range(1000, 1400, 4):  # a + 1: fingerprint 1-7 bits from a's (a crop, say)
        flips = rng.choice(64, size=1 + a % 7, replace=False)
        if a % 8 == 4:  # or 8-14 bits, at least two in every 16 (a crop of a flat graphic)
            flips = _spread_flips(rng, 8 + a % 7)
        prints[a + 1] = prints[a] ^ np.bitwise_or.reduce(np.left_shift(1, flips)).astype(np.int64)
        if a < 1200:  # scoring about 0.78: linked; from 1200, unrelated vectors: not linked
            noise = 0.8 * rng.standard_normal((1, dim)) / np.sqrt(dim)
            base[a + 1] = _unit(base[a : a + 1] + noise)[0]
    sims = base @ base.T
    bits = hamming(prints[:, None], prints[None, :])
    missing = set(range(2000, 2100))  # catalogued without a fingerprint
    threshold = 0.97
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    linked = (sims >= threshold) | ((bits <= FINGERPRINT_BITS) & (sims >= CROP_COSINE))
    for a, b in zip(*np.nonzero(np.triu(linked, 1)), strict=True):
        if sims[a, b] >= threshold or not {int(a), int(b)} & missing:
            parent[find(int(a))] = find(int(b))
    components: dict[int, list[str]] = {}
    for i in range(n):
        components.setdefault(find(i), []).append(f"/v/{i:05d}.jpg")
    want = sorted(sorted(c) for c in components.values() if len(c) > 1)
    assert len(want) > 90 and any(len(c) == 3 for c in want)
    by_print = (bits <= FINGERPRINT_BITS) & (sims < threshold) & (sims >= CROP_COSINE)
    assert np.triu(by_print, 1).sum() == 50
    assert np.triu(by_print & (bits >= 8), 1).sum() >= 10  # beyond 7 bits: spread ones
    assert (sims[np.triu_indices(n, 1)] >= 0.9).sum() < 4 * len(want)  # few pairs near the line

    shards = []
    for part, rows in enumerate((range(0, 1500), range(1500, n))):
        write_shard(
            tmp_path / f"s{part}",
            base[rows.start : rows.stop],
            [
                {"path": f"/v/{i:05d}.jpg"}
                | ({} if i in missing else {"fingerprint": int(prints[i])})
                for i in rows
            ],
        )
        shards.append(tmp_path / f"s{part}")
    import_shards(tmp_path / "index", shards, Manifest.load(exported_model), index_type=index_type)
    groups = find_groups(tmp_path / "index", threshold)
    assert sorted(g.paths for g in groups) == want
    for g in groups:
        rows = [int(p[3:8]) for p in g.paths]
        for a, b, score in g.pairs:
            assert score == pytest.approx(float(base[rows[a]] @ base[rows[b]]), abs=1e-5)


def test_fingerprints_are_stored_and_separate_copies_from_distinct_pictures(photos_with_copies):
    """The catalog holds each file's fingerprint; copies (crops included) are within
    FINGERPRINT_BITS of their original, distinct pictures beyond; candidate_pairs finds exactly
    the pairs within the distance asked, every copy with its original among them."""
    from clipsearch_onnx.catalog import Catalog
    from clipsearch_onnx.layout import hold_current

    index, _home, want = photos_with_copies
    hold = hold_current(index)
    catalog = Catalog.open(hold.path, readonly=True)
    try:
        items = {Path(i.path).name: i.fingerprint for i in catalog.items()}
    finally:
        catalog.close()
        hold.release()
    assert None not in items.values() and len(items) == 30 + 4 * len(want)
    group = {n: n[:3] for n in items}
    names = sorted(items)
    prints = np.array([items[n] for n in names], dtype=np.int64)
    bits = hamming(prints[:, None], prints[None, :])
    same = np.array([[group[a] == group[b] for b in names] for a in names])
    originals = np.array(["-" not in n for n in names])
    copy_pairs = same & (originals[:, None] | originals[None, :]) & ~np.eye(len(names), dtype=bool)
    assert bits[copy_pairs].max() <= FINGERPRINT_BITS < bits[~same].min()
    ids = np.arange(len(names))
    found = {
        (a, b) for x, y, _ in candidate_pairs(ids, prints, 64) for a, b in zip(x, y, strict=True)
    }
    within = {
        n: {(a, b) for a, b in zip(*np.nonzero(np.triu(bits <= n, 1)), strict=True)}
        for n in (FINGERPRINT_BITS, 64)
    }
    assert found == within[64]  # every pair
    close = {
        (a, b)
        for x, y, _ in candidate_pairs(ids, prints, FINGERPRINT_BITS)
        for a, b in zip(x, y, strict=True)
    }
    assert close == within[FINGERPRINT_BITS]
    assert {(a, b) for a, b in zip(*np.nonzero(np.triu(copy_pairs, 1)), strict=True)} <= close
    assert of_image(Image.open(index.parent / "photos" / "p01.png")) == items["p01.png"]


def test_demo_scenes_of_other_layouts_are_not_grouped(sensitive_model, tmp_path):
    """Demo-style pictures (a coloured shape on a backdrop) that differ in position or size
    are not grouped. (Scenes of one layout that differ in shape or colour can be: their
    fingerprints are a few bits apart, see README, Duplicates; `--fingerprint-bits 0`.)"""
    import random

    from demo.data import POSITIONS, Scene, render

    folder = tmp_path / "scenes"
    folder.mkdir()
    for n, (size, position) in enumerate((s, p) for s in ("small", "large") for p in POSITIONS):
        scene = Scene("red", "circle", size, position, False)
        render(scene, random.Random(n)).save(folder / f"s{n:02d}.png")
    index = tmp_path / "index"
    assert run_cli("index", folder, "--model", sensitive_model, "--index", index,
                   home=tmp_path).returncode == 0  # fmt: skip
    proc = run_cli("dups", "--index", index, "--json", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
    assert CROP_COSINE < DEFAULT_THRESHOLD
