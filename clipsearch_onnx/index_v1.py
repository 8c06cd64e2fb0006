"""Reading an index published before segments (index.json format 1: one `vectors.G.faiss` plus
`ids.G.npy`), so searches keep working until the next index run publishes the new format."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from clipsearch_onnx.errors import IndexCorrupt
from clipsearch_onnx.generations import check_file


class LegacyIndex:
    def __init__(self, index_dir: Path, meta: dict[str, Any], index: Any, ids: np.ndarray):
        self.index_dir, self.meta, self.faiss_index, self.ids = index_dir, meta, index, ids

    @classmethod
    def open(cls, index_dir: Path, meta: dict[str, Any], verify_full: bool) -> LegacyIndex:
        import faiss

        for _attempt in range(5):
            try:
                files = meta["files"]
                vec_path = index_dir / files["vectors"]["name"]
                ids_path = index_dir / files["ids"]["name"]
                check_file(vec_path, files["vectors"], full=verify_full)
                check_file(ids_path, files["ids"], full=verify_full)
                flag = faiss.IO_FLAG_MMAP_IFC if meta["type"] == "flat" else faiss.IO_FLAG_MMAP
                index = faiss.read_index(str(vec_path), flag | faiss.IO_FLAG_READ_ONLY)
                ids = np.load(ids_path, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:
                time.sleep(0.05)
                continue
            except (KeyError, TypeError) as exc:
                raise IndexCorrupt(f"the index.json in {index_dir} is malformed ({exc!r})") from exc
            except (RuntimeError, ValueError, OSError) as exc:
                raise IndexCorrupt(f"cannot open the index in {index_dir}: {exc}") from exc
            if index.ntotal != len(ids) or index.ntotal != meta["count"]:
                raise IndexCorrupt(f"the index in {index_dir} is inconsistent (vector count)")
            if meta["type"] != "flat":
                lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)  # type: ignore[arg-type]
                if hasattr(lists, "prefetch_nthread"):
                    lists.prefetch_nthread = 0
            return cls(index_dir, meta, index, ids)
        raise IndexCorrupt(f"the index in {index_dir} keeps changing under us; try again")

    @property
    def count(self) -> int:
        return int(self.faiss_index.ntotal)

    @property
    def nlist(self) -> int:
        return int(getattr(self.faiss_index, "nlist", 1))

    @property
    def nprobe(self) -> int:
        return int(self.meta.get("nprobe") or 1)

    def close(self) -> None:
        pass

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        nprobe: int | None = None,
        allowed_ids: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(int(k), max(1, self.count)))
        is_ivf = self.meta["type"] != "flat"
        params: Any = faiss.SearchParametersIVF() if is_ivf else faiss.SearchParameters()
        if is_ivf:
            params.nprobe = max(1, min(int(nprobe or self.nprobe), self.nlist))
        keep = None
        if allowed_ids is not None:
            # rows of ids.G.npy are in catalog id order, so an id's position is a lookup away
            allowed = np.unique(np.asarray(allowed_ids, dtype=np.int64))
            at = np.searchsorted(self.ids, allowed)
            at = at[at < len(self.ids)]
            keep = np.ascontiguousarray(at[np.isin(np.asarray(self.ids[at]), allowed)])
            params.sel = faiss.IDSelectorBatch(len(keep), faiss.swig_ptr(keep))
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1 if len(queries) < 16 else threads)
        try:
            scores, pos = self.faiss_index.search(queries, k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)
        ids = np.where(pos >= 0, np.asarray(self.ids)[np.clip(pos, 0, None)], -1)
        return scores, ids
