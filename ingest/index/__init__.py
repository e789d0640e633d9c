"""Crash-safe, versioned hybrid index: FAISS vectors and BM25 per version directory, rows in SQLite.

Every commit writes a complete new version directory (FAISS file and BM25 snapshot together) and
then flips ``meta.current_version`` in the same SQLite transaction that writes the rows, so a
kill -9 at any instant leaves either the old version or the new one, never a mix, and the dense
and lexical sides always describe the same chunks. Readers only load a directory the committed
pointer names, verify its checksums, and memory-map it, so a restart does not hold the index
twice. FAISS itself is behind ``ingest.index.structures``, the only module that imports it; the
commit protocol lives in ``ingest.writer``, the directory format in ``ingest.versions``, BM25
in ``ingest.lexical``.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ingest.docstore import DocStore, DocumentRecord, Hit, QuarantineRecord
from ingest.index.structures import (
    auto_nprobe,
    clone,
    empty_flat,
    index_ids,
    is_ivf,
    read_index,
    restructure,
    structure_of,
)
from ingest.lexical import LexicalIndex
from ingest.settings import IndexSettings
from ingest.versions import VersionFileError, read_manifest, verify_files, vname

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

KINDS = ("flat", "ivf", "auto")
INDEX_FILE = "index.faiss"
LEXICAL_DIR = "lexical"


class IndexStoreError(Exception):
    """Base class for index store failures the caller may want to report or act on."""


class EmbeddingMismatch(IndexStoreError):
    """The store was built with another embedding model or dim; mixing them gives garbage."""


class IndexCorrupt(IndexStoreError):
    """A version on disk does not match its manifest or the SQLite record of it."""


class WriterBusy(IndexStoreError):
    """Another writer holds the lock; there is one writer at a time per store."""


def __getattr__(name: str) -> Any:
    """Resolve ``Writer`` on first use so ``from ingest.index import Writer`` keeps working.

    ``ingest.writer`` imports this module, so importing it here at module level would be a cycle.
    """
    if name == "Writer":
        from ingest.writer import Writer

        return Writer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


Ranked = tuple[list[int], list[float]]  # chunk ids best first, and their scores


@dataclass(frozen=True)
class _Snapshot:
    """One committed version as loaded: FAISS and BM25 always travel together."""

    index: Any
    lexical: LexicalIndex
    version: int
    path: Path | None  # the FAISS file, when ``index`` is memory-mapped from it


class VectorIndex:
    """One store directory: the loaded version (FAISS + BM25) for search plus the SQLite docstore."""

    def __init__(self, root: Path, store: DocStore, cfg: dict[str, Any]) -> None:
        self._root = root
        self._versions = root / "versions"
        self._store = store
        self._embed_model: str = cfg["embed_model"]
        self._dim: int = cfg["dim"]
        self._kind: str = cfg["kind"]
        self._nlist: int = cfg["nlist"]
        self._nprobe: int | None = cfg["nprobe"]
        self._approx_above: int = cfg["approx_above"]
        self._keep: int = cfg["keep_versions"]
        self._mmap: bool = cfg["mmap"]
        # Searches take the snapshot under this lock and search outside it; a commit builds a
        # new snapshot and swaps the pointer, so an in-flight search keeps the old one.
        self._swap = threading.Lock()
        self._snap = _Snapshot(self._empty(), LexicalIndex.empty(), 0, None)

    @classmethod
    def open(
        cls,
        root: Path,
        *,
        embed_model: str,
        dim: int,
        kind: str = "flat",
        nlist: int = 4096,
        nprobe: int | None = None,
        approx_above: int = 100_000,
        keep_versions: int = 3,
        mmap: bool = True,
    ) -> VectorIndex:
        """Open (creating if missing) the store at ``root`` and load its current version.

        ``kind`` is a policy, applied at each commit: flat (exact), ivf (``nlist`` lists once
        there are enough vectors to train them) or auto (exact up to ``approx_above`` vectors,
        then IVF with lists growing with the collection). Changing it takes effect at the next
        commit; nothing needs re-embedding.
        """
        if kind not in KINDS:
            raise ValueError(f"index kind must be one of {KINDS}, not {kind!r}")
        if dim <= 0 or nlist <= 0 or (nprobe or 1) <= 0 or keep_versions < 1 or approx_above < 1:
            raise ValueError(
                "dim, nlist, nprobe, approx_above must be positive and keep_versions >= 1"
            )
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
            cfg = {
                "embed_model": embed_model,
                "dim": dim,
                "kind": kind,
                "nlist": nlist,
                "nprobe": nprobe,
                "approx_above": approx_above,
                "keep_versions": keep_versions,
                "mmap": mmap,
            }
            self = cls(root, store, cfg)
            self._load_current()
            return self
        except BaseException:
            store.close()
            raise

    @classmethod
    def from_settings(
        cls,
        root: Path,
        settings: IndexSettings,
        *,
        embed_model: str,
        dim: int,
        keep_versions: int | None = None,
    ) -> VectorIndex:
        """``open`` with the structure options of an ``index`` settings section."""
        return cls.open(
            root,
            embed_model=embed_model,
            dim=dim,
            kind=settings.kind,
            nlist=settings.nlist,
            nprobe=settings.nprobe,
            approx_above=settings.approx_above,
            keep_versions=keep_versions or settings.keep_versions,
            mmap=settings.mmap,
        )

    @classmethod
    def recorded_identity(cls, root: Path) -> tuple[str, int] | None:
        """The embedding model and dimension a store at ``root`` was built with (None: no store).

        Lets read-only commands (``ragtune docs``) open a store without loading the encoder.
        """
        if not (Path(root) / "docstore.sqlite").is_file():
            return None
        store = DocStore(Path(root) / "docstore.sqlite")
        try:
            meta = store.meta()
        finally:
            store.close()
        if "embed_model" not in meta:
            return None
        return str(meta["embed_model"]), int(meta["dim"])

    @property
    def version(self) -> int:
        return self._snap.version

    # --- loading --------------------------------------------------------------------------

    def _empty(self) -> Any:
        return empty_flat(self._dim)

    def _install(self, snap: _Snapshot) -> None:
        if is_ivf(snap.index):
            snap.index.nprobe = min(self._nprobe_for(snap.index.nlist), snap.index.nlist)
        with self._swap:
            # Versions only grow; a refresh racing an in-process commit must not step back.
            if snap.version >= self._snap.version:
                self._snap = snap

    def _nprobe_for(self, nlist: int) -> int:
        # Recall at a fixed nprobe falls as lists multiply, so the default grows with them.
        return self._nprobe or auto_nprobe(nlist)

    def _load_current(self) -> None:
        # A writer may commit (and garbage-collect old versions) between reading the pointer and
        # opening the directory; re-reading the pointer tells a race from real damage.
        for _ in range(5):
            version = self._store.current_version()
            try:
                self._install(self._load_version(version))
                return
            except FileNotFoundError as exc:
                if self._store.current_version() == version:
                    raise IndexCorrupt(f"current version {version} is missing: {exc}") from exc
        raise IndexStoreError("the current version kept changing while loading; retry")

    def _load_version(self, version: int) -> _Snapshot:
        if version == 0:
            return _Snapshot(self._empty(), LexicalIndex.empty(), 0, None)
        vdir = self._versions / vname(version)
        manifest = read_manifest(vdir)
        path = vdir / INDEX_FILE
        try:
            verify_files(vdir, manifest)
        except VersionFileError as exc:
            raise IndexCorrupt(str(exc)) from exc
        if manifest["files"][INDEX_FILE]["sha256"] != self._store.version_sha256(version):
            raise IndexCorrupt(f"{path}: sha256 differs from the docstore's record of it")
        try:
            index = read_index(path, mmap=self._mmap, structure=manifest.get("structure", "flat"))
        except RuntimeError as exc:
            raise IndexCorrupt(f"{path}: FAISS cannot read it: {exc}") from exc
        if index.d != self._dim or index.ntotal != manifest["ntotal"]:
            raise IndexCorrupt(
                f"{path}: dim {index.d} / ntotal {index.ntotal} differ from manifest "
                f"(dim {self._dim}, ntotal {manifest['ntotal']})"
            )
        if any(name.startswith(LEXICAL_DIR + "/") for name in manifest["files"]):
            try:
                lexical = LexicalIndex.load(vdir / LEXICAL_DIR, mmap=self._mmap)
            except (ValueError, OSError) as exc:
                raise IndexCorrupt(f"{vdir / LEXICAL_DIR}: {exc}") from exc
        else:  # written before BM25 existed: rebuild it from the rows (the next commit saves it)
            lexical = LexicalIndex.empty().updated(
                np.zeros(0, np.int64), self._store.lexical_texts()
            )
        if len(lexical) != index.ntotal:
            raise IndexCorrupt(f"{vdir}: BM25 holds {len(lexical)} chunks, FAISS {index.ntotal}")
        return _Snapshot(index, lexical, version, path if self._mmap else None)

    def refresh(self) -> bool:
        """Pick up a version another process committed; cheap (one SELECT) when there is none."""
        if self._store.current_version() == self._snap.version:
            return False
        self._load_current()
        return True

    # --- reads ----------------------------------------------------------------------------

    def _current(self) -> _Snapshot:
        with self._swap:
            return self._snap

    def hits(self, ids: list[int], scores: list[float]) -> list[Hit]:
        """Rows for ranked chunk ids, in order, each with its score.

        Rows deleted since this reader loaded its version are skipped, so a query may return
        fewer than k hits until refresh(); that beats citing text that no longer exists.
        """
        rows = self._store.hits([i for i in ids if i >= 0])
        return [replace(rows[i], score=s) for i, s in zip(ids, scores, strict=True) if i in rows]

    def search_ids(self, queries: np.ndarray, k: int) -> list[Ranked]:
        """Top-``k`` (chunk ids, inner products) per query; rows are fetched by ``hits()``.

        Queries are L2-normalized by the caller. Fusion ranks ids first, so only the chunks
        that survive it cost a SQLite read.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self._dim:
            raise ValueError(f"queries must have shape (n, {self._dim}), got {q.shape}")
        index = self._current().index
        if k <= 0 or index.ntotal == 0 or len(q) == 0:
            return [([], []) for _ in range(len(q))]
        scores, ids = index.search(q, min(k, int(index.ntotal)))
        return [
            ([i for i in irow if i >= 0], [s for i, s in zip(irow, srow, strict=True) if i >= 0])
            for irow, srow in zip(ids.tolist(), scores.tolist(), strict=True)
        ]

    def search_lexical_ids(self, queries: list[str], k: int) -> list[Ranked]:
        """Top-``k`` (chunk ids, BM25 scores) per query, only chunks sharing a term with it."""
        lexical = self._current().lexical
        found = [lexical.search(q, k) for q in queries]
        return [(ids.tolist(), scores.tolist()) for ids, scores in found]

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-``k`` chunks per query by inner product (queries are L2-normalized by the caller)."""
        return [self.hits(*ranked) for ranked in self.search_ids(queries, k)]

    def search_lexical(self, queries: list[str], k: int) -> list[list[Hit]]:
        """Top-``k`` chunks per query by BM25 (only chunks sharing a term with the query)."""
        return [self.hits(*ranked) for ranked in self.search_lexical_ids(queries, k)]

    def vectors(self, ids: list[int]) -> np.ndarray:
        """Stored vectors of ``ids`` (rows of NaN for ids not in the loaded version)."""
        index = self._current().index
        if not ids:
            return np.zeros((0, self._dim), np.float32)
        with contextlib.suppress(RuntimeError):  # one call when every id is there (the usual)
            return np.asarray(index.reconstruct_batch(np.asarray(ids, np.int64)), np.float32)
        out = np.full((len(ids), self._dim), np.nan, np.float32)
        for row, i in enumerate(ids):
            # RuntimeError: deleted by a commit this reader has not loaded yet.
            with contextlib.suppress(RuntimeError):
                out[row] = index.reconstruct(int(i))
        return out

    def verify(self) -> list[str]:
        """Disagreements between FAISS, BM25 and SQLite about the loaded version (empty: none).

        Compares the chunk ids each side holds; meant for tests and ``ragtune docs --check``,
        not the request path (it reads every id).
        """
        snap = self._current()
        if snap.version != self._store.current_version():
            return [f"loaded version {snap.version} is not the committed one; refresh first"]
        sides = {
            "FAISS": index_ids(snap.index),
            "BM25": np.sort(np.asarray(snap.lexical.ids, np.int64)),
            "SQLite": self._store.chunk_ids(),
        }
        problems = []
        for name, ids in sides.items():
            if ids.size != np.unique(ids).size:
                problems.append(f"{name} holds duplicate chunk ids")
            if name != "SQLite" and not np.array_equal(np.unique(ids), sides["SQLite"]):
                extra = np.setdiff1d(ids, sides["SQLite"]).size
                missing = np.setdiff1d(sides["SQLite"], ids).size
                problems.append(f"{name}: {extra} ids not in SQLite, {missing} SQLite ids missing")
        return problems

    def documents(self, prefix: str = "") -> list[DocumentRecord]:
        return self._store.documents(prefix)

    def document(self, source: str) -> DocumentRecord | None:
        return self._store.document(source)

    def source_of_doc_id(self, doc_id: str) -> str | None:
        return self._store.source_of_doc_id(doc_id)

    def chunks(self, doc_id: str) -> list[Hit]:
        return self._store.chunks(doc_id)

    def quarantined(self) -> list[QuarantineRecord]:
        return self._store.quarantined()

    def quarantine_entry(self, source: str) -> QuarantineRecord | None:
        return self._store.quarantine_entry(source)

    def stats(self) -> dict[str, Any]:
        """Counts for health and eval reports; ``structure`` says whether IVF is trained yet."""
        n_docs, n_chunks, n_quarantined = self._store.counts()
        snap = self._current()
        out = {
            "version": snap.version,
            "documents": n_docs,
            "chunks": n_chunks,
            "ntotal": int(snap.index.ntotal),
            "lexical": len(snap.lexical),
            "quarantined": n_quarantined,
            "embed_model": self._embed_model,
            "dim": self._dim,
            "kind": self._kind,
            "structure": structure_of(snap.index),
            "memory_mapped": snap.path is not None,
        }
        if is_ivf(snap.index):
            out.update(nlist=int(snap.index.nlist), nprobe=int(snap.index.nprobe))
        return out

    # --- writing --------------------------------------------------------------------------

    def writer(self, timeout: float = 30.0) -> Writer:
        """Take the store's single writer lock and start from the latest committed version."""
        from ingest.writer import Writer  # local: ingest.writer imports this module

        return Writer.acquire(self, timeout)

    def _private_copy(self, snap: _Snapshot) -> Any:
        """A writable copy of ``snap``'s index; in-flight searches keep the original.

        A memory-mapped index is read-only (a clone would share its mapping), so it is read
        again from its file; an in-memory one is cloned.
        """
        if snap.path is not None:
            return read_index(snap.path, mmap=False)
        return clone(snap.index)

    def _restructure(self, index: Any) -> Any:
        """Make the index structure follow the kind policy (see ``open``) for its current size."""
        return restructure(
            index, self._kind, nlist=self._nlist, approx_above=self._approx_above, dim=self._dim
        )

    def close(self) -> None:
        self._store.close()
