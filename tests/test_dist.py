"""`clipsearch embed-shards`: a folder embedded as a job of partitions, here or on Ray, gives the
vectors and (once imported) the search results of `clipsearch index` on that folder; a killed
driver's rerun embeds only what is missing; a partition whose worker dies is retried and written
once.

Ray starts slowly (~5-10 s here), so one test runs `--ray local` and the others share one Ray
instance this module starts (a helper process holding `ray.init`, ended through its stdin).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from clipsearch_onnx import distributed, jobs, shards
from clipsearch_onnx.settings import Settings
from tests.fixtures_collection import Flickr, cli_env, make_flickr, run_cli, search_json

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

QUERIES = ("a dog on the beach", "a red car", "people at a market")
HEAD = """
import sys, ray
ctx = ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
               object_store_memory=256 * 2**20)
print(ctx.address_info["address"], flush=True)
sys.stdin.read()
ray.shutdown()
"""
CRASH_SIZE = 3  # the crash test's partition size (its partition names occur in no other job)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Flickr:
    """45 good pictures and four broken files (empty, truncated JPEG, text, random bytes), and a
    picture whose name is not valid UTF-8 (skipped: the catalog and JSON hold text)."""
    flickr = make_flickr(tmp_path_factory.mktemp("dist"))
    noise = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    (flickr.images / "noise.jpg").write_bytes(noise)
    flickr.broken.append(flickr.images / "noise.jpg")
    with open(os.fsencode(flickr.images) + b"/caf\xe9.jpg", "wb") as fh:
        fh.write(flickr.good[0].read_bytes())
    return flickr


def index_of(photos: Flickr, model: Path, where: Path, precision: str) -> Path:
    index = where / f"index-{precision}"
    proc = run_cli(
        "index", photos.images, "--captions", photos.captions_file, "--model", model,
        "--index", index, "--precision", precision, "-q", home=where,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return index


@pytest.fixture(scope="module")
def index_int8(photos: Flickr, exported_model: Path) -> Path:
    return index_of(photos, exported_model, photos.root, "int8")


@pytest.fixture(scope="module")
def head(photos: Flickr) -> Iterator[str]:
    """The address of a Ray instance shared by this module's tests. Its workers crash on the
    first attempt at the crash test's second partition (the test hook in `distributed`)."""
    target = jobs.plan(photos.images, CRASH_SIZE)[0][1].name
    env = cli_env(photos.root, **{distributed.CRASH_ONCE: f"{target}:{photos.root / 'crashed'}"})
    proc = subprocess.Popen(
        [sys.executable, "-c", HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=env, cwd=photos.root,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address, "the Ray head did not start"
        yield address
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def joining(home: Path) -> dict[str, str]:
    """A driver's environment to join `head` (which, like any `ray.init` instance, wants the
    token Ray keeps in ~/.ray/auth_token)."""
    return cli_env(home, RAY_AUTH_MODE="token")


def stored_vectors(index: Path) -> dict[str, np.ndarray]:
    from clipsearch_onnx.search import open_searcher

    searcher = open_searcher(Settings(index_dir=index))
    try:
        found = searcher.search(text="x", k=1000).results
        return {r.path: np.asarray(searcher.vector_of(r.id)) for r in found}
    finally:
        searcher.close()


def job_vectors(job: Path) -> dict[str, np.ndarray]:
    root = json.loads((job / jobs.JOB).read_text())["root"]
    out: dict[str, np.ndarray] = {}
    for shard in sorted(job.glob("part-*")):
        emb = np.load(shard / shards.EMBEDDINGS)
        for item, vector in zip(shards.iter_items(shard), emb, strict=True):
            out[os.path.join(root, item["path"])] = vector
    return out


def assert_same_vectors(job: Path, index: Path) -> None:
    mine, theirs = job_vectors(job), stored_vectors(index)
    assert sorted(mine) == sorted(theirs)
    cosines = np.array([float(mine[p] @ theirs[p]) for p in theirs])
    assert cosines.min() >= 0.99999, cosines.min()


def assert_broken_named(stderr: str, photos: Flickr) -> None:
    for path in photos.broken:
        assert f"skipped {path}: " in stderr, stderr
    assert f"skipped {photos.images}/caf\\xe9.jpg: its name is not valid UTF-8" in stderr


def finished(job: Path) -> dict[str, int]:
    """Finished shards of a job: name -> mtime of its shard.json."""
    return {p.name: (p / shards.DONE).stat().st_mtime_ns for p in job.glob("part-*")}


def test_ray_local_gives_the_vectors_and_results_of_index(photos, exported_model, tmp_path):
    reference = index_of(photos, exported_model, tmp_path, "fp32")
    job = tmp_path / "job"
    proc = run_cli(
        "embed-shards", photos.images, "--out", job, "--model", exported_model,
        "--precision", "fp32", "--captions", photos.captions_file, "--ray", "local",
        "--partition-size", "10", "--worker-cpus", "1", home=tmp_path,
        env=cli_env(tmp_path, RAY_ADDRESS="127.0.0.1:1"),  # local never joins another cluster
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert_broken_named(proc.stderr, photos)
    assert "Traceback" not in proc.stderr
    assert len(finished(job)) == 5  # 49 files, 10 a partition (the broken ones too)
    assert_same_vectors(job, reference)

    imported = tmp_path / "imported"
    proc = run_cli("import", job, "--index", imported, "-q", home=tmp_path)  # the job's model
    assert proc.returncode == 0, proc.stderr
    for query in QUERIES:
        want = search_json(reference, tmp_path, query, "-k", "10")["results"]
        got = search_json(imported, tmp_path, query, "-k", "10")["results"]
        assert [r["path"] for r in got] == [r["path"] for r in want]
        assert np.allclose([r["score"] for r in got], [r["score"] for r in want], atol=1e-5)
        assert [r.get("captions") for r in got] == [r.get("captions") for r in want]


def test_in_process_partitions_one_at_a_time(photos, exported_model, index_int8, tmp_path):
    """Without --ray (what Slurm or Dask drive): one partition, then the rest; Ray never
    imported."""
    job = tmp_path / "job"
    args = [
        "embed-shards", str(photos.images), "--out", str(job), "--model", str(exported_model),
        "--captions", str(photos.captions_file), "--partition-size", "8",
    ]  # fmt: skip
    probe = (
        "import sys; from clipsearch_onnx.cli import main; "
        f"code = main({args + ['--partition', '2']!r}); "
        "print(code, 'ray' in sys.modules, 'pyarrow' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=cli_env(tmp_path)
    )
    assert proc.stdout.split() == ["0", "False", "False"], proc.stderr
    plan = json.loads((job / jobs.JOB).read_text())["partitions"]
    assert list(finished(job)) == [plan[2]["name"]]
    first = finished(job)

    proc = run_cli(*args, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "7 partitions, 6 embedded now" in proc.stderr and "1 finished before" in proc.stderr
    assert finished(job)[plan[2]["name"]] == first[plan[2]["name"]]
    assert_broken_named(proc.stderr, photos)
    assert_same_vectors(job, index_int8)

    # imported, the files count as indexed: `clipsearch index` on the folder embeds nothing
    imported = tmp_path / "imported"
    assert run_cli("import", job, "--index", imported, "-q", home=tmp_path).returncode == 0
    proc = run_cli("index", photos.images, "--index", imported, home=tmp_path)
    assert proc.returncode == 0 and " 0 embedded" in proc.stderr, proc.stderr

    # int8 shards are not mixed into an fp32 index
    proc = run_cli(
        "import", job, "--index", tmp_path / "fp32", "--model", exported_model,
        "--precision", "fp32", home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 3 and "another model or precision" in proc.stderr, proc.stderr


def test_a_new_file_re_embeds_only_its_partition(photos, exported_model, tmp_path):
    shutil.copytree(photos.images, tmp_path / "photos")
    args = ["embed-shards", tmp_path / "photos", "--out", tmp_path / "job", "--model", exported_model, "--partition-size", "16"]  # fmt: skip
    assert run_cli(*args, home=tmp_path).returncode == 0
    before = finished(tmp_path / "job")
    shutil.copy(photos.good[0], tmp_path / "photos" / "zzz new.jpg")  # sorts last
    proc = run_cli(*args, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "4 partitions, 1 embedded now" in proc.stderr, proc.stderr
    assert "1 shards in" in proc.stderr and "earlier plan" in proc.stderr
    after = finished(tmp_path / "job")
    assert len(set(after) - set(before)) == 1 and all(after[n] == before[n] for n in before)


def test_killed_driver_rerun_embeds_only_missing_partitions(
    photos, exported_model, index_int8, head, tmp_path
):
    job = tmp_path / "job"
    args = [
        "embed-shards", photos.images, "--out", job, "--model", exported_model, "--ray", head,
        "--partition-size", "2", "--worker-cpus", "1", "--batch-size", "1", "--threads", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipsearch_onnx", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=joining(tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    while proc.poll() is None and not finished(job):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    time.sleep(1)  # what the killed driver's actors were writing lands or goes
    before = finished(job)
    total = len(json.loads((job / jobs.JOB).read_text())["partitions"])
    assert 1 <= len(before) < total

    rerun = run_cli(*args, home=tmp_path, env=joining(tmp_path))
    assert rerun.returncode == 0, rerun.stderr
    now, earlier = map(int, re.search(r"(\d+) embedded now.* (\d+) finished before", rerun.stderr).groups())  # fmt: skip
    assert earlier >= len(before) and now + earlier == total
    after = finished(job)
    assert len(after) == total and len(list(job.glob("part-*"))) == total
    assert {name: after[name] for name in before} == before  # not written again
    assert_same_vectors(job, index_int8)


def test_a_partition_whose_worker_dies_is_retried_and_written_once(
    photos, exported_model, index_int8, head, tmp_path
):
    job = tmp_path / "job"
    target = jobs.plan(photos.images, CRASH_SIZE)[0][1].name
    proc = run_cli(
        "embed-shards", photos.images, "--out", job, "--model", exported_model, "--ray", head,
        "--partition-size", str(CRASH_SIZE), "--worker-cpus", "1", home=tmp_path,
        env=joining(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (photos.root / "crashed").exists(), "the first attempt did not crash"
    names = json.loads((job / jobs.JOB).read_text())["partitions"]
    assert sorted(p.name for p in job.iterdir() if p.name.startswith("part-")) == sorted(
        p["name"] for p in names
    )
    assert json.loads((job / target / shards.DONE).read_text())["rows"] == CRASH_SIZE
    assert_broken_named(proc.stderr, photos)
    assert_same_vectors(job, index_int8)


def test_the_decoding_setting_reaches_the_workers(sensitive_clip, head, tmp_path):
    """`embed-shards` decodes as `index` does: FAST by default, REFERENCE with `--decoding
    reference`, on Ray actors too. Large JPEGs on the sensitive checkpoint, where the two
    decodings differ in the 4th decimal."""
    from tests.factories import make_detailed_jpegs

    big = tmp_path / "big"
    make_detailed_jpegs(big, [(640, 480), (1001, 751), (800, 600)], seed=3)
    model = ["--model", sensitive_clip.model, "--precision", "fp32"]
    indexes = {}
    for decoding in ("fast", "reference"):
        indexes[decoding] = tmp_path / f"index-{decoding}"
        proc = run_cli(
            "index", big, "--index", indexes[decoding], *model, "--decoding", decoding, "-q",
            home=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    fast, reference = stored_vectors(indexes["fast"]), stored_vectors(indexes["reference"])
    assert min(float(fast[p] @ reference[p]) for p in fast) < 0.99999  # the test can tell

    on_ray = tmp_path / "on-ray"
    proc = run_cli(
        "embed-shards", big, "--out", on_ray, *model, "--decoding", "reference", "--ray", head,
        "--partition-size", "2", "--worker-cpus", "1", home=tmp_path, env=joining(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert_same_vectors(on_ray, indexes["reference"])
    here = tmp_path / "here"
    proc = run_cli("embed-shards", big, "--out", here, *model, "-q", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_same_vectors(here, indexes["fast"])
