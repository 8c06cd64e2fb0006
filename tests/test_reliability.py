"""Issue 7: odd and broken inputs, kill -9 at any moment, searches while indexing, damaged index
files, failed writes, a soak of random queries, and the untrusted-input rules."""

from __future__ import annotations

import errno
import io
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import clipsearch_onnx
from clipsearch_onnx import cli
from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.errors import IndexCorrupt
from clipsearch_onnx.indexer import Indexer
from clipsearch_onnx.manifest import Manifest
from clipsearch_onnx.search import open_searcher
from clipsearch_onnx.settings import Settings
from tests.fixtures_collection import (
    SLOW_RUN,
    assert_one_clean_line,
    build_of,
    catalog_paths,
    kill_after_shards,
    make_distinct_images,
    mosaic,
    run_cli,
    start_cli,
)

# -- odd but valid, and invalid files ----------------------------------------------------------


def make_odd_folder(folder: Path, seed: int = 0) -> tuple[list[Path], dict[Path, str]]:
    """Valid files in unusual shapes, and invalid ones with a word their message must contain."""
    rng = np.random.default_rng(seed)
    valid: list[Path] = []

    def add(name: str, save) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        save(path)
        valid.append(path)

    grey16 = np.asarray(mosaic(rng).convert("L"), np.uint16) * 257
    add("sixteen bit.png", lambda p: Image.fromarray(grey16).save(p))
    palette = mosaic(rng).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    add("palette transparent.png", lambda p: palette.save(p, transparency=0))
    frames = [mosaic(rng).convert("P") for _ in range(3)]
    add("animated.gif", lambda p: frames[0].save(p, save_all=True, append_images=frames[1:]))
    rgba = np.asarray(mosaic(rng).convert("RGBA")).copy()
    rgba[:, :20, 3] = 0
    add("alpha.png", lambda p: Image.fromarray(rgba, "RGBA").save(p))
    add("photo.webp", lambda p: mosaic(rng).save(p, "WEBP", quality=90))
    add("scan.tiff", lambda p: mosaic(rng).save(p, "TIFF"))
    add("old.bmp", lambda p: mosaic(rng).save(p, "BMP"))
    add("print cmyk.jpg", lambda p: mosaic(rng).convert("CMYK").save(p, "JPEG", quality=95))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    add("rotated.jpg", lambda p: mosaic(rng).save(p, "JPEG", quality=95, exif=exif))
    add("tiny.png", lambda p: mosaic(rng, (8, 6)).save(p))
    add("panorama.jpg", lambda p: mosaic(rng, (3000, 40)).save(p, quality=95))
    add("UPPER.PNG", lambda p: mosaic(rng).save(p, "PNG"))
    add("SHOUT.JPEG", lambda p: mosaic(rng).save(p, "JPEG", quality=95))
    add("ünïcödé ørn.jpg", lambda p: mosaic(rng).save(p, "JPEG", quality=95))
    add("写真 フォト/猫 1.png", lambda p: mosaic(rng).save(p, "PNG"))

    invalid: dict[Path, str] = {}
    png = io.BytesIO()
    mosaic(rng).save(png, "PNG")
    data = png.getvalue()
    (folder / "empty.jpg").write_bytes(b"")
    invalid[folder / "empty.jpg"] = "empty"
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    invalid[folder / "truncated.png"] = "truncated"
    (folder / "not an image.jpg").write_text("plain text\n", encoding="utf-8")
    invalid[folder / "not an image.jpg"] = "not an image"
    # IHDR's checksum (bytes 29-32) flipped
    (folder / "bad crc.png").write_bytes(data[:29] + bytes([data[29] ^ 0xFF]) + data[30:])
    invalid[folder / "bad crc.png"] = ""
    idat = data.index(b"IDAT")
    crc = idat + 4 + int.from_bytes(data[idat - 4 : idat], "big")
    for name, at in (("bad idat crc.png", crc), ("bad idat data.png", (idat + crc) // 2)):
        (folder / name).write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])
        invalid[folder / name] = ""
    Image.new("1", (10_000, 10_000)).save(folder / "bomb.png")  # 100 MP, Pillow's limit 89.5 MP
    invalid[folder / "bomb.png"] = "89,478,485 pixels"
    os.symlink(folder / "no such file.jpg", folder / "dangling.jpg")
    invalid[folder / "dangling.jpg"] = "dangling symlink"
    (folder / "a folder.jpg").mkdir()
    invalid[folder / "a folder.jpg"] = "directory"
    return valid, invalid


def test_odd_but_valid_files_are_indexed_and_invalid_ones_named(tmp_path, exported_model):
    photos = tmp_path / "odd photos"
    valid, invalid = make_odd_folder(photos)
    index = tmp_path / "index"
    run = run_cli("index", photos, "--model", exported_model, "--index", index, home=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    skipped = {
        line.split(": ", 1)[0].removeprefix("skipped "): line
        for line in run.stderr.splitlines()
        if line.startswith("skipped ")
    }
    assert sorted(skipped) == sorted(map(str, invalid))
    for path, words in invalid.items():
        assert words in skipped[str(path)], skipped[str(path)]
    assert "CLIPSEARCH_MAX_PIXELS" in skipped[str(photos / "bomb.png")]
    assert catalog_paths(index) == sorted(map(str, valid))

    queries = [{"image": str(p)} for p in valid]
    proc = run_cli(
        "search", "--queries", "-", "--index", index, "-k", "3", home=tmp_path,
        input="\n".join(json.dumps(q, ensure_ascii=False) for q in queries),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for query, line in zip(queries, proc.stdout.splitlines(), strict=True):
        top = json.loads(line)["results"][0]
        assert top["path"] == query["image"] and top["score"] >= 0.99

    # the pixel limit is a setting: raised, the big picture is indexed
    env_run = run_cli(
        "index", photos, "--index", index, home=tmp_path,
        env={**os.environ, "CLIPSEARCH_HOME": str(tmp_path), "CLIPSEARCH_MAX_PIXELS": "0"},
    )  # fmt: skip
    assert env_run.returncode == 0, env_run.stderr
    assert str(photos / "bomb.png") in catalog_paths(index)


def test_png_with_a_bad_idat_checksum_is_refused(tmp_path):
    from clipsearch_onnx.decode import load_image
    from clipsearch_onnx.errors import ImageError

    png = io.BytesIO()
    mosaic(np.random.default_rng(0)).save(png, "PNG")
    data = bytearray(png.getvalue())
    idat = data.index(b"IDAT")
    length = int.from_bytes(data[idat - 4 : idat], "big")
    data[idat + 4 + length] ^= 0xFF  # the first byte of the chunk's CRC; the data is intact
    path = tmp_path / "bad idat.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError):
        load_image(path)


# -- kill -9 and concurrent searches -----------------------------------------------------------


def check_answers(proc, queries, allowed: set[str], must_find: set[str]) -> None:
    """A search run after a crash: it answers correctly or fails with one clear line."""
    assert proc.returncode >= 0, "search died by a signal"
    assert "Traceback" not in proc.stderr
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    if proc.returncode != 0:
        assert proc.returncode == 4, proc.stderr
        assert_one_clean_line(proc.stderr)
    for query, answer in zip(queries, answers, strict=False):
        paths = [r["path"] for r in answer["results"]]
        assert set(paths) <= allowed and len(set(paths)) == len(paths)
        if query["image"] in must_find:
            assert paths[0] == query["image"]


@pytest.mark.slow
def test_four_kills_then_a_full_run(tmp_path, exported_model):
    """Index 60 pictures, then change the folder (add 240, delete 6) and kill -9 the next run
    four times, at deterministic points and one seeded random one, searching after each kill."""
    photos = tmp_path / "photos"
    first = make_distinct_images(photos, [f"first {i:02d}.png" for i in range(60)], seed=11)
    index = tmp_path / "index"
    common = ("--index", index, "--precision", "fp32", "--quiet")
    done = run_cli("index", photos, "--model", exported_model, *common, home=tmp_path)
    assert done.returncode == 0, done.stderr
    names = [f"later/{i:03d}.jpg" for i in range(240)]
    later = make_distinct_images(photos, names, seed=12)
    deleted = first[:6]
    for path in deleted:
        path.unlink()
    everything = {str(p) for p in [*first, *later]}
    kept = everything - {str(p) for p in deleted}
    queries = [{"image": str(p)} for p in [*first[6:10], *later[:2], *later[-2:]]]
    stdin = "\n".join(json.dumps(q) for q in queries)

    rng = random.Random(2024)
    kill_points = [("shards", 4), ("shards", 20), ("shards", 38), ("seconds", rng.uniform(0.5, 2))]
    for kind, when in kill_points:
        proc = start_cli("index", photos, *common, *SLOW_RUN, home=tmp_path)
        if kind == "shards":
            assert kill_after_shards(proc, index, when), f"finished before {when} shards"
        else:
            time.sleep(when)
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=120)
        search = run_cli("search", "--queries", "-", "--index", index, home=tmp_path, input=stdin)
        check_answers(search, queries, everything, {q["image"] for q in queries[:4]})

    final = run_cli("index", photos, *common[:-1], home=tmp_path)
    assert final.returncode == 0, final.stderr
    assert catalog_paths(index) == sorted(kept)  # all there, none twice, deleted ones gone
    searcher = open_searcher(Settings(index_dir=index))
    assert searcher.count == len(kept)
    for path in sorted(kept):
        top = searcher.search(image=path, k=1).results[0]
        assert top.path == path, path
    searcher.close()


@pytest.mark.slow
def test_searches_in_a_loop_while_indexing(tmp_path, exported_model):
    photos = tmp_path / "photos"
    old = make_distinct_images(photos, [f"old {i:02d}.jpg" for i in range(50)], seed=21)
    index = tmp_path / "index"
    Indexer(index, Encoder(Manifest.load(exported_model))).run(photos)
    new = make_distinct_images(photos, [f"new {i:03d}.png" for i in range(150)], seed=22)
    for path in old[:5]:
        path.unlink()
    make_distinct_images(photos, [p.name for p in old[5:8]], seed=23)  # changed content
    allowed = {str(p) for p in [*old, *new]}

    run = start_cli("index", photos, "--index", index, *SLOW_RUN, home=tmp_path)
    cli_search = start_cli("search", "a dog", "--index", index, "--json", home=tmp_path)
    rounds = 0
    rng = random.Random(0)
    while run.poll() is None or rounds < 3:
        searcher = open_searcher(Settings(index_dir=index))
        try:
            for _ in range(5):
                image = rng.choice(old[8:])
                results = searcher.search(image=image, k=10).results
                assert results[0].path == str(image)
                paths = [r.path for r in searcher.search("a red car", k=30).results]
                assert set(paths) <= allowed and len(set(paths)) == len(paths)
        finally:
            searcher.close()
        rounds += 1
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert "Traceback" not in err
    out, err = cli_search.communicate(timeout=300)
    assert cli_search.returncode == 0, err
    assert len(json.loads(out)["results"]) == 10
    assert catalog_paths(index) == sorted(str(p) for p in [*old[5:], *new])


# -- damaged index files -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def index_with_wal(tmp_path_factory, exported_model):
    """An index whose latest run is still in catalog.sqlite-wal: a reader (a TUI, say) had the
    catalog open while the run finished, so SQLite could not fold the log back in."""
    root = tmp_path_factory.mktemp("wal")
    photos = root / "photos"
    paths = make_distinct_images(photos, [f"w{i:02d}.jpg" for i in range(16)], seed=31)
    live = root / "live"
    encoder = Encoder(Manifest.load(exported_model))
    Indexer(live, encoder).run(photos)
    paths += make_distinct_images(photos, [f"x{i:02d}.png" for i in range(16)], seed=32)
    reader = sqlite3.connect(build_of(live) / "catalog.sqlite")
    reader.execute("SELECT count(*) FROM images").fetchone()
    Indexer(live, encoder, checkpoint=8, batch_size=8).run(photos)
    snapshot = root / "snapshot"
    shutil.copytree(live, snapshot)
    reader.close()
    assert (build_of(snapshot) / "catalog.sqlite-wal").stat().st_size > 0
    return snapshot, paths


DAMAGE = [
    *[(name, keep) for name in ("catalog.sqlite", "catalog.sqlite-wal") for keep in (0.5, 0)],
    ("catalog.sqlite-shm", 0.5),
    *[
        (name, keep)
        for name in ("index.json", "vectors/seg-*/lists.ivfdata", "vectors/layout-*/shell.faiss")
        for keep in (0.5, 0)
    ],
    ("vectors/seg-*/entries.npy", 0.5),
    ("vectors/seg-*/sizes.npy", 0),
    ("shards/*/embeddings.npy", 0.5),
    ("shards/*/items.jsonl", 0),
]


@pytest.mark.slow
@pytest.mark.parametrize("target, keep", DAMAGE)
def test_truncated_index_files_never_give_wrong_answers(index_with_wal, tmp_path, target, keep):
    snapshot, paths = index_with_wal
    index = tmp_path / "index"
    shutil.copytree(snapshot, index)
    victims = sorted(build_of(index).glob(target))
    assert victims, target
    for victim in victims:
        os.truncate(victim, int(victim.stat().st_size * keep))
    queries = [{"image": str(p)} for p in paths[::5]] + [{"text": "a red car", "k": 32}]
    proc = run_cli(
        "search", "--queries", "-", "--index", index, "-k", "5", home=tmp_path,
        input="\n".join(json.dumps(q) for q in queries),
    )  # fmt: skip
    assert proc.returncode >= 0, "search died by a signal"
    assert "Traceback" not in proc.stderr
    answers = [json.loads(line)["results"] for line in proc.stdout.splitlines()]
    if proc.returncode == 0:
        assert len(answers) == len(queries)
    else:
        assert proc.returncode == 4, proc.stderr
        assert_one_clean_line(proc.stderr)
        assert "rebuild" in proc.stderr or "damaged" in proc.stderr
    for query, results in zip(queries, answers, strict=False):
        got = [r["path"] for r in results]
        if "image" in query:
            assert got[0] == query["image"]
        else:
            assert sorted(got) == sorted(map(str, paths))  # all 32, each once


@pytest.mark.slow
def test_catalog_damage_beyond_what_opening_reads_is_named_by_the_read(
    index_with_wal, tmp_path, monkeypatch
):
    """Opening reads a bounded part of the catalog (CHECK_ROWS rows: counting 10M took 4 s of a
    cold query): damage it did not reach is named as damage by the search that meets it."""
    from clipsearch_onnx import catalog

    snapshot, _ = index_with_wal
    index = tmp_path / "index"
    shutil.copytree(snapshot, index)
    db = build_of(index) / "catalog.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'images'").fetchone()
    (page,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with open(db, "r+b") as fh:  # the images table's root page overwritten
        fh.seek((root - 1) * page)
        fh.write(b"\xff" * page)
    monkeypatch.setattr(catalog, "CHECK_ROWS", 0)
    searcher = open_searcher(Settings(index_dir=index))  # opening did not read the table
    query = np.zeros(int(searcher.vectors.meta["dim"]), np.float32)
    query[0] = 1
    with pytest.raises(IndexCorrupt, match="damaged"):
        searcher.search_vector(query, 5)
    searcher.close()


def test_a_damaged_shard_stops_the_next_run_cleanly(index_with_wal, tmp_path, exported_model):
    snapshot, paths = index_with_wal
    index = tmp_path / "index"
    shutil.copytree(snapshot, index)
    for shard in build_of(index).glob("shards/*/embeddings.npy"):
        os.truncate(shard, 100)
    before = (build_of(index) / "index.json").read_bytes()
    with pytest.raises(IndexCorrupt, match="rebuild"):
        Indexer(index, Encoder(Manifest.load(exported_model))).run(paths[0].parent)
    assert (build_of(index) / "index.json").read_bytes() == before


# -- failed writes -----------------------------------------------------------------------------


def failing_replace(predicate, real=os.replace):
    """`real` (os.replace or os.rename), failing with ENOSPC for destinations `predicate` picks."""

    def replace(src, dst, *args, **kwargs):
        if predicate(Path(dst)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real(src, dst, *args, **kwargs)

    return replace


@pytest.mark.parametrize(
    "what",
    ["shard", "vectors", "index.json"],
)
def test_a_failed_write_keeps_the_previous_index_and_says_so(
    tmp_path, exported_model, monkeypatch, capsys, what
):
    photos = tmp_path / "photos"
    old = make_distinct_images(photos, [f"o{i:02d}.jpg" for i in range(12)], seed=41)
    index = tmp_path / "index"
    monkeypatch.setenv("CLIPSEARCH_HOME", str(tmp_path))
    args = ["index", str(photos), "--index", str(index), "--quiet"]
    assert cli.main([*args, "--model", str(exported_model)]) == 0
    published = (build_of(index) / "index.json").read_bytes()
    new = make_distinct_images(photos, [f"n{i:02d}.jpg" for i in range(12)], seed=42)
    old[0].unlink()
    predicate = {
        "shard": lambda dst: dst.parent.name == "shards",
        "vectors": lambda dst: dst.parent.name == "vectors",  # a new segment or layout
        "index.json": lambda dst: dst.name == "index.json",
    }[what]
    capsys.readouterr()
    with monkeypatch.context() as m:
        m.setattr(os, "replace", failing_replace(predicate))
        m.setattr(os, "rename", failing_replace(predicate, os.rename))  # shards never overwrite
        code = cli.main(args)
    err = capsys.readouterr().err
    assert code == 4
    assert_one_clean_line(err)
    assert "No space left on device" in err
    assert "searches still use the last complete index (12 images)" in err
    assert (build_of(index) / "index.json").read_bytes() == published
    searcher = open_searcher(Settings(index_dir=index))
    assert searcher.count == 12
    assert searcher.search(image=old[1]).results[0].path == str(old[1])
    searcher.close()

    assert cli.main(args) == 0  # the cause gone, the same command finishes the job
    assert catalog_paths(index) == sorted(str(p) for p in [*old[1:], *new])


# -- soak and untrusted input ------------------------------------------------------------------


def test_soak_of_a_thousand_random_queries(indexed_flickr):
    """Texts, images, both, and raw vectors with random k, against the live index."""
    flickr = indexed_flickr.flickr
    good = [str(p) for p in flickr.good]
    searcher = open_searcher(Settings(index_dir=indexed_flickr.index))
    rng = random.Random(7)
    nprng = np.random.default_rng(7)
    words = " ".join(c for cs in flickr.captions.values() for c in cs).split() + ["ü", "🙂", "#"]
    for _ in range(1000):
        k = rng.choice([1, 2, 5, 10, 44, 45, 100])
        kind = rng.choices(["text", "image", "both", "vector"], weights=[2, 1, 1, 6])[0]
        text = (
            " ".join(rng.choices(words, k=rng.randint(1, 30))) if kind in ("text", "both") else None
        )
        image = rng.choice(good) if kind in ("image", "both") else None
        if kind == "vector":
            vector = nprng.standard_normal(searcher.encoder.dim).astype(np.float32)
            results = searcher.search_vector(vector / np.linalg.norm(vector), k)
        else:
            results = searcher.search(text, image, k).results
        paths = [r.path for r in results]
        scores = [r.score for r in results]
        assert len(paths) == min(k, len(good)) == len(set(paths))
        assert set(paths) <= set(good)
        assert scores == sorted(scores, reverse=True)
        assert all(-1.0001 <= s <= 1.0001 for s in scores)
        if kind == "image":
            assert paths[0] == image and scores[0] >= 0.99
    searcher.close()


def test_no_pickle_anywhere_in_the_runtime():
    """Untrusted files (shards, indexes, models) are never unpickled."""
    package = Path(clipsearch_onnx.__file__).parent
    forbidden = re.compile(
        r"\bimport pickle\b|\bpickle\.|\btorch\.load\b|allow_pickle\s*=\s*True|"
        r"\bjoblib\b|\bdill\b|\bmarshal\.loads?\b|\bimport torch\b"
    )
    np_load = re.compile(r"\bnp\.load\((?![^)]*allow_pickle=False)")
    offenders = []
    for source in sorted(package.rglob("*.py")):
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if forbidden.search(line) or np_load.search(line):
                offenders.append(f"{source.name}:{number}: {line.strip()}")
    assert offenders == []
    assert any("allow_pickle=False" in p.read_text() for p in package.rglob("*.py"))
