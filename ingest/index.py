"""Crash-safe, versioned vector index: FAISS vectors per version directory, rows in SQLite.

Every commit writes a complete new version directory and then flips ``meta.current_version`` in
the same SQLite transaction that writes the rows, so a kill -9 at any instant leaves either the
old version or the new one, never a mix. Readers only ever load a directory the committed
pointer names, and verify its checksum, so they cannot see a half-written index. This is the only
module that imports faiss; the SQLite side lives in ``ingest.docstore``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import faiss
import numpy as np

from ingest.docstore import (
    CommitBatch,
    DocStore,
    DocumentRecord,
    Hit,
    PendingPut,
    QuarantineRecord,
)
from ingest.faults import fault_point
from ingest.model import Chunk

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
_VERSION_DIR = re.compile(r"^v(\d{8})$")


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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _structure(index: Any) -> str:
    return "ivf" if isinstance(index, faiss.IndexIVF) else "flat"


def _acquire_lock(path: Path, timeout: float) -> int:
    """Take the exclusive writer lock, polling so the wait is bounded and the holder is named."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise WriterBusy(
                    f"could not take the writer lock {path} within {timeout:.1f}s: held by pid "
                    f"{holder}; wait for that ingest to finish or stop it"
                ) from None
            time.sleep(0.05)
    # flock dies with the process, so a kill -9 never leaves a stale lock; the pid is only
    # there for the error message above.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


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
        fd = _acquire_lock(self._root / "LOCK", timeout)
        try:
            self.refresh()
            self._collect_garbage()  # orphans of a writer killed mid-commit
            return Writer(self, fd)
        except BaseException:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise

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

    def _write_version_dir(self, version: int, data: bytes, manifest: dict[str, Any]) -> None:
        final = self._versions / _vname(version)
        tmp = self._versions / (_vname(version) + ".tmp")
        for stale in (tmp, final):  # left by a crashed commit; never current (we hold the lock)
            if stale.exists():
                shutil.rmtree(stale)
        tmp.mkdir()
        _write_durably(tmp / INDEX_FILE, data)
        _write_durably(tmp / MANIFEST_FILE, json.dumps(manifest, indent=2).encode())
        _fsync_dir(tmp)
        fault_point("commit-tmp-written")
        os.rename(tmp, final)
        _fsync_dir(self._versions)
        fault_point("commit-renamed")

    def _collect_garbage(self) -> None:
        """Drop old versions beyond ``keep_versions`` and anything a crashed commit left behind.

        Only called under the writer lock, so no commit is writing here; readers that already
        loaded a removed version keep it in memory, and a reader racing the pointer retries.
        """
        current = self._version
        dirs: dict[int, Path] = {}
        for entry in self._versions.iterdir():
            match = _VERSION_DIR.match(entry.name)
            if entry.name.endswith(".tmp"):
                shutil.rmtree(entry, ignore_errors=True)
            elif match:
                dirs[int(match.group(1))] = entry
        kept = sorted(v for v in dirs if v <= current)[-self._keep :]
        for v, entry in dirs.items():
            if v > current or (v not in kept and v != current):
                shutil.rmtree(entry, ignore_errors=True)

    def close(self) -> None:
        self._store.close()


class Writer:
    """Pending changes for one commit, held under the store's writer lock.

    Changes are only recorded here and applied to a copy of the index at ``commit()``, so an
    exit without commit (or an exception) discards them without touching what readers use.
    """

    def __init__(self, owner: VectorIndex, lock_fd: int) -> None:
        self._owner = owner
        self._store = owner._store
        self._fd: int | None = lock_fd
        self._next_id = int(self._store.meta()["next_chunk_id"])
        self._reset()

    def _reset(self) -> None:
        self._puts: dict[str, PendingPut] = {}
        self._removes: set[str] = set()
        self._quarantines: dict[str, tuple[str | None, str, float]] = {}
        self._ops = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Discard anything uncommitted and release the lock."""
        self._reset()
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _check(self) -> None:
        if self._fd is None:
            raise IndexStoreError("this writer is closed; take a new one with index.writer()")

    @property
    def pending(self) -> int:
        return self._ops

    def put(self, doc: DocumentRecord, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Stage ``doc`` (identified by its source), replacing any earlier version of it."""
        self._check()
        dim = self._owner._dim
        vecs = np.array(vectors, dtype=np.float32, copy=True)  # caller may reuse its buffer
        if vecs.shape != (len(chunks), dim):
            raise ValueError(f"vectors must have shape ({len(chunks)}, {dim}), got {vecs.shape}")
        if not np.isfinite(vecs).all():
            raise ValueError(f"{doc.source}: vectors contain NaN or inf")
        owner = self._store.source_of_doc_id(doc.doc_id)
        clash = [p.doc.source for p in self._puts.values() if p.doc.doc_id == doc.doc_id]
        if owner not in (None, doc.source) and owner not in self._removes:
            clash.append(owner)
        if any(s != doc.source for s in clash):
            raise IndexStoreError(f"doc_id {doc.doc_id!r} of {doc.source} is also used by {clash}")
        ids = np.arange(self._next_id, self._next_id + len(chunks), dtype=np.int64)
        self._next_id += len(chunks)  # ids are never reused, so stale search hits cannot alias
        self._removes.discard(doc.source)
        self._quarantines.pop(doc.source, None)
        self._puts[doc.source] = PendingPut(doc, tuple(chunks), vecs, ids)
        self._ops += 1

    def remove(self, source: str) -> bool:
        """Stage removal of ``source`` (document or quarantine record); returns whether one existed."""
        self._check()
        committed = source not in self._removes and (
            self._store.document(source) is not None
            or self._store.quarantine_entry(source) is not None
        )
        pending = self._puts.pop(source, None) is not None
        pending = self._quarantines.pop(source, None) is not None or pending
        existed = pending or committed
        if committed:
            self._removes.add(source)  # also forgets its quarantine row
        if existed:
            self._ops += 1
        return existed

    def quarantine(self, source: str, content_hash: str | None, reason: str) -> None:
        """Record why ``source`` failed; its last good version, if any, stays searchable."""
        self._check()
        self._quarantines[source] = (content_hash, reason, time.time())
        self._ops += 1

    def commit(self) -> int:
        """Publish pending changes as a new version (see the module docstring for the protocol)."""
        self._check()
        owner, store = self._owner, self._store
        if self._ops == 0:
            return owner.version
        if store.current_version() != owner.version:  # cannot happen while we hold the lock
            raise IndexStoreError("store moved under the writer lock; is LOCK on a shared FS?")
        version = owner.version + 1
        touched = list(self._puts) + sorted(self._removes)
        n_docs, n_chunks, _ = store.counts()
        n_replaced = sum(store.document(s) is not None for s in touched)
        stale = np.array(store.chunk_ids_of_sources(touched), dtype=np.int64)

        # 1. Copy-on-write: readers in this process keep searching owner._index meanwhile.
        with owner._swap:
            index = faiss.clone_index(owner._index)
        if stale.size:
            index.remove_ids(faiss.IDSelectorBatch(stale.size, faiss.swig_ptr(stale)))
        if self._puts:
            puts = list(self._puts.values())
            index.add_with_ids(
                np.concatenate([p.vectors for p in puts]), np.concatenate([p.ids for p in puts])
            )
        index = owner._maybe_train_ivf(index)
        n_docs += len(self._puts) - n_replaced
        n_chunks += sum(len(p.chunks) for p in self._puts.values()) - int(stale.size)
        if index.ntotal != n_chunks:  # would mean FAISS and SQLite drifted apart: stop here
            raise IndexCorrupt(f"FAISS would hold {index.ntotal} vectors for {n_chunks} chunks")

        # 2. Write the version directory (tmp, fsync, rename, fsync parent).
        data = faiss.serialize_index(index).tobytes()
        digest = hashlib.sha256(data).hexdigest()
        created_at = time.time()
        manifest = {
            "version": version,
            "created_at": created_at,
            "embed_model": owner._embed_model,
            "dim": owner._dim,
            "index_kind": owner._kind,
            "structure": _structure(index),
            "ntotal": int(index.ntotal),
            "n_documents": n_docs,
            "n_chunks": n_chunks,
            "files": {INDEX_FILE: {"sha256": digest, "bytes": len(data)}},
        }
        owner._write_version_dir(version, data, manifest)

        # 3. The switch: rows and current_version in one SQLite transaction.
        batch = CommitBatch(
            version=version,
            created_at=created_at,
            puts=list(self._puts.values()),
            removes=sorted(self._removes),
            quarantines=dict(self._quarantines),
            next_chunk_id=self._next_id,
            ntotal=int(index.ntotal),
            sha256=digest,
        )
        store.apply(batch, lambda: fault_point("commit-sqlite-open"))
        owner._install(index, version)
        self._reset()

        # 4. Garbage-collect; a failure here costs disk space, never correctness.
        owner._collect_garbage()
        return version
