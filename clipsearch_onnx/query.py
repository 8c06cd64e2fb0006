"""Query arithmetic: `"beach + 2:sunset - people"`, `"./dog.jpg + in the snow"`.

A query is terms joined by ` + ` and ` - ` (the operator stands alone between spaces, so
"t-shirt" and "-5 degrees" stay words). Each term is a text, an image file or an http(s) URL of
an image, with an optional weight prefix `W:` (`2:sunset`, `0.5:./photo.jpg`). rclip's syntax:
its `rclip horse + stripes`, `rclip "./racing car.jpg" - "2:sports car"` mean the same here.

What a term is, by its (unescaped) text:
  - `http://...`, `https://...`: an image fetched from the URL (clipsearch_onnx.urlimage);
  - `/...`, `./...`, `../...`, `~/...`, `file://...`, or one word ending in an extension that
    `clipsearch index` takes (`dog.jpg`, scan.IMAGE_EXTENSIONS): an image file; a missing file
    or a folder is an error, never text;
  - anything else: a text.

Escaping, for a text that looks like something else:
  - a term that starts with a backslash is a text, whatever follows, with the default weight:
    `\\2:1 aspect ratio`, `\\./not a path`, `\\IMG_1234.JPG`;
  - `\\-` and `\\+` are a literal - or + that never joins terms (`rock \\- paper`);
    `\\\\` is a backslash; any other backslash is kept as it is.

Combining (`combine`): each term's vector is a unit vector; the query is their sum, each times
its weight and its sign, normalised again. rclip adds the same weighted vectors and leaves the
sum unnormalised; the ranking is the same, and the normalised one keeps scores cosines (a
one-term query scores as it did before arithmetic existed, and --min-score and SigLIP's
probabilities keep their meaning).

One deliberate difference from rclip: a subtracted term without a weight weighs
NEGATIVE_WEIGHT (0.5), not 1. A subtracted term is a constraint, not a target: at full weight
the query moves as far away from it as towards what is wanted, and the ranking starts to reward
whatever is most unlike it. Measured on the demo index (`"a SHAPE - COLOUR"`, 32 pairs, top 10):
at weight 1, 3 pairs bring in another shape; at 0.75 and 0.5 none does, and the subtracted
colour is named by 0 of 10 results at all three weights (1.25 of 10 without the term). Write
`- 1:people` for rclip's equal weight.

Pure: no model, no network; `parse_query` only checks that image files exist.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch_onnx.errors import InputError
from clipsearch_onnx.scan import IMAGE_EXTENSIONS  # what `index` takes

TEXT, IMAGE, URL = "text", "image", "url"
KINDS = (TEXT, IMAGE, URL)
MAX_TERMS = 32
NEGATIVE_WEIGHT = 0.5  # a subtracted term's weight unless it gives one (see the docstring)
WEIGHT = re.compile(r"(?P<w>\d+(?:\.\d*)?|\.\d+):(?P<rest>.*)", re.S)
PATH_PREFIXES = ("/", "./", "../", "~/")
ESCAPED = {"\\": "\\", "+": "+", "-": "-"}


@dataclass(frozen=True)
class Term:
    """One term of a query: a text, an image file (`value` its path) or an image URL."""

    kind: str  # TEXT | IMAGE | URL
    value: str
    weight: float = 1.0
    sign: int = 1  # +1: added, -1: subtracted

    @property
    def is_image(self) -> bool:
        return self.kind != TEXT

    @property
    def factor(self) -> float:
        return self.sign * self.weight

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "weight": self.weight, "sign": self.sign}

    def describe(self) -> str:
        shown = (
            f"“{self.value}”" if self.kind == TEXT else os.path.basename(self.value) or self.value
        )
        default = 1.0 if self.sign > 0 else NEGATIVE_WEIGHT
        return shown if self.weight == default else f"{self.weight:g}×{shown}"


@dataclass(frozen=True)
class Query:
    terms: tuple[Term, ...]

    @property
    def images(self) -> list[Term]:
        return [t for t in self.terms if t.is_image]

    @property
    def is_plain(self) -> bool:
        """One term added with weight 1: what a query was before arithmetic."""
        return len(self.terms) == 1 and self.terms[0].factor == 1

    def to_json(self) -> list[dict[str, Any]]:
        return [t.to_json() for t in self.terms]

    def describe(self) -> str:
        """For a status line: “beach” + 2×“sunset” − “people”."""
        out = ""
        for i, term in enumerate(self.terms):
            if i or term.sign < 0:
                out += (" + " if term.sign > 0 else " − ") if i else "− "
            out += term.describe()
        return out


def _split(raw: str) -> list[tuple[int, str]]:
    """(sign, raw text) of each term: the string cut at the lone `+` and `-` that are not
    escaped. The raw texts keep their escapes."""
    ops: list[tuple[int, str]] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "\\":
            i += 2
            continue
        lone = (i == 0 or raw[i - 1].isspace()) and (i + 1 == n or raw[i + 1].isspace())
        if c in "+-" and lone:
            ops.append((i, c))
        i += 1
    pieces, signs, prev = [], [1], 0
    for at, op in ops:
        pieces.append(raw[prev:at])
        signs.append(1 if op == "+" else -1)
        prev = at + 1
    pieces.append(raw[prev:])
    names = ["the start", *(f"'{op}'" for _, op in ops)]
    if len(pieces) > 1 and not pieces[0].strip():  # "- red + circle": a sign for the first term
        pieces, signs, names = pieces[1:], signs[1:], names[1:]
    for k, piece in enumerate(pieces):
        if piece.strip():
            continue
        if len(pieces) == 1:
            raise InputError("give a text or an image to search for")
        if k == len(pieces) - 1:
            raise InputError(f"the query has nothing after its last {names[k]} (a term is missing)")
        raise InputError(
            f"the query has nothing between {names[k]} and {names[k + 1]} "
            "(a term is missing; write \\- or \\+ for a literal one)"
        )
    return list(zip(signs, pieces, strict=True))


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ESCAPED:
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def kind_of(value: str) -> str:
    """TEXT, IMAGE or URL, by how the (unescaped) term is written."""
    lower = value.lower()
    if lower.startswith(("http://", "https://")):
        return URL
    if lower.startswith("file://") or value.startswith(PATH_PREFIXES) or value in ("~", ".", ".."):
        return IMAGE
    if not any(c.isspace() for c in value) and Path(lower).suffix in IMAGE_EXTENSIONS:
        return IMAGE
    return TEXT


def parse_term(raw: str, sign: int = 1, kind: str | None = None) -> Term:
    """One term as written: an optional weight `W:` (default 1, NEGATIVE_WEIGHT subtracted),
    then a text, a path or a URL (`kind` forces one). A leading backslash makes the rest a text
    with the default weight."""
    raw = raw.strip()
    weight = 1.0 if sign > 0 else NEGATIVE_WEIGHT
    if raw.startswith("\\") and kind in (None, TEXT):
        text = _unescape(raw[1:]).strip()
        if not text:
            raise InputError("a term is a lone backslash; give a text after it")
        return Term(TEXT, text, weight, sign)
    match = WEIGHT.fullmatch(raw)
    if match:
        weight, raw = float(match["w"]), match["rest"].strip()
        if not raw:
            raise InputError(f"the weight {match['w']}: is not followed by a text or an image")
    if raw.startswith("\\") and kind in (None, TEXT):
        return Term(TEXT, _unescape(raw[1:]).strip() or raw, weight, sign)
    value = _unescape(raw).strip()
    found = kind or kind_of(value)
    if found == IMAGE and value.lower().startswith("file://"):
        value = value[len("file://") :]
    if found == URL and any(c.isspace() for c in value):
        raise InputError(
            f"the URL {value.split()[0]} is followed by words; join a text to it with ' + '"
        )
    return Term(found, value, weight, sign)


def parse_terms(raw: str) -> list[Term]:
    """The terms of a query string, syntax alone (no file is looked at)."""
    terms = [parse_term(piece, sign) for sign, piece in _split(raw)]
    if len(terms) > MAX_TERMS:
        raise InputError(f"a query takes at most {MAX_TERMS} terms, not {len(terms)}")
    return terms


def resolve(term: Term, cwd: str | None = None) -> Term:
    """An image file term with its path absolute (against `cwd`, default the working folder),
    checked to be a file: a missing path or a folder is an InputError, never a text."""
    if term.kind != IMAGE:
        return term
    written = term.value
    path = os.path.join(cwd or os.getcwd(), os.path.expanduser(written))
    if os.path.isdir(path):
        raise InputError(
            f"{written} is a folder; give the path of an image file "
            f"(to search for the words, start the term with a backslash: \\{written})"
        )
    if not os.path.exists(path):
        raise InputError(
            f"query image {written} does not exist "
            f"(to search for the words, start the term with a backslash: \\{written})"
        )
    return Term(IMAGE, os.path.normpath(path), term.weight, term.sign)


def image_term(value: str, sign: int = 1, weight: float = 1.0) -> Term:
    """An image named whole (a path, or an http(s) URL), however it is written."""
    return Term(URL if kind_of(value) == URL else IMAGE, value, weight, sign)


def build(terms: list[Term], cwd: str | None = None, *, upload: Term | None = None) -> Query:
    """A Query of `terms` with image files checked (see `resolve`), then `upload` (an image
    whose bytes come with the query: not a file to check). At least one term must be added."""
    terms = [*(resolve(t, cwd) for t in terms), *([upload] if upload else [])]
    if not terms:
        raise InputError("give a text or an image to search for")
    if len(terms) > MAX_TERMS:
        raise InputError(f"a query takes at most {MAX_TERMS} terms, not {len(terms)}")
    if not any(t.sign > 0 and t.weight > 0 for t in terms):
        raise InputError("the query only subtracts; give something to look for as well")
    return Query(tuple(terms))


def parse_query(raw: str, cwd: str | None = None) -> Query:
    """The query string `raw` (see the module's docstring) with its image files checked;
    an InputError with a one-line message for anything wrong, blank input included."""
    return build(parse_terms(raw), cwd)


def combine(query: Query, vectors: np.ndarray) -> np.ndarray:
    """The query's vector [D]: the unit `vectors` [T, D] (one a term, in order) weighted,
    signed, summed and normalised."""
    factors = np.array([t.factor for t in query.terms], dtype=np.float32)
    rows = np.asarray(vectors, dtype=np.float32)
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    total = factors @ rows
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise InputError("the query's terms cancel out; change a weight or a term")
    return (total / norm).astype(np.float32)
