"""FAISS structures of the index: building, reading, searching and inspecting them.

The only module that imports faiss; ``ingest.index.policy`` decides what is built here. Exact
search is ``IndexIDMap2(IndexFlatIP)``; the approximate one is IVF with 8-bit scalar-quantized
codes, chosen by bench/scale.py. Every IVF segment of a collection is a copy of one trained, empty
IVF (the collection's quantizer: coarse centroids and 8-bit ranges) holding its own lists, so a
query is assigned to lists once for all of them, and merges copy lists instead of retraining.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ingest.index.ids import present
from ingest.index.policy import QUANTIZER_POINTS_PER_LIST, TRAIN_POINTS_PER_LIST


def empty_flat(dim: int) -> Any:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def is_ivf(index: Any) -> bool:
    return isinstance(index, faiss.IndexIVF)


def structure_of(index: Any) -> str:
    return "ivf" if isinstance(index, faiss.IndexIVF) else "flat"


def write_index(index: Any, path: Path) -> None:
    faiss.write_index(index, str(path))


# The type stubs shipped with faiss lack DirectMap; its enum values are stable.
_NO_MAP, _HASHTABLE = 0, 2


def read_index(path: Path, *, mmap: bool, structure: str = "flat") -> Any:
    """Read a FAISS file; memory-mapped, its vectors stay in the page cache (shared, evictable).

    Flat codes and IVF lists take different mmap flags (FAISS refuses the combination).
    """
    flags = 0
    if mmap:
        flags = faiss.IO_FLAG_MMAP if structure == "ivf" else faiss.IO_FLAG_MMAP_IFC
    index = faiss.read_index(str(path), flags)
    if isinstance(index, faiss.IndexIVF) and index.direct_map.type == _NO_MAP:
        index.set_direct_map_type(_HASHTABLE)  # stores from before reconstruct
    return index


def flat_of(xb: np.ndarray, ids: np.ndarray) -> Any:
    """An exact index of ``xb`` with ``ids``."""
    flat = empty_flat(int(xb.shape[1]))
    if len(ids):
        flat.add_with_ids(np.ascontiguousarray(xb, np.float32), np.asarray(ids, np.int64))
    return flat


def train_quantizer(xb: np.ndarray, nlist: int) -> Any:
    """A trained, empty IVF of ``nlist`` lists: the collection quantizer IVF segments copy.

    IVF takes ids directly; wrapping it in IndexIDMap2 would break removals, because IDMap
    assumes the sub-index compacts ids and IVF does not. 8-bit scalar quantization: a quarter
    of the memory of float vectors, faster scans, < 0.01 recall. Its per-dimension ranges are
    trained here too, once, so every segment's codes mean the same and merges can copy them.
    """
    dim = xb.shape[1]
    ivf = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(dim),
        dim,
        nlist,
        faiss.ScalarQuantizer.QT_8bit,
        faiss.METRIC_INNER_PRODUCT,
    )
    # k-means on every vector of a large collection costs minutes on 2 cores for no better lists.
    ivf.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
    ivf.cp.min_points_per_centroid = QUANTIZER_POINTS_PER_LIST  # what the policy allows
    ivf.train(np.ascontiguousarray(xb, np.float32))
    return ivf


def ivf_from(
    quantizer: Any,
    lists: Sequence[tuple[Any, np.ndarray]],
    adds: tuple[np.ndarray, np.ndarray] | None,
) -> Any:
    """An IVF on ``quantizer``: the lists of each (index, sorted dead ids) in ``lists``, + ``adds``.

    The indexes in ``lists`` must be built on ``quantizer`` (``same_quantizer``): their codes
    are copied list by list, live rows only, without decoding or assigning anything. ``adds``
    (vectors, ids) are assigned and encoded. Nothing is trained.
    """
    ivf: Any = faiss.clone_index(quantizer)
    ivf.set_direct_map_type(_NO_MAP)  # rebuilt below, over the copied lists too
    invlists: Any = ivf.invlists
    code_size = int(ivf.code_size)
    for index, dead in lists:
        src: Any = index.invlists
        for list_no in range(int(index.nlist)):
            n = int(src.list_size(list_no))
            if not n:
                continue
            ids = faiss.rev_swig_ptr(src.get_ids(list_no), n)
            codes = faiss.rev_swig_ptr(src.get_codes(list_no), n * code_size).reshape(n, -1)
            if dead.size:
                keep = ~present(dead, ids)
                ids, codes = ids[keep], codes[keep]
            if ids.size:
                ids, codes = np.ascontiguousarray(ids), np.ascontiguousarray(codes)
                invlists.add_entries(list_no, ids.size, faiss.swig_ptr(ids), faiss.swig_ptr(codes))
                ivf.ntotal += int(ids.size)
    if adds is not None and len(adds[1]):
        xb, ids = adds
        ivf.add_with_ids(np.ascontiguousarray(xb, np.float32), np.asarray(ids, np.int64))
    ivf.set_direct_map_type(_HASHTABLE)  # reconstruct by id, for MMR and scores
    return ivf


def same_quantizer(index: Any, quantizer: Any) -> bool:
    """Whether IVF ``index`` was built on ``quantizer``: the same centroids and 8-bit ranges."""
    if not isinstance(index, faiss.IndexIVFScalarQuantizer) or index.nlist != quantizer.nlist:
        return False
    mine, theirs = (faiss.downcast_index(i.quantizer) for i in (index, quantizer))
    return bool(
        np.array_equal(mine.reconstruct_n(0, index.nlist), theirs.reconstruct_n(0, index.nlist))
        and np.array_equal(
            faiss.vector_to_array(index.sq.trained), faiss.vector_to_array(quantizer.sq.trained)
        )
    )


def assign(quantizer: Any, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``quantizer.nprobe`` nearest lists of each query: (inner products, list numbers)."""
    return quantizer.quantizer.search(q, int(quantizer.nprobe))  # type: ignore[no-any-return]


def index_ids(index: Any) -> np.ndarray:
    """Every id an index holds (sorted)."""
    if isinstance(index, faiss.IndexIVF):
        invlists: Any = index.invlists
        parts = [
            faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
            for i in range(index.nlist)
            if invlists.list_size(i)
        ]
        ids = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    else:
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    return np.sort(ids)


class Excluding:
    """Searches of one FAISS index that skip ``dead`` ids (rows deleted after it was written).

    The selector runs inside FAISS's scan, so ``k`` live results come back without over-fetching.
    IVF takes its list count from the search parameters, which default to 1, so ``nprobe`` is
    read from the index (the store sets it at publish) and passed explicitly. An IVF built on the
    collection's quantizer is searched in the lists the caller assigned the query to once for
    every segment (``assign``), which is what makes 8 segments cost what one index costs.
    """

    def __init__(self, index: Any, dead: np.ndarray) -> None:
        self.index = index
        # FAISS keeps raw pointers: the array and both selectors must live as long as this does.
        self._dead = np.ascontiguousarray(dead, dtype=np.int64)
        self._inner = faiss.IDSelectorBatch(self._dead.size, faiss.swig_ptr(self._dead))
        self._not = faiss.IDSelectorNot(self._inner) if self._dead.size else None

    def search(
        self, q: np.ndarray, k: int, assigned: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(self.index, faiss.IndexIVF):
            params: Any = faiss.SearchParametersIVF()
            params.nprobe = int(self.index.nprobe if assigned is None else assigned[1].shape[1])
        elif self._not is None:
            return self.index.search(q, k)  # type: ignore[no-any-return]
        else:
            params = faiss.SearchParameters()
        if self._not is not None:
            params.sel = self._not
        if assigned is None:
            return self.index.search(q, k, params=params)  # type: ignore[no-any-return]
        # The Python wrapper of search_preassigned takes no parameters (so no selector): call
        # the C++ method. The lists' inner products are needed: codes are residuals from them.
        dq = np.ascontiguousarray(assigned[0], np.float32)
        iq = np.ascontiguousarray(assigned[1], np.int64)
        distances = np.empty((len(q), k), np.float32)
        labels = np.empty((len(q), k), np.int64)
        self.index.search_preassigned_c(
            len(q),
            faiss.swig_ptr(q),
            k,
            faiss.swig_ptr(iq),
            faiss.swig_ptr(dq),
            faiss.swig_ptr(distances),
            faiss.swig_ptr(labels),
            False,
            params,
        )
        return distances, labels


def reconstruct(index: Any, ids: np.ndarray) -> np.ndarray:
    """Stored vectors of ``ids``, all of which the index holds."""
    if not len(ids):
        return np.zeros((0, index.d), np.float32)
    return np.asarray(index.reconstruct_batch(np.asarray(ids, np.int64)), np.float32)
