"""``VectorIndex``: one store directory, its loaded version for search plus the SQLite docstore.

Readers only load a version the committed pointer names, verify its checksums, and memory-map
its segments, so a restart does not hold the index twice; a refresh loads only the segments it
does not hold yet. The writer (``ingest.writer``) builds on the
public snapshot/publish methods at the end of the class; this module does not know it exists.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ingest.docstore import DocStore, DocumentRecord, Hit, QuarantineRecord
from ingest.index.errors import EmbeddingMismatch, IndexCorrupt, IndexStoreError
from ingest.index.ids import present
from ingest.index.policy import auto_nprobe
from ingest.index.reader import IndexReader, Ranked
from ingest.index.segment import LiveSegment, Segment
from ingest.index.snapshot import Snapshot
from ingest.index.structures import index_ids, is_ivf
from ingest.settings import IndexSettings
from ingest.versions import (
    MANIFEST_FILE,
    collect_garbage,
    collect_quantizers,
    collect_segments,
    merging,
    read_manifest,
    sha256_file,
    vname,
    write_dir,
)

__all__ = ["VectorIndex"]


class VectorIndex(IndexReader):
    """One store directory: the loaded version (FAISS + BM25) for search plus the SQLite docstore.

    Open it with ``VectorIndex.open``.
    """

    def __init__(
        self, root: Path, store: DocStore, settings: IndexSettings, embed_model: str, dim: int
    ) -> None:
        self._root = root
        self._versions = root / "versions"
        self._segments = root / "segments"
        self._quantizers = root / "quantizers"
        self._store = store
        self._settings = settings
        self._embed_model = embed_model
        self._dim = dim
        # Searches take the snapshot under this lock and search outside it; a commit builds a
        # new snapshot and swaps the pointer, so an in-flight search keeps the old one.
        self._swap = threading.Lock()
        self._snap = Snapshot.empty()

    @classmethod
    def open(
        cls, root: Path, settings: IndexSettings, *, embed_model: str, dim: int
    ) -> VectorIndex:
        """Open (creating if missing) the store at ``root`` and load its current version.

        The one way to open a store: every structure option comes from ``settings`` (the
        ``index`` section), so the CLI, the service, the eval and the tests cannot disagree on
        a default. ``settings.kind`` is a policy applied at each commit; changing it takes
        effect at the next commit and nothing needs re-embedding. ``embed_model`` and ``dim``
        must match what the store was built with.
        """
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        root = Path(root)
        (root / "versions").mkdir(parents=True, exist_ok=True)
        (root / "segments").mkdir(exist_ok=True)
        (root / "quantizers").mkdir(exist_ok=True)
        store = DocStore(root / "docstore.sqlite")
        try:
            meta = store.ensure_meta(embed_model, dim, settings.kind)
            if meta["embed_model"] != embed_model or int(meta["dim"]) != dim:
                raise EmbeddingMismatch(
                    f"index at {root} was built with embed_model={meta['embed_model']!r} "
                    f"dim={meta['dim']}, but embed_model={embed_model!r} dim={dim} was "
                    "requested; vectors from different models are not comparable. Configure "
                    "the recorded model again, or use a new index directory and re-ingest."
                )
            self = cls(root, store, settings, embed_model, dim)
            self._load_current()
            return self
        except BaseException:
            store.close()
            raise

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

    def _load_current(self) -> None:
        # A writer may commit (and garbage-collect old versions) between reading the pointer and
        # opening the directory; re-reading the pointer tells a race from real damage.
        for _ in range(5):
            version = self._store.current_version()
            try:
                self.publish(self._load_version(version))
                return
            except FileNotFoundError as exc:
                if self._store.current_version() == version:
                    raise IndexCorrupt(f"current version {version} is missing: {exc}") from exc
        raise IndexStoreError("the current version kept changing while loading; retry")

    def _load_version(self, version: int) -> Snapshot:
        if version == 0:
            return Snapshot.empty()
        return Snapshot.load(
            self._versions / vname(version),
            version,
            segments_dir=self._segments,
            quantizers_dir=self._quantizers,
            loaded={s.segment.name: s.segment for s in self.snapshot().segments},
            dim=self._dim,
            mmap=self._settings.mmap,
            sha256=self._store.version_sha256(version),
            lexical_texts=self._store.lexical_texts,
        )

    def refresh(self) -> bool:
        """Pick up a version another process committed; cheap (one SELECT) when there is none."""
        if self._store.current_version() == self._snap.version:
            return False
        self._load_current()
        return True

    # --- reads (the IndexReader protocol) -------------------------------------------------

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
        snap = self.snapshot()
        if k <= 0 or snap.ntotal == 0 or len(q) == 0:
            return [([], []) for _ in range(len(q))]
        return snap.search(q, k)

    def search_lexical_ids(self, queries: list[str], k: int) -> list[Ranked]:
        """Top-``k`` (chunk ids, BM25 scores) per query, only chunks sharing a term with it."""
        snap = self.snapshot()
        found = [snap.search_lexical(q, k) for q in queries]
        return [(ids.tolist(), scores.tolist()) for ids, scores in found]

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-``k`` chunks per query by inner product (queries are L2-normalized by the caller)."""
        return [self.hits(*ranked) for ranked in self.search_ids(queries, k)]

    def search_lexical(self, queries: list[str], k: int) -> list[list[Hit]]:
        """Top-``k`` chunks per query by BM25 (only chunks sharing a term with the query)."""
        return [self.hits(*ranked) for ranked in self.search_lexical_ids(queries, k)]

    def vectors(self, ids: list[int]) -> np.ndarray:
        """Stored vectors of ``ids`` (rows of NaN for ids not in the loaded version)."""
        return self.snapshot().vectors(ids, self._dim)

    def documents(self, prefix: str = "") -> list[DocumentRecord]:
        return self._store.documents(prefix)

    def document(self, source: str) -> DocumentRecord | None:
        return self._store.document(source)

    def chunks(self, doc_id: str) -> list[Hit]:
        return self._store.chunks(doc_id)

    def around(self, chunk_id: int, before: int, after: int) -> list[Hit]:
        return self._store.around(chunk_id, before, after)

    def quarantined(self) -> list[QuarantineRecord]:
        return self._store.quarantined()

    # --- operator reads -------------------------------------------------------------------

    def source_of_doc_id(self, doc_id: str) -> str | None:
        return self._store.source_of_doc_id(doc_id)

    def quarantine_entry(self, source: str) -> QuarantineRecord | None:
        return self._store.quarantine_entry(source)

    def verify(self) -> list[str]:
        """Disagreements between FAISS, BM25 and SQLite about the loaded version (empty: none).

        Compares the chunk ids each side holds; meant for tests and ``ragtune docs --check``,
        not the request path (it reads every id).
        """
        snap = self.snapshot()
        if snap.version != self._store.current_version():
            return [f"loaded version {snap.version} is not the committed one; refresh first"]
        sides = {
            "FAISS": _live(snap, lambda s: index_ids(s.segment.index)),
            "BM25": _live(snap, lambda s: np.asarray(s.postings.ids, np.int64)),
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

    def stats(self) -> dict[str, Any]:
        """Counts for health and eval reports; ``structure`` says whether IVF is trained yet."""
        n_docs, n_chunks, n_quarantined = self._store.counts()
        snap = self.snapshot()
        out = {
            "version": snap.version,
            "documents": n_docs,
            "chunks": n_chunks,
            "ntotal": snap.ntotal,
            "lexical": sum(s.postings.count for s in snap.segments),
            "segments": len(snap.segments),
            "tombstones": int(snap.tombstones.size),
            "quarantined": n_quarantined,
            "embed_model": self._embed_model,
            "dim": self._dim,
            "kind": self._settings.kind,
            "structure": snap.structure,
            "memory_mapped": any(s.segment.path is not None for s in snap.segments),
        }
        ivf = [s.segment.index for s in snap.segments if is_ivf(s.segment.index)]
        if ivf:  # the largest approximate segment's lists
            big = max(ivf, key=lambda i: int(i.ntotal))
            out.update(nlist=int(big.nlist), nprobe=int(big.nprobe))
        return out

    # --- snapshot/publish: what the writer builds on --------------------------------------

    @property
    def root(self) -> Path:
        """The store directory (the writer keeps its lock file here)."""
        return self._root

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def settings(self) -> IndexSettings:
        """The structure policy new versions are built with."""
        return self._settings

    @property
    def docstore(self) -> DocStore:
        """The SQLite rows; the writer commits a version's rows and pointer through it."""
        return self._store

    def snapshot(self) -> Snapshot:
        """The loaded version; it never changes under the caller (commits swap in a new one)."""
        with self._swap:
            return self._snap

    def write_segment(self, segment: Segment) -> Segment:
        """Write ``segment``'s directory (if it is not there yet); returns it as written.

        A segment is only ever written whole under a name nothing else uses: a commit's under the
        writer lock, a merge's under the merge lock.
        """
        directory = self._segments / segment.name
        if not (directory / MANIFEST_FILE).is_file():
            shared = segment.quantizer
            manifest = segment.manifest(shared.write(self._quantizers) if shared else None)
            write_dir(self._segments, segment.name, segment.save, manifest, stage="segment")
        return segment if segment.path is not None else replace(segment, path=directory)

    def write_version(
        self, snap: Snapshot, *, created_at: float, n_documents: int, n_chunks: int
    ) -> str:
        """Write ``snap`` as a version directory; returns its manifest's sha256.

        Segments not on disk yet (the commit's new one, a store's first commit after the
        single-file format) are written first. Nothing reads the version until the docstore's
        pointer names it (the writer's next step).
        """
        segments = []
        for s in snap.segments:
            self.write_segment(s.segment)
            digest, _ = sha256_file(self._segments / s.segment.name / MANIFEST_FILE)
            segments.append({"name": s.segment.name, "sha256": digest, "rows": len(s)})
        manifest = {
            "version": snap.version,
            "created_at": created_at,
            "embed_model": self._embed_model,
            "dim": self._dim,
            "index_kind": self._settings.kind,
            "structure": snap.structure,
            "ntotal": snap.ntotal,
            "n_documents": n_documents,
            "n_chunks": n_chunks,
            "segments": segments,
        }
        return write_dir(self._versions, vname(snap.version), snap.save, manifest)

    def publish(self, snap: Snapshot) -> None:
        """Serve ``snap`` from now on; a snapshot older than the loaded one is ignored."""
        shared = [s.segment.quantizer.index for s in snap.segments if s.segment.quantizer]
        for index in [s.segment.index for s in snap.segments] + shared:
            if is_ivf(index):
                # Recall at a fixed nprobe falls as lists multiply, so the default grows with them.
                # A segment on the collection's quantizer is searched in the lists the quantizer
                # picks, as many as one index of the whole collection would search.
                index.nprobe = min(self._settings.nprobe or auto_nprobe(index.nlist), index.nlist)
        with self._swap:
            # Versions only grow; a refresh racing an in-process commit must not step back.
            if snap.version >= self._snap.version:
                self._snap = snap

    def collect_garbage(self) -> None:
        """Drop versions beyond ``settings.keep_versions`` and leftovers of crashed commits.

        Only safe under the writer lock.
        """
        collect_garbage(self._versions, self.version, self._settings.keep_versions)
        referenced = set(self.snapshot().names())
        for vdir in self._versions.glob("v*"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                referenced |= {s["name"] for s in read_manifest(vdir).get("segments", [])}
        busy = merging(self._root)
        collect_segments(self._segments, referenced, spare_merges=busy)
        if not busy:  # else the merge may have written a quantizer no segment names yet
            collect_quantizers(self._quantizers, self._segments)

    def close(self) -> None:
        self._store.close()


def _live(snap: Snapshot, ids_of: Callable[[LiveSegment], np.ndarray]) -> np.ndarray:
    """The ids one side (FAISS or BM25) holds for the live rows of every segment."""
    parts = []
    for s in snap.segments:
        ids = ids_of(s)
        parts.append(ids[~present(s.dead_ids, ids)] if s.dead_ids.size else ids)
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
