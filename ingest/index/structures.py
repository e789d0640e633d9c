"""FAISS structures of the index: building, changing, reading and inspecting them.

Split from ``ingest.index`` (the store: versions, snapshots, search) so each stays readable; the
two together are the only place that imports faiss. Exact search is ``IndexIDMap2(IndexFlatIP)``;
the approximate one is IVF with 8-bit scalar-quantized codes, chosen by bench/scale.py.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import faiss
import numpy as np

# FAISS warns below 39 training points per centroid; below that an IVF is no better than flat.
IVF_POINTS_PER_LIST = 39
TRAIN_POINTS_PER_LIST = 64


def empty_flat(dim: int) -> Any:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def is_ivf(index: Any) -> bool:
    return isinstance(index, faiss.IndexIVF)


def clone(index: Any) -> Any:
    return faiss.clone_index(index)


def structure_of(index: Any) -> str:
    return "ivf" if isinstance(index, faiss.IndexIVF) else "flat"


def selector(index: Any, ids: np.ndarray) -> Any:
    # IVF keeps a hash table id -> slot (for reconstruct), which only takes an explicit array;
    # IDMap2 scans every id, so it wants the hashed batch selector.
    if isinstance(index, faiss.IndexIVF):
        return faiss.IDSelectorArray(ids.size, faiss.swig_ptr(ids))
    return faiss.IDSelectorBatch(ids.size, faiss.swig_ptr(ids))


def apply_changes(
    index: Any, removes: np.ndarray, adds: tuple[np.ndarray, np.ndarray] | None
) -> None:
    """Remove the ``removes`` ids, then add ``adds`` (vectors, ids), in place.

    Only ever called on a private copy, so readers never see a half-applied commit.
    """
    if removes.size:
        index.remove_ids(selector(index, removes))
    if adds is not None:
        vectors, ids = adds
        index.add_with_ids(vectors, ids)


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


def auto_nlist(n: int) -> int:
    """IVF lists for ``n`` vectors: the power of two nearest 4*sqrt(n), >= 39 points per list."""
    target = 4 * math.sqrt(max(n, 1))
    nlist = 1 << max(0, round(math.log2(target)))
    while nlist > 1 and nlist * IVF_POINTS_PER_LIST > n:
        nlist //= 2
    return nlist


def auto_nprobe(nlist: int) -> int:
    """Lists to search: 5*sqrt(nlist) (320 of 4096, 160 of 1024).

    bench/scale.py measured recall@10 0.950 at 4*sqrt (256 of 4096 lists, 1M vectors) and 0.969
    (128 of 1024, 100k); the extra quarter is margin, at ~1 ms more per query at 1M.
    """
    return min(nlist, math.ceil(5 * math.sqrt(nlist)))


def train_ivf(xb: np.ndarray, ids: np.ndarray, nlist: int) -> Any:
    # IVF takes ids directly; wrapping it in IndexIDMap2 would break remove_ids, because
    # IDMap assumes the sub-index compacts ids on removal and IVF does not. 8-bit scalar
    # quantization: a quarter of the memory of float vectors, faster scans, < 0.01 recall.
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
    ivf.train(xb)
    ivf.set_direct_map_type(_HASHTABLE)  # reconstruct by id, for MMR and scores
    ivf.add_with_ids(xb, ids)
    return ivf


def all_vectors(index: Any) -> tuple[np.ndarray, np.ndarray]:
    """Every (vector, id) of an index, for retraining or converting it."""
    if isinstance(index, faiss.IndexIVF):
        ids = index_ids(index)
        return index.reconstruct_batch(ids), ids
    xb = faiss.downcast_index(index.index).reconstruct_n(0, index.ntotal)
    return xb, faiss.vector_to_array(index.id_map).astype(np.int64)


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


def restructure(index: Any, kind: str, *, nlist: int, approx_above: int, dim: int) -> Any:
    """``index`` in the structure the ``kind`` policy wants at its size (maybe itself).

    flat: exact always. ivf: ``nlist`` lists once there are enough vectors to train them. auto:
    exact up to ``approx_above`` vectors, IVF above with ``auto_nlist`` lists, retrained when the
    right list count has doubled (4x the vectors), exact again below half the threshold.
    """
    n = int(index.ntotal)
    structure = structure_of(index)
    if kind == "flat" or (kind == "auto" and n < approx_above // 2):
        if structure == "flat":
            return index
        xb, ids = all_vectors(index)
        flat = empty_flat(dim)
        flat.add_with_ids(xb, ids)
        return flat
    if kind == "ivf":
        if structure == "ivf" or n < IVF_POINTS_PER_LIST * nlist:
            return index
        return train_ivf(*all_vectors(index), nlist)
    if structure == "flat" and n < approx_above:
        return index
    target = auto_nlist(n)
    if structure == "ivf" and target < 2 * index.nlist:
        return index
    return train_ivf(*all_vectors(index), target)


class Excluding:
    """Searches of one FAISS index that skip ``dead`` ids (rows deleted after it was written).

    The selector runs inside FAISS's scan, so ``k`` live results come back without over-fetching.
    IVF takes its list count from the search parameters, which default to 1, so ``nprobe`` is
    read from the index (the store sets it at publish) and passed explicitly.
    """

    def __init__(self, index: Any, dead: np.ndarray) -> None:
        self.index = index
        # FAISS keeps raw pointers: the array and both selectors must live as long as this does.
        self._dead = np.ascontiguousarray(dead, dtype=np.int64)
        self._inner = faiss.IDSelectorBatch(self._dead.size, faiss.swig_ptr(self._dead))
        self._not = faiss.IDSelectorNot(self._inner) if self._dead.size else None

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(self.index, faiss.IndexIVF):
            params: Any = faiss.SearchParametersIVF()
            params.nprobe = int(self.index.nprobe)
        elif self._not is None:
            return self.index.search(q, k)  # type: ignore[no-any-return]
        else:
            params = faiss.SearchParameters()
        if self._not is not None:
            params.sel = self._not
        return self.index.search(q, k, params=params)  # type: ignore[no-any-return]


def built(xb: np.ndarray, ids: np.ndarray, kind: str, *, nlist: int, approx_above: int) -> Any:
    """A new index of ``xb`` with ``ids``, in the structure ``kind`` wants at its size."""
    flat = empty_flat(int(xb.shape[1]))
    if len(ids):
        flat.add_with_ids(np.ascontiguousarray(xb, np.float32), np.asarray(ids, np.int64))
    return restructure(flat, kind, nlist=nlist, approx_above=approx_above, dim=int(xb.shape[1]))


def reconstruct(index: Any, ids: np.ndarray) -> np.ndarray:
    """Stored vectors of ``ids``, all of which the index holds."""
    if not len(ids):
        return np.zeros((0, index.d), np.float32)
    return np.asarray(index.reconstruct_batch(np.asarray(ids, np.int64)), np.float32)
