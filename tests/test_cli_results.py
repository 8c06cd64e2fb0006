"""`clipsearch search` output: --paths and -0 give exactly --json's paths, the table has a header
and fits the terminal without cutting a file name, and --preview draws a thumbnail per result."""

from __future__ import annotations

import json
import os
import re

import pytest

from clipsearch_onnx import cells
from clipsearch_onnx.cli import main
from clipsearch_onnx.cli.results import format_table

ESCAPE = re.compile(r"\x1b(\[[0-9;]*m|_G[^\x1b]*\x1b\\|P[^\x1b]*\x1b\\)")


@pytest.fixture
def search(indexed_collection, capsys, monkeypatch):
    """Runs `clipsearch search ... --index <the collection>` in this process: (exit code, out)."""
    monkeypatch.setenv("CLIPSEARCH_HOME", str(indexed_collection.root))
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("CLIPSEARCH_GRAPHICS", raising=False)

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["search", *args, "--index", str(indexed_collection.index)])
        return code, capsys.readouterr().out

    return run


def test_paths_are_exactly_those_of_json(search):
    query = ("a red circle", "-k", "7")
    _, as_json = search(*query, "--json")
    paths = [r["path"] for r in json.loads(as_json)["results"]]
    assert len(paths) == 7
    assert search(*query, "--paths") == (0, "".join(p + "\n" for p in paths))
    assert search(*query, "-0") == (0, "".join(p + "\0" for p in paths))
    assert search(*query, "--paths", "-0") == (0, "".join(p + "\0" for p in paths))


def test_the_table_has_a_header_and_fits_the_terminal(search, indexed_collection, monkeypatch):
    _, as_json = search("a blue square", "-k", "5", "--json")
    results = json.loads(as_json)["results"]
    _, piped = search("a blue square", "-k", "5")  # not a terminal: rows alone, whole paths
    lines = piped.splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2", "3", "4", "5"]
    assert all(line.endswith(r["path"]) for line, r in zip(lines, results, strict=True))

    monkeypatch.setenv("COLUMNS", "44")
    _, narrow = search("a blue square", "-k", "5")
    lines = narrow.splitlines()
    assert lines[0].split()[:2] == ["#", "score"] and len(lines) == 6
    assert all(cells.width(line) <= 44 for line in lines)
    for line, r in zip(lines[1:], results, strict=True):
        assert line.endswith(os.sep + os.path.basename(r["path"]))  # the file name whole
        assert f"{r['score']:.3f}" in line


def test_narrow_tables_keep_file_names_and_cut_captions_first():
    data = {
        "results": [
            {
                "rank": 1,
                "score": 0.31234,
                "path": "/data/very/deep/folder/of/pictures/2019/東京タワー.png",
                "captions": ["a red tower against a blue sky in the evening,   seen from below"],
            },
            {"rank": 10, "score": -0.05, "path": "/p/b.jpg", "captions": []},
        ]
    }
    for width in (30, 40, 60, 80, 200):
        lines = format_table(data, width).splitlines()
        assert all(cells.width(line) <= width for line in lines), (width, lines)
        assert lines[1].endswith("東京タワー.png") and lines[2].endswith("/p/b.jpg")
        assert lines[2].split()[:2] == ["10", "-0.050"]
    wide = format_table(data, 200).splitlines()
    assert "a red tower against a blue sky in the evening, seen from below" in wide[1]
    assert "…" in format_table(data, 80).splitlines()[1]  # the caption cut, not the name
    assert "caption" not in format_table(data, 30).splitlines()[0]  # no room: column left out
    assert format_table({"results": []}, 80) == "no results (the index is empty)\n"


def test_preview_draws_a_thumbnail_under_each_row(search, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    _, table = search("a green star", "-k", "3")
    _, auto = search("a green star", "-k", "3", "--preview")
    assert auto == table  # not a terminal: no pictures unless forced
    code, blocks = search("a green star", "-k", "3", "--preview=blocks")
    assert code == 0
    lines = blocks.splitlines()
    rows = table.splitlines()
    assert [line for line in lines if "\x1b" not in line] == rows
    pictures = [line for line in lines if "\x1b" in line]
    assert len(pictures) == 3 * 8  # eight lines of cells under each of the three results
    assert all(ESCAPE.sub("", line).strip().strip("▀") == "" for line in pictures)
    assert all(cells.width(ESCAPE.sub("", line)) <= 100 for line in pictures)
    _, kitty = search("a green star", "-k", "3", "--preview=kitty")
    assert kitty.count("\x1b_Ga=T,f=100,q=2,") == 3
    assert ESCAPE.sub("", kitty).split() == ESCAPE.sub("", table).split()
    monkeypatch.setenv("CLIPSEARCH_GRAPHICS", "sixel")
    _, forced = search("a green star", "-k", "3", "--preview=blocks")
    assert forced == blocks  # the flag's mode wins over the variable


@pytest.mark.parametrize(
    "args",
    [("-0", "--json"), ("--preview", "--paths"), ("--preview", "--json"), ("--paths", "--jsonl")],
)
def test_output_modes_that_do_not_go_together_are_refused(search, capsys, args):
    try:
        code, _ = search("a cat", *args)
    except SystemExit as exit_:  # argparse's own mutually exclusive group
        code = int(exit_.code or 0)
    assert code == 2
