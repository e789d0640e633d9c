"""Chunk id sets as sorted arrays: what segments, tombstones and FAISS lists are checked against."""

from __future__ import annotations

import numpy as np

__all__ = ["present"]


def present(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Which of ``ids`` are in ``sorted_ids`` (bool per id): O(len(ids) log n), as a lookup."""
    if not sorted_ids.size or not ids.size:
        return np.zeros(ids.size, bool)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
    return np.asarray(sorted_ids[pos] == ids)
