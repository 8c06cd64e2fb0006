"""A layout: what every segment of a generation is encoded for, trained once.

    flat      one list holding the float32 vectors themselves (faiss IVF1,Flat): exact search
    ivf-sq8   nlist lists (4 sqrt(N)), residuals to the list centroid in 8 bits per dimension
    ivf-pq    nlist lists, residuals product-quantised (m bytes per vector; the smallest index)

A layout folder holds `shell.faiss` (an empty, trained faiss IndexIVF: the coarse quantiser with
every list centroid, and the codec), `top.npy` + `bounds.npy` (the top level of the two-level
quantiser, see `coarse`) and `layout.json`. It is written in a temporary folder renamed into
place. A layout is re-trained only when the collection outgrows it (`outgrown`) or on request.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch_onnx import coarse
from clipsearch_onnx.shards import fsync_dir

KINDS = ("flat", "ivf-sq8", "ivf-pq")
DEFAULT_IVF_THRESHOLD = 200_000  # auto: flat below this many vectors, else ivf-sq8
SHELL, TOP, BOUNDS, INFO = "shell.faiss", "top.npy", "bounds.npy", "layout.json"
FILES = (SHELL, TOP, BOUNDS, INFO)
CODEC_SAMPLE = 16384  # vectors the codec (SQ ranges, PQ codebooks) is trained on


def choose_type(kind: str, count: int, threshold: int) -> str:
    if kind == "auto":
        return "flat" if count < threshold else "ivf-sq8"
    if kind not in KINDS:
        raise ValueError(f"unknown index type {kind!r} (choose from auto, {', '.join(KINDS)})")
    return kind


def lists_for(kind: str, count: int) -> int:
    return 1 if kind == "flat" else coarse.lists_for(count)


def outgrown(info: dict[str, Any], kind: str, count: int) -> bool:
    """Whether a collection of `count` vectors needs a new layout instead of `info`'s: another
    kind, or a tier up (nlist would double) AND at least twice the vectors it was trained for
    (so that crossing a tier boundary by a few files does not re-train)."""
    if info["kind"] != kind:
        return True
    if kind == "flat":
        return False
    grown = coarse.tier(coarse.lists_for(count)) > int(info["tier"])
    return grown and count >= 2 * int(info["trained_for"])


def _shell(kind: str, dim: int, centroids: np.ndarray) -> Any:
    import faiss

    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
    nlist, ip = len(centroids), faiss.METRIC_INNER_PRODUCT
    index: Any
    if kind == "flat":
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, ip)
    elif kind == "ivf-sq8":
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, ip
        )
    elif kind == "ivf-pq":
        m = next(m for m in (64, 48, 32, 16, 8, 4, 2, 1) if dim % m == 0)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, ip)
    else:
        raise ValueError(f"unknown index type {kind!r} (choose from {', '.join(KINDS)})")
    index.own_fields = True
    quantizer.this.disown()  # type: ignore[attr-defined]
    return index


def read_info(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / INFO).read_text(encoding="utf-8"))


@dataclass
class Layout:
    path: Path
    info: dict[str, Any]  # kind, nlist, dim, tier, trained_for
    shell: Any  # faiss IndexIVF, empty and trained
    coarse: coarse.Coarse

    @property
    def kind(self) -> str:
        return str(self.info["kind"])

    @property
    def code_size(self) -> int:
        return int(self.shell.code_size)

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(list of each row, codes uint8 [n, code_size]) for float32 rows `x`."""
        import faiss

        x = np.ascontiguousarray(x, dtype=np.float32)
        lists = self.coarse.assign(x)
        codes = np.empty((len(x), self.code_size), dtype=np.uint8)
        self.shell.encode_vectors(
            len(x), faiss.swig_ptr(x), faiss.swig_ptr(lists), faiss.swig_ptr(codes), False
        )
        return lists, codes

    @classmethod
    def load(cls, path: Path) -> Layout:
        import faiss

        path = Path(path)
        info = read_info(path)
        shell = faiss.read_index(str(path / SHELL))
        nlist, dim = int(info["nlist"]), int(info["dim"])
        quantizer = faiss.downcast_index(shell.quantizer)  # type: ignore[attr-defined]
        centroids = quantizer.reconstruct_n(0, nlist).reshape(nlist, dim)
        top = np.load(path / TOP, allow_pickle=False)
        bounds = np.load(path / BOUNDS, allow_pickle=False)
        return cls(path, info, shell, coarse.Coarse(centroids, top, bounds))


def train(
    dest: Path, kind: str, sample: np.ndarray, nlist: int, count: int, generation: int
) -> Layout:
    """Trains a layout on `sample` (float32 [S, D], uniform over the collection of `count`
    vectors; may be a memmap) for `generation` and writes it to `dest`."""
    import shutil

    import faiss

    dim = int(sample.shape[1])
    trained = coarse.train(sample, nlist)
    shell = _shell(kind, dim, trained.centroids)
    if kind != "flat":
        rows = np.linspace(0, len(sample) - 1, min(len(sample), CODEC_SAMPLE)).astype(np.int64)
        x = np.ascontiguousarray(sample[np.unique(rows)], dtype=np.float32)
        assign = trained.assign(x)
        residuals = np.ascontiguousarray(x - trained.centroids[assign], dtype=np.float32)
        shell.train_encoder(len(x), faiss.swig_ptr(residuals), faiss.swig_ptr(assign))
    shell.is_trained = True
    info = {
        "kind": kind,
        "nlist": int(nlist),
        "dim": dim,
        "tier": coarse.tier(nlist),
        "trained_for": int(count),
        "generation": int(generation),  # the publication it was trained for
        "code_size": int(shell.code_size),
    }
    tmp = dest.with_name(f".tmp-{dest.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    faiss.write_index(shell, str(tmp / SHELL))
    for name, array in ((TOP, trained.top), (BOUNDS, trained.bounds)):
        with open(tmp / name, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
    (tmp / INFO).write_text(json.dumps(info), encoding="utf-8")
    for name in (SHELL, TOP, BOUNDS, INFO):
        with open(tmp / name, "rb+") as fh:
            os.fsync(fh.fileno())
    fsync_dir(tmp)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    return Layout(dest, info, shell, trained)
