"""The captions parser (Flickr8k token and CSV formats): properties over generated files, and the
rule that a captions file cannot attach anything outside the indexed folder."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clipsearch_onnx.captions import captions_for, parse_captions, read_captions
from clipsearch_onnx.encoder import Encoder
from clipsearch_onnx.errors import InputError
from clipsearch_onnx.indexer import Indexer
from clipsearch_onnx.manifest import Manifest
from tests.fixtures_collection import make_distinct_images

# File-name parts: any character but those that carry structure (line ends, the tab, `#k`, the
# path separators) and surrogates.
name_part = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r#/\\"),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip() == s and s not in (".", "..") and "image,caption" not in s)
image_name = st.builds(
    lambda parts, ext: "/".join(parts) + ext,
    st.lists(name_part, min_size=1, max_size=3),
    st.sampled_from([".jpg", ".png", ".JPEG"]),
)
# Captions may hold anything but a line end (form feeds, U+2028, tabs, commas, quotes...).
caption = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
    min_size=1,
    max_size=40,
).filter(lambda s: s.split())
caption_map = st.dictionaries(image_name, st.lists(caption, min_size=1, max_size=5), max_size=8)


def normalised(captions: dict[str, list[str]]) -> dict[str, list[str]]:
    return {n: [" ".join(c.split()) for c in cs] for n, cs in captions.items()}


def token_file(captions: dict[str, list[str]]) -> str:
    return "".join(f"{n}#{k}\t{c}\n" for n, cs in captions.items() for k, c in enumerate(cs))


@given(caption_map)
def test_token_format_round_trips(captions):
    parsed, warnings = parse_captions(token_file(captions))
    assert parsed == normalised(captions)
    assert warnings == []


@given(caption_map)
def test_csv_format_round_trips(captions):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["image", "caption"])
    for name, cs in captions.items():
        writer.writerows([name, c] for c in cs)
    parsed, warnings = parse_captions(out.getvalue())
    assert parsed == normalised(captions)
    assert warnings == []


@given(st.text(max_size=400))
@settings(max_examples=300)
def test_any_text_parses_without_raising_and_stays_inside(text):
    parsed, warnings = parse_captions(text)
    assert isinstance(warnings, list)
    for name, cs in parsed.items():
        assert name and not name.startswith("/") and ".." not in name.split("/")
        assert cs and all(c and c == " ".join(c.split()) for c in cs)


escaping = st.one_of(
    st.builds(lambda n: "../" + n, image_name),
    st.builds(lambda n: "/" + n, image_name),
    st.builds(lambda a, b: f"{a}/../../{b}", name_part, image_name),
    st.builds(lambda n: "..\\" + n, image_name),
)


@given(caption_map, st.lists(escaping, min_size=1, max_size=4))
def test_names_pointing_outside_are_refused_and_warned(captions, bad_names):
    text = token_file(captions) + "".join(f"{n}#0\tsneaky caption\n" for n in bad_names)
    parsed, warnings = parse_captions(text)
    assert parsed == normalised(captions)
    assert len(warnings) == len(bad_names)
    assert all("outside the folder" in w for w in warnings)


def test_lines_without_a_tab_are_reported_by_number():
    parsed, warnings = parse_captions("a.jpg#0\tone\nbroken line\n\nb.jpg#0\t  two   words \n")
    assert parsed == {"a.jpg": ["one"], "b.jpg": ["two words"]}
    assert warnings == ["line 2: no tab between image name and caption"]


def test_lookup_by_relative_path_then_by_name():
    captions = {"sub/a.jpg": ["in sub"], "a.jpg": ["top"], "b.jpg": ["bee"]}
    assert captions_for("sub/a.jpg", captions) == ["in sub"]
    assert captions_for("a.jpg", captions) == ["top"]
    assert captions_for("other/b.jpg", captions) == ["bee"]
    assert captions_for("c.jpg", captions) == []


def test_unreadable_captions_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_captions(tmp_path / "nope.txt")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9.jpg#0\tun caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_captions(latin1)
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffcafé.jpg#0\tun café\n".encode())
    assert read_captions(bom) == ({"café.jpg": ["un café"]}, [])


def test_index_attaches_no_caption_through_escaping_names(tmp_path, exported_model):
    photos = tmp_path / "photos"
    make_distinct_images(photos, ["secret.jpg", "sub/ok.jpg"], seed=2)
    (tmp_path / "secret.jpg").write_bytes(b"outside")
    captions = tmp_path / "captions.txt"
    captions.write_text(
        "../secret.jpg#0\tescaped\n"
        f"{tmp_path}/photos/secret.jpg#0\tabsolute\n"
        "sub/../secret.jpg#0\tdotted\n"
        "sub/ok.jpg#0\tfine\n",
        encoding="utf-8",
    )
    report = Indexer(tmp_path / "index", Encoder(Manifest.load(exported_model))).run(
        photos, captions
    )
    assert report.count == 2
    assert len(report.caption_warnings) == 3
    from clipsearch_onnx.catalog import Catalog
    from tests.fixtures_collection import build_of

    catalog = Catalog.open(build_of(tmp_path / "index"), readonly=True)
    got = {item.path: item.captions for item in catalog.items()}
    catalog.close()
    assert got == {str(photos / "secret.jpg"): [], str(photos / "sub" / "ok.jpg"): ["fine"]}
