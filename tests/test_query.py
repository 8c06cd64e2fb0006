"""Query arithmetic (clipsearch_onnx.query): the syntax, its escapes, the checks of image files,
and how term vectors combine."""

from __future__ import annotations

import numpy as np
import pytest

from clipsearch_onnx.errors import InputError
from clipsearch_onnx.query import (
    IMAGE,
    TEXT,
    URL,
    Query,
    Term,
    build,
    combine,
    parse_query,
    parse_terms,
)


def terms(raw: str) -> list[tuple[str, str, float, int]]:
    return [(t.kind, t.value, t.weight, t.sign) for t in parse_terms(raw)]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("a red circle", [(TEXT, "a red circle", 1, 1)]),
        (
            "beach + 2:sunset - people",
            [(TEXT, "beach", 1, 1), (TEXT, "sunset", 2, 1), (TEXT, "people", 0.5, -1)],
        ),
        ("./dog.jpg + in the snow", [(IMAGE, "./dog.jpg", 1, 1), (TEXT, "in the snow", 1, 1)]),
        ("0.5:./photo.jpg + .5:sea", [(IMAGE, "./photo.jpg", 0.5, 1), (TEXT, "sea", 0.5, 1)]),
        ("a t-shirt", [(TEXT, "a t-shirt", 1, 1)]),  # no spaces around: a word
        ("-5 degrees +plus", [(TEXT, "-5 degrees +plus", 1, 1)]),
        ("horse  +  stripes", [(TEXT, "horse", 1, 1), (TEXT, "stripes", 1, 1)]),
        ("- red + circle", [(TEXT, "red", 0.5, -1), (TEXT, "circle", 1, 1)]),
        ("a - 1:red", [(TEXT, "a", 1, 1), (TEXT, "red", 1, -1)]),  # rclip's equal weight
        (
            "https://x.org/a.jpg - red",
            [(URL, "https://x.org/a.jpg", 1, 1), (TEXT, "red", 0.5, -1)],
        ),
        ("file:///tmp/a.png", [(IMAGE, "/tmp/a.png", 1, 1)]),
        ("dog.JPG", [(IMAGE, "dog.JPG", 1, 1)]),  # one word with an image extension
        ("a dog.jpg", [(TEXT, "a dog.jpg", 1, 1)]),
        ("~/x.png", [(IMAGE, "~/x.png", 1, 1)]),
        # escapes
        ("rock \\- paper + scissors", [(TEXT, "rock - paper", 1, 1), (TEXT, "scissors", 1, 1)]),
        ("\\2:1 aspect ratio", [(TEXT, "2:1 aspect ratio", 1, 1)]),
        ("\\./not a path", [(TEXT, "./not a path", 1, 1)]),
        ("\\dog.jpg", [(TEXT, "dog.jpg", 1, 1)]),
        ("2:\\./x", [(TEXT, "./x", 2, 1)]),
        ("a \\\\ - b", [(TEXT, "a \\", 1, 1), (TEXT, "b", 0.5, -1)]),
        ("C:\\photos", [(TEXT, "C:\\photos", 1, 1)]),  # other backslashes stay
    ],
)
def test_syntax(raw, expected):
    assert terms(raw) == expected


@pytest.mark.parametrize(
    "raw, message",
    [
        ("", "give a text or an image"),
        ("   ", "give a text or an image"),
        ("a + - b", "nothing between '+' and '-'"),
        ("a +", "nothing after its last '+'"),
        ("a -", "nothing after its last '-'"),
        ("2:", "not followed by"),
        ("http://x.org/a.jpg in the snow", "join a text to it with ' + '"),
        (" + ".join(["a"] * 40), "at most 32 terms"),
    ],
)
def test_syntax_errors_are_one_line_input_errors(raw, message):
    with pytest.raises(InputError, match=message.replace("+", r"\+")) as info:
        parse_query(raw)
    assert "\n" not in str(info.value)


def test_image_files_are_checked_never_taken_as_text(tmp_path):
    (tmp_path / "dog.jpg").write_bytes(b"x")
    (tmp_path / "photos").mkdir()
    query = parse_query("./dog.jpg + 2:dog.jpg + snow", cwd=str(tmp_path))
    assert [t.value for t in query.images] == [str(tmp_path / "dog.jpg")] * 2
    with pytest.raises(InputError, match=r"\./photos is a folder; give the path of an image"):
        parse_query("./photos + snow", cwd=str(tmp_path))
    with pytest.raises(InputError, match=r"query image cat\.jpg does not exist.*\\cat\.jpg"):
        parse_query("cat.jpg", cwd=str(tmp_path))
    assert parse_query("\\cat.jpg", cwd=str(tmp_path)).terms == (Term(TEXT, "cat.jpg"),)


def test_a_query_must_add_something():
    with pytest.raises(InputError, match="only subtracts"):
        parse_query("- red")
    with pytest.raises(InputError, match="only subtracts"):
        parse_query("0:red - blue")


def test_describe_for_a_status_line():
    assert parse_query("beach + 2:sunset - people").describe() == "“beach” + 2×“sunset” − “people”"
    assert parse_query("beach - 1:people").describe() == "“beach” − 1×“people”"
    assert parse_query("- red + circle").describe() == "− “red” + “circle”"


def test_combine_is_the_normalised_weighted_signed_sum():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(3, 8)).astype(np.float32)
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    query = build([Term(TEXT, "a"), Term(TEXT, "b", 2.0), Term(TEXT, "c", 0.5, -1)])
    expected = unit[0] + 2 * unit[1] - 0.5 * unit[2]
    got = combine(query, raw * 3)  # term vectors are normalised first
    np.testing.assert_allclose(got, expected / np.linalg.norm(expected), rtol=1e-5)
    single = combine(Query((Term(TEXT, "a"),)), unit[:1])
    np.testing.assert_allclose(single, unit[0], rtol=1e-6)  # one term: its own vector
    with pytest.raises(InputError, match="cancel out"):
        combine(build([Term(TEXT, "a"), Term(TEXT, "a", 1.0, -1)]), unit[[0, 0]])
