"""Issue 14's acceptance for query arithmetic and relevance, on `make demo`'s index (8,000
generated shapes, the committed demo model), through the real `clipsearch search`.

A result "names" a word when one of its image's captions has it (every caption of a demo image
names its colour and its shape).
"""

from __future__ import annotations

import json
import re

import pytest

from demo.data import COLOURS, SHAPES
from tests.fixtures_collection import run_cli
from tests.fixtures_demo import Indexed

pytestmark = pytest.mark.slow

NONSENSE = [
    "a cat sleeping on a sofa",
    "xkcd qwerty zzz",
    "a dog on the beach",
    "lorem ipsum dolor",
    "quantum chromodynamics",
    "the eiffel tower at night",
]
MATCHING = ["a red circle", "blue square", "a green triangle", "yellow star", "a circle", "red"]


def answers(demo: Indexed, queries: list[str], *flags: str) -> list[dict]:
    file = demo.home / "query-lines.txt"
    file.write_text("".join(q + "\n" for q in queries), encoding="utf-8")
    proc = run_cli(
        "search", "--queries", file, "--index", demo.index, *flags, home=demo.home, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def names(result: dict, word: str) -> bool:
    return any(re.search(rf"\b{word}", c.lower()) for c in result["captions"])


def test_subtracting_a_colour_keeps_the_shape_and_drops_the_colour(demo_set: Indexed):
    pairs = [(shape, colour) for shape in SHAPES for colour in COLOURS]
    with_term = answers(demo_set, [f"a {s} - {c}" for s, c in pairs])
    without = answers(demo_set, [f"a {s}" for s in SHAPES])
    mentions, mentions_before = [], []
    for (shape, colour), answer in zip(pairs, with_term, strict=True):
        assert all(names(r, shape) for r in answer["results"]), (shape, colour)
        mentions.append(sum(names(r, colour) for r in answer["results"]))
        before = without[SHAPES.index(shape)]["results"]
        mentions_before.append(sum(names(r, colour) for r in before))
    mean, mean_before = sum(mentions) / len(pairs), sum(mentions_before) / len(pairs)
    print(f"subtracted colour named by {mean:.2f} of 10 (without the term {mean_before:.2f})")
    assert mean <= 1.5 and mean < mean_before / 2


def test_adding_a_colour_and_a_shape_finds_both(demo_set: Indexed):
    pairs = [("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "star")]
    for (colour, shape), answer in zip(
        pairs, answers(demo_set, [f"{c} + {s}" for c, s in pairs]), strict=True
    ):
        assert all(names(r, colour) and names(r, shape) for r in answer["results"])


def test_weights_move_the_ranking_their_way(demo_set: Indexed):
    red_heavy, even, circle_heavy = answers(
        demo_set, ["3:red + circle", "red + circle", "red + 3:circle"], "-k", "50"
    )

    def count(answer: dict, word: str) -> int:
        return sum(names(r, word) for r in answer["results"])

    assert count(red_heavy, "red") >= count(even, "red") > count(circle_heavy, "red")
    assert count(circle_heavy, "circle") >= count(even, "circle") > count(red_heavy, "circle")


def test_min_score_and_the_auto_cutoff(demo_set: Indexed):
    (plain,) = answers(demo_set, ["a red circle"])
    threshold = plain["results"][4]["score"]
    (cut,) = answers(demo_set, ["a red circle"], f"--min-score={threshold}")
    assert cut["results"] and all(r["score"] >= threshold for r in cut["results"])
    assert len(cut["results"]) == sum(r["score"] >= threshold for r in plain["results"])

    kept = [len(a["results"]) for a in answers(demo_set, MATCHING + NONSENSE, "--cutoff", "auto")]
    matching = dict(zip(MATCHING, kept, strict=False))
    nonsense = kept[len(MATCHING) :]
    print(f"--cutoff auto keeps {matching} and {nonsense} (nonsense) of 10")
    mean_nonsense = sum(nonsense) / len(nonsense)
    assert mean_nonsense <= 2
    # a query that names a colour, with or without a shape, keeps more than any nonsense one;
    # the bare shape ("a circle", a quarter of the index) more than nonsense does on average
    assert min(n for q, n in matching.items() if q != "a circle") > max(nonsense)
    assert matching["a circle"] > mean_nonsense


def test_a_query_that_matches_nothing_says_so(demo_set: Indexed):
    proc = run_cli(
        "search", "lorem ipsum dolor", "--cutoff", "auto", "--index", demo_set.index,
        home=demo_set.home,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("no results (none of the top 10 passes --cutoff auto")
