"""Relevance cuts: fewer than k results when fewer are relevant.

- `--min-score S`: drops the results whose score (the cosine to the query) is below S. A CLIP
  cosine means something only beside the other results of the same query.
- `--min-prob P` (SigLIP models): drops the results whose match probability
  `sigmoid(logit_scale * cosine + logit_bias)` (Manifest.probability) is below P; the same P
  means the same for every query.
- `--cutoff auto`: keeps the results that stand out from what a query that means nothing scores
  on the same image. A permutation test against null queries: NULL_QUERIES strings of random
  letters (seeded, the same for every run), which match nothing by construction, are scored
  against each result's image, and the result is kept when the query scores higher on that
  image than every one of them does. Were the query one more meaningless string, that would
  happen with probability 1 / (NULL_QUERIES + 1) for an image picked beforehand (< 0.8%); the
  top k are the images the query scores highest on, so a meaningless query passes more often
  (below). Each image is judged
  against its own null scores, so pictures that score high for any text (hubs) do not pass for
  that reason, which a threshold on the score alone cannot see. A query that matches nothing
  gets no results, and the table says so. The null queries' vectors are embedded once per model
  and kept in the cache folder.

  Measured on `make demo`'s index (8,000 generated shapes, k = 10, int8 on this session's
  Xeon): the 46 queries that name a colour, a shape or both keep 9.8 of 10 on average (the
  fewest: 6, "a circle" 7, "a red circle" 10); 30 that name nothing in it keep 4.1 ("xkcd qwerty
  zzz", "lorem ipsum dolor", "a dog on the beach" 0, "a cat sleeping on a sofa" 5). A
  threshold of mean + 2.5 standard deviations of the image's null scores instead kept 9.65
  (fewest 4, "a circle" 4) and 3.2 ("a cat sleeping on a sofa" 4): generic queries fared worse.
  What the model itself maps firmly onto some pictures passes (on the demo's 100-word model,
  "asdf" and "banana" mean yellow squares and more): the test can only ask the model. Checked
  for issue 14: 40 strings of random letters not among the null queries keep 4.1 of 10 (31 at
  least one). Allowing for the selection (a result kept only when its margin over its image's
  null scores beats the best margin any null query reaches in its own top k) keeps none of
  them, but also 1 for "a red circle", 0 for "a yellow star" and "a circle": not used.
  Also measured, not used: a margin calibrated on the null queries under the same selection
  (each null query, left out of the others, takes its own top k; m such that they keep 0.5 of
  10 on average; a result kept when its margin exceeds m), null queries of 1-6 words with
  common short words mixed in. 128 of them: m 0.14-0.20 depending on their seed, colour/shape
  queries keep 6.8-9.0, random strings 0.3-1.0, "a circle" 0-2, "a square" 0-4. 1024: m
  0.052-0.059 for three seeds, colour/shape 8.9-9.2, random strings (80, two seeds) 0.2-0.7
  and none all ten, English nonsense 0.8-0.9 (was 5.3), but "a square" 0: on its own ten
  squares it does not beat the best of 1024 random strings by m (of 1024 1-4-word ones, not at
  all). Taking the 10th-best null score instead of the best: the same picture ("circle" or "a
  square" 0, one random string 10).

Cuts apply to the top k, in this order; the kept results are ranked again from 1.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipsearch_onnx.errors import UsageError

if TYPE_CHECKING:
    from clipsearch_onnx.encoder import Encoder
    from clipsearch_onnx.manifest import Manifest
    from clipsearch_onnx.search import Result, Searcher

AUTO = "auto"
NULL_QUERIES = 128
NULL_SEED = 0


@dataclass(frozen=True)
class Cut:
    min_score: float | None = None
    min_prob: float | None = None
    auto: bool = False

    def check(self, manifest: Manifest) -> None:
        """A UsageError for a cut this model cannot make (--min-prob on CLIP)."""
        if self.min_prob is not None and not manifest.has_probability:
            raise UsageError(
                f"--min-prob needs a SigLIP model, whose scores are match probabilities; this "
                f"index's model is {manifest.family.upper()}, whose scores only compare within "
                "one query: use --min-score or --cutoff auto"
            )

    def apply(
        self, results: list[Result], vector: np.ndarray, searcher: Searcher
    ) -> tuple[list[Result], dict[str, Any]]:
        """(the results kept, ranked again; what was cut and why, for the JSON's `cut`)."""
        info: dict[str, Any] = {"before": len(results)}
        kept = results
        if self.min_score is not None:
            info["min_score"] = self.min_score
            # against the score as shown (6 decimals): `--min-score` of a score seen keeps it
            kept = [r for r in kept if round(r.score, 6) >= self.min_score]
        if self.min_prob is not None:
            info["min_prob"] = self.min_prob
            kept = [r for r in kept if r.prob is not None and round(r.prob, 6) >= self.min_prob]
        if self.auto and kept:
            info["auto"] = {"null_queries": NULL_QUERIES}
            kept = stand_out(kept, searcher)
        elif self.auto:
            info["auto"] = {"null_queries": NULL_QUERIES}
        info["kept"] = len(kept)
        return [replace(r, rank=n) for n, r in enumerate(kept, 1)], info


def null_texts(n: int = NULL_QUERIES, seed: int = NULL_SEED) -> list[str]:
    """`n` strings of one to four random lower-case "words": queries that mean nothing."""
    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))

    return [" ".join(word() for _ in range(rng.randint(1, 4))) for _ in range(n)]


def null_vectors(encoder: Encoder) -> np.ndarray:
    """The null queries' unit vectors [NULL_QUERIES, D] for this model, from the cache folder
    when an earlier run stored them (they are a function of the model's files alone)."""
    from clipsearch_onnx import paths

    key = f"{encoder.manifest.fingerprint[:16]}-{encoder.precision}-{NULL_SEED}-{NULL_QUERIES}"
    cached = paths.cache_dir() / "null-queries" / f"{key}.npy"
    try:
        vectors = np.load(cached, allow_pickle=False)
        if vectors.shape == (NULL_QUERIES, encoder.dim):
            return vectors.astype(np.float32)
    except (OSError, ValueError):
        pass
    vectors = encoder.embed_texts(null_texts())
    _store(cached, vectors)
    return vectors


def _store(path: Path, vectors: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.npy")
        np.save(tmp, vectors)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache: embed them again next time


def stand_out(results: list[Result], searcher: Searcher) -> list[Result]:
    """The results that score higher on their image than every null query does."""
    nulls = null_vectors(searcher.encoder)
    kept = []
    for result in results:
        image = searcher.vector_of(result.id)
        if image is None:
            continue
        if result.score > float((nulls @ image).max()):
            kept.append(result)
    return kept
