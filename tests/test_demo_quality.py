"""The committed demo model knows its small world: checked through the real commands.

The checkpoint in demo/checkpoint is exported with `python -m export`, then the demo data set
(`make demo`'s, seed 0) and a data set it has never seen (another seed) are indexed with
`clipsearch index`, searched with `clipsearch search --queries` and evaluated with
`clipsearch eval`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demo import quality
from demo.data import read_captions
from tests.fixtures_collection import run_cli
from tests.fixtures_demo import Indexed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=[(0, 8000), (11, 2000)], ids=["demo-set", "unseen-set"])
def demo_index(request, demo_indexer) -> Indexed:
    return demo_indexer(*request.param)


def test_colour_and_shape_queries_find_both_in_8_of_top_10(demo_index: Indexed):
    queries = quality.colour_shape_queries()
    file = demo_index.home / "queries.txt"
    file.write_text("".join(q + "\n" for q, _, _ in queries), encoding="utf-8")
    proc = run_cli("search", "--queries", file, "--index", demo_index.index, home=demo_index.home)
    assert proc.returncode == 0, proc.stderr
    responses = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(responses) == len(queries)

    captions = read_captions(demo_index.data)
    hits = []
    for response, (text, colour, shape) in zip(responses, queries, strict=True):
        assert response["query"]["text"] == text
        names = [Path(r["path"]).name for r in response["results"]]
        assert len(names) == 10
        hits.append(sum(quality.names_both(captions[n], colour, shape) for n in names))
    mean = sum(hits) / len(hits)
    print(f"colour+shape: {mean:.2f} of the top 10 name both words")
    assert mean >= 8.0
    assert min(hits) >= 5  # no colour+shape pair is left out


def test_int8_text_to_image_recall_is_within_2_points_of_fp32(demo_index: Indexed):
    proc = run_cli(
        "eval", "--dataset", demo_index.data, "--model", demo_index.model,
        "--precision", "fp32,int8", "--json", "-q", home=demo_index.home,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    fp32, int8 = report["fp32"]["t2i"]["R@5"], report["int8"]["t2i"]["R@5"]
    print(f"t2i R@5 fp32 {fp32:.2f} int8 {int8:.2f} over {report['fp32']['images']} images")
    assert report["fp32"]["images"] == len((demo_index.data / "Flickr_8k.testImages.txt")
                                          .read_text(encoding="utf-8").split())  # fmt: skip
    assert fp32 > 50  # the model has learned something worth quantising
    assert abs(int8 - fp32) <= 2.0
