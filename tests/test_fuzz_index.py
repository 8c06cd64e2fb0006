"""A bad file never stops a run, and the decoding libraries stay quiet: the real `clipsearch index`
over a generated corpus of ~480 damaged PNG, APNG, JPEG, GIF, TIFF, WebP and BMP files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

from tests.fixtures_collection import catalog_paths, run_cli
from tests.fuzz_corpus import make_fuzz_corpus, originals

SKIP_LINE = re.compile(r"^skipped (.+?): (.+)$")


def test_index_survives_a_fuzz_corpus_with_one_line_per_skipped_file(exported_model, tmp_path):
    corpus = tmp_path / "corpus"
    files = make_fuzz_corpus(corpus)
    assert len(files) > 450
    index = tmp_path / "index"
    proc = run_cli("index", corpus, "--index", index, "--model", exported_model, home=tmp_path)

    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "unexpected error" not in proc.stderr and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    named = [m.group(1) for m in map(SKIP_LINE.match, lines) if m]
    indexed = set(catalog_paths(index))
    assert len(named) == len(set(named)), "a file was named twice"
    assert set(named).isdisjoint(indexed)
    assert set(named) | indexed == {str(f) for f in files}
    # libtiff's own messages, Pillow's warnings and log records: none of them reach stderr.
    assert len(lines) <= len(named) + 5, "\n".join(ln for ln in lines if not SKIP_LINE.match(ln))
    for name, ext, _ in originals():  # every undamaged file is indexed
        assert str(corpus / f"{name}.{ext}") in indexed
    assert str(corpus / "apng-zero-frames.png") in named  # Pillow's verify() raises IndexError
    assert 100 < len(named) < len(files) - 100  # the damage is varied: some of it decodes

    tiffs = tmp_path / "tiffs"
    tiffs.mkdir()
    for f in files:
        if f.suffix in (".tif", ".tiff"):
            (tiffs / f.name).hardlink_to(f)
    verbose = run_cli(
        "index", tiffs, "--index", tmp_path / "index2", "--model", exported_model, "--verbose",
        home=tmp_path,
    )  # fmt: skip
    assert verbose.returncode == 0
    talk = [ln for ln in verbose.stderr.splitlines() if not SKIP_LINE.match(ln)]
    assert len(talk) > 10  # --verbose lets libtiff and Pillow talk


def test_quiet_libraries_drops_descriptor_2_but_not_python_s_stderr():
    code = textwrap.dedent(
        """
        import os, sys, warnings
        from clipsearch_onnx.quiet import quiet_libraries
        with quiet_libraries():
            os.write(2, b"from C\\n")
            warnings.warn("from Pillow")
            print("skipped x: reason", file=sys.stderr)
        os.write(2, b"after\\n")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "skipped x: reason\nafter\n"


def test_embed_and_search_of_odd_files_keep_the_libraries_quiet(
    exported_model, indexed_collection, tmp_path
):
    from clipsearch_onnx.errors import ImageError
    from clipsearch_onnx.pipeline import read_file
    from clipsearch_onnx.preprocess import Preprocessor

    pre = Preprocessor(32, 32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    readable = []
    for f in make_fuzz_corpus(tmp_path / "corpus"):
        if f.suffix in (".tif", ".tiff"):
            try:
                read_file(f, pre)
            except ImageError:
                continue
            readable.append(f)
    assert len(readable) > 10  # damaged, yet decodable: what libtiff warns about
    images = [a for f in readable for a in ("--image", f)]
    proc = run_cli("embed", *images, "--model", exported_model, home=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == ""
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps({"image": str(f)}) + "\n" for f in readable))
    proc = run_cli(
        "search", "--queries", queries, "-k", "3", "--index", indexed_collection.index,
        home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == ""
