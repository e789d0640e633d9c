"""Crash-safe, versioned vector index: FAISS vectors per version directory, rows in SQLite.

Every commit writes a complete new version directory and then flips ``meta.current_version`` in
the same SQLite transaction that writes the rows, so a kill -9 at any instant leaves either the
old version or the new one, never a mix. Readers only ever load a directory the committed
pointer names, and verify its checksum, so they cannot see a half-written index. This is the only
module that imports faiss; the commit protocol lives in ``ingest.writer`` (which reaches FAISS
only through the helpers here) and the SQLite side in ``ingest.docstore``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from ingest.docstore import DocStore, DocumentRecord, Hit, QuarantineRecord

if TYPE_CHECKING:
    from ingest.writer import Writer

__all__ = [
    "DocumentRecord",
    "EmbeddingMismatch",
    "Hit",
    "IndexCorrupt",
    "IndexStoreError",
    "QuarantineRecord",
    "VectorIndex",
    "WriterBusy",
]

# FAISS warns below 39 training points per centroid; below that an IVF is no better than flat.
IVF_POINTS_PER_LIST = 39
KINDS = ("flat", "ivf")
INDEX_FILE = "index.faiss"
MANIFEST_FILE = "manifest.json"


class IndexStoreError(Exception):
    """Base class for index store failures the caller may want to report or act on."""


class EmbeddingMismatch(IndexStoreError):
    """The store was built with another embedding model or dim; mixing them gives garbage."""


class IndexCorrupt(IndexStoreError):
    """A version on disk does not match its manifest or the SQLite record of it."""


class WriterBusy(IndexStoreError):
    """Another writer holds the lock; there is one writer at a time per store."""


def _vname(version: int) -> str:
    return f"v{version:08d}"


def _structure(index: Any) -> str:
    return "ivf" if isinstance(index, faiss.IndexIVF) else "flat"


def _apply_changes(
    index: Any, removes: np.ndarray, adds: tuple[np.ndarray, np.ndarray] | None
) -> None:
    """Remove the ``removes`` ids, then add ``adds`` (vectors, ids), in place.

    Only ever called on a private clone, so readers never see a half-applied commit.
    """
    if removes.size:
        index.remove_ids(faiss.IDSelectorBatch(removes.size, faiss.swig_ptr(removes)))
    if adds is not None:
        vectors, ids = adds
        index.add_with_ids(vectors, ids)


def _serialize(index: Any) -> bytes:
    return faiss.serialize_index(index).tobytes()


def __getattr__(name: str) -> Any:
    """Resolve ``Writer`` on first use so ``from ingest.index import Writer`` keeps working.

    ``ingest.writer`` imports this module, so importing it here at module level would be a cycle.
    """
    if name == "Writer":
        from ingest.writer import Writer

        return Writer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class VectorIndex:
    """One store directory: the loaded FAISS version for search plus the SQLite docstore."""

    def __init__(self, root: Path, store: DocStore, cfg: dict[str, Any]) -> None:
        self._root = root
        self._versions = root / "versions"
        self._store = store
        self._embed_model: str = cfg["embed_model"]
        self._dim: int = cfg["dim"]
        self._kind: str = cfg["kind"]
        self._nlist: int = cfg["nlist"]
        self._nprobe: int = cfg["nprobe"]
        self._keep: int = cfg["keep_versions"]
        # Searches take the index pointer under this lock and search outside it; a commit builds
        # a new index object and swaps the pointer, so an in-flight search keeps the old one.
        self._swap = threading.Lock()
        self._index: Any = self._empty()
        self._version = 0

    @classmethod
    def open(
        cls,
        root: Path,
        *,
        embed_model: str,
        dim: int,
        kind: str = "flat",
        nlist: int = 256,
        nprobe: int = 16,
        keep_versions: int = 3,
    ) -> VectorIndex:
        """Open (creating if missing) the store at ``root`` and load its current version."""
        if kind not in KINDS:
            raise ValueError(f"index kind must be one of {KINDS}, not {kind!r}")
        if dim <= 0 or nlist <= 0 or nprobe <= 0 or keep_versions < 1:
            raise ValueError("dim, nlist, nprobe must be positive and keep_versions >= 1")
        root = Path(root)
        (root / "versions").mkdir(parents=True, exist_ok=True)
        store = DocStore(root / "docstore.sqlite")
        try:
            meta = store.ensure_meta(embed_model, dim, kind)
            if meta["embed_model"] != embed_model or int(meta["dim"]) != dim:
                raise EmbeddingMismatch(
                    f"index at {root} was built with embed_model={meta['embed_model']!r} "
                    f"dim={meta['dim']}, but embed_model={embed_model!r} dim={dim} was "
                    "requested; vectors from different models are not comparable. Configure "
                    "the recorded model again, or use a new index directory and re-ingest."
                )
            if meta["index_kind"] != kind:
                raise IndexStoreError(
                    f"index at {root} is kind {meta['index_kind']!r}, not {kind!r}; changing the "
                    "kind needs a new index directory and a re-ingest"
                )
            cfg = {
                "embed_model": embed_model,
                "dim": dim,
                "kind": kind,
                "nlist": nlist,
                "nprobe": nprobe,
                "keep_versions": keep_versions,
            }
            self = cls(root, store, cfg)
            self._load_current()
            return self
        except BaseException:
            store.close()
            raise

    @property
    def version(self) -> int:
        return self._version

    # --- loading --------------------------------------------------------------------------

    def _empty(self) -> Any:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self._dim))

    def _install(self, index: Any, version: int) -> None:
        if isinstance(index, faiss.IndexIVF):
            index.nprobe = self._nprobe
        with self._swap:
            # Versions only grow; a refresh racing an in-process commit must not step back.
            if version >= self._version:
                self._index, self._version = index, version

    def _load_current(self) -> None:
        # A writer may commit (and garbage-collect old versions) between reading the pointer and
        # opening the directory; re-reading the pointer tells a race from real damage.
        for _ in range(5):
            version = self._store.current_version()
            try:
                self._install(self._load_version(version), version)
                return
            except FileNotFoundError as exc:
                if self._store.current_version() == version:
                    raise IndexCorrupt(f"current version {version} is missing: {exc}") from exc
        raise IndexStoreError("the current version kept changing while loading; retry")

    def _load_version(self, version: int) -> Any:
        if version == 0:
            return self._empty()
        vdir = self._versions / _vname(version)
        manifest = json.loads((vdir / MANIFEST_FILE).read_text(encoding="utf-8"))
        path = vdir / INDEX_FILE
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        expected = manifest["files"][INDEX_FILE]
        recorded = self._store.version_sha256(version)
        if digest != expected["sha256"] or len(data) != expected["bytes"] or digest != recorded:
            raise IndexCorrupt(f"{path}: sha256 {digest} does not match manifest or docstore")
        try:
            # Already the concrete class; wrapping it in downcast_index would leave the owning
            # proxy to the garbage collector and the returned one dangling.
            index = faiss.deserialize_index(np.frombuffer(data, np.uint8))
        except RuntimeError as exc:
            raise IndexCorrupt(f"{path}: FAISS cannot read it: {exc}") from exc
        if index.d != self._dim or index.ntotal != manifest["ntotal"]:
            raise IndexCorrupt(
                f"{path}: dim {index.d} / ntotal {index.ntotal} differ from manifest "
                f"(dim {self._dim}, ntotal {manifest['ntotal']})"
            )
        return index

    def refresh(self) -> bool:
        """Pick up a version another process committed; cheap (one SELECT) when there is none."""
        if self._store.current_version() == self._version:
            return False
        self._load_current()
        return True

    # --- reads ----------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-``k`` chunks per query by inner product (queries are L2-normalized by the caller).

        Rows deleted since this reader loaded its version are skipped, so a query may return
        fewer than ``k`` hits until ``refresh()``; that beats citing text that no longer exists.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self._dim:
            raise ValueError(f"queries must have shape (n, {self._dim}), got {q.shape}")
        with self._swap:
            index = self._index
        if k <= 0 or index.ntotal == 0 or len(q) == 0:
            return [[] for _ in range(len(q))]
        scores, ids = index.search(q, min(k, int(index.ntotal)))
        rows = self._store.hits([i for i in ids.ravel().tolist() if i >= 0])
        return [
            [replace(rows[i], score=s) for s, i in zip(srow, irow, strict=True) if i in rows]
            for srow, irow in zip(scores.tolist(), ids.tolist(), strict=True)
        ]

    def documents(self) -> list[DocumentRecord]:
        return self._store.documents()

    def document(self, source: str) -> DocumentRecord | None:
        return self._store.document(source)

    def chunks(self, doc_id: str) -> list[Hit]:
        return self._store.chunks(doc_id)

    def quarantined(self) -> list[QuarantineRecord]:
        return self._store.quarantined()

    def quarantine_entry(self, source: str) -> QuarantineRecord | None:
        return self._store.quarantine_entry(source)

    def stats(self) -> dict[str, Any]:
        """Counts for health and eval reports; ``structure`` says whether IVF is trained yet."""
        n_docs, n_chunks, n_quarantined = self._store.counts()
        with self._swap:
            index, version = self._index, self._version
        return {
            "version": version,
            "documents": n_docs,
            "chunks": n_chunks,
            "ntotal": int(index.ntotal),
            "quarantined": n_quarantined,
            "embed_model": self._embed_model,
            "dim": self._dim,
            "kind": self._kind,
            "structure": _structure(index),
        }

    # --- writing --------------------------------------------------------------------------

    def writer(self, timeout: float = 30.0) -> Writer:
        """Take the store's single writer lock and start from the latest committed version."""
        from ingest.writer import Writer  # local: ingest.writer imports this module

        return Writer.acquire(self, timeout)

    def _clone_current(self) -> Any:
        """Copy the installed index for a commit to change; in-flight searches keep the original."""
        with self._swap:
            return faiss.clone_index(self._index)

    def _maybe_train_ivf(self, index: Any) -> Any:
        """Switch flat -> IVF once there are enough vectors to train it well (exact until then)."""
        if self._kind != "ivf" or _structure(index) == "ivf":
            return index
        if index.ntotal < IVF_POINTS_PER_LIST * self._nlist:
            return index
        xb = faiss.downcast_index(index.index).reconstruct_n(0, index.ntotal)
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        # IVF takes ids directly; wrapping it in IndexIDMap2 would break remove_ids, because
        # IDMap assumes the sub-index compacts ids on removal and IVF does not.
        ivf = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(self._dim), self._dim, self._nlist, faiss.METRIC_INNER_PRODUCT
        )
        ivf.train(xb)
        ivf.add_with_ids(xb, ids)
        return ivf

    def close(self) -> None:
        self._store.close()
