"""One version: its segments, the chunk ids deleted from them, and searches that fan out over both.

A snapshot is immutable once published: a commit derives the next one (its new chunks as one new
segment, its deletions as tombstones) and the store swaps its pointer, so in-flight searches keep
the one they took. Segments are shared between snapshots, never copied. The version directory's
file names live here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ingest.index.errors import IndexCorrupt
from ingest.index.ids import present
from ingest.index.quantizer import Quantizer
from ingest.index.reader import Ranked
from ingest.index.segment import INDEX_FILE, LiveSegment, Segment, finest
from ingest.index.structures import index_ids, read_index, reconstruct
from ingest.lexical import LexicalSegment, bm25_search
from ingest.settings import IndexSettings
from ingest.versions import (
    MANIFEST_FILE,
    VersionFileError,
    read_manifest,
    sha256_file,
    verify_files,
    vname,
)

__all__ = ["TOMBSTONES_FILE", "Snapshot"]

TOMBSTONES_FILE = "tombstones.npy"


@dataclass(frozen=True)
class Snapshot:
    """One version as loaded or built: segments in commit order, FAISS and BM25 in each."""

    version: int
    segments: tuple[LiveSegment, ...] = ()
    tombstones: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def empty(cls) -> Snapshot:
        return cls(0)

    @property
    def ntotal(self) -> int:
        """Live chunks."""
        return sum(s.live_count for s in self.segments)

    @property
    def structure(self) -> str:
        """flat (exact) or ivf (approximate) when every segment agrees, else mixed."""
        kinds = {s.segment.structure for s in self.segments} or {"flat"}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    @property
    def quantizer(self) -> Quantizer | None:
        """The collection's quantizer, which new IVF segments are built on: the finest in use."""
        return finest(s.segment.quantizer for s in self.segments)

    def names(self) -> list[str]:
        return [s.segment.name for s in self.segments]

    def live_ids(self) -> np.ndarray:
        """Every live chunk id (sorted)."""
        parts = [s.live_ids() for s in self.segments]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    # --- searching -------------------------------------------------------------------------

    def search(self, q: np.ndarray, k: int) -> list[Ranked]:
        """Top-``k`` (chunk ids, inner products) per query over the live rows of every segment."""
        live = [s for s in self.segments if s.live_count]
        # The query is assigned to lists once per quantizer (one per collection, but for IVF
        # segments from before quantizers were shared), and each of its segments scans its own
        # part of those lists: the work of one index of their size, in as many pieces.
        shared = {
            s.segment.quantizer.name: s.segment.quantizer for s in live if s.segment.quantizer
        }
        assigned = {name: quantizer.assign(q) for name, quantizer in shared.items()}

        def one(s: LiveSegment) -> tuple[np.ndarray, np.ndarray]:
            lists = assigned[s.segment.quantizer.name] if s.segment.quantizer else None
            return s.searcher.search(q, min(k, s.live_count), lists)

        # Segments are searched side by side (FAISS releases the GIL): a single query in IVF
        # runs on one core, so the fan-out is what lets it use the others.
        found = list(_fanout(len(live)).map(one, live))
        out: list[Ranked] = []
        for row in range(len(q)):
            scores = np.concatenate([f[0][row] for f in found]) if found else np.zeros(0)
            ids = np.concatenate([f[1][row] for f in found]) if found else np.zeros(0, np.int64)
            keep = ids >= 0
            scores, ids = scores[keep], ids[keep]
            order = np.lexsort((ids, -scores))[:k]  # ties to the lower id, whatever the segment
            out.append((ids[order].tolist(), scores[order].tolist()))
        return out

    def search_lexical(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        return bm25_search([s.postings for s in self.segments], query, k)

    def vectors(self, ids: Sequence[int], dim: int) -> np.ndarray:
        """Stored vectors of ``ids`` (rows of NaN for ids that are not live here)."""
        want = np.asarray(ids, np.int64)
        out = np.full((want.size, dim), np.nan, np.float32)
        order = np.argsort(want, kind="stable")
        sorted_ids = want[order]
        for s in self.segments:
            found = s.members(sorted_ids)
            if found.any():
                rows = order[found]
                out[rows] = reconstruct(s.segment.index, sorted_ids[found])
        return out

    # --- the next version ------------------------------------------------------------------

    def derive(
        self,
        removes: np.ndarray,
        adds: tuple[np.ndarray, np.ndarray] | None,
        texts: list[tuple[int, str]],
        policy: IndexSettings,
    ) -> Snapshot:
        """The next version: ``removes`` ids deleted, ``adds`` (vectors, ids) with ``texts`` added.

        Costs the new chunks plus a lookup per deleted id, whatever the collection's size: the
        existing segments are shared, only the deleted rows' masks are new.
        """
        removes = np.unique(np.asarray(removes, np.int64))
        segments, deleted = [], [self.tombstones]
        for s in self.segments:
            hit = removes[s.members(removes)] if removes.size else removes
            if hit.size:
                s = s.deleting(hit)
                deleted.append(hit)
            if s.live_count:  # a segment with nothing live left is dropped, tombstones and all
                segments.append(s)
        version = self.version + 1
        if adds is not None and adds[1].size:
            vectors, ids = adds
            text_of = dict(texts)
            new = Segment.build(
                f"c{version:08d}",
                vectors,
                ids,
                [text_of[int(i)] for i in ids],
                policy,
                self.quantizer,  # even if this commit deleted the last rows built on it
            )
            segments.append(LiveSegment(new))
        return Snapshot(version, tuple(segments), _tombstones(segments))

    def replaced(self, sources: Sequence[str], merged: Segment) -> Snapshot:
        """The next version with the segments named ``sources`` replaced by ``merged``.

        Rows deleted since the merge read them stay deleted: tombstones are by chunk id.
        """
        kept = [s for s in self.segments if s.segment.name not in sources]
        dead = self.tombstones[present(merged.ids, self.tombstones)]
        at = min(i for i, s in enumerate(self.segments) if s.segment.name in sources)
        segments = [*kept[:at], LiveSegment(merged, dead), *kept[at:]]
        return Snapshot(self.version + 1, tuple(segments), _tombstones(segments))

    # --- files -----------------------------------------------------------------------------

    def save(self, vdir: Path) -> None:
        """Write the version's own files (its segments are written before it)."""
        np.save(vdir / TOMBSTONES_FILE, self.tombstones)

    @classmethod
    def load(
        cls,
        vdir: Path,
        version: int,
        *,
        segments_dir: Path,
        quantizers_dir: Path,
        dim: int,
        mmap: bool,
        sha256: str | None,
        loaded: dict[str, Segment],
        lexical_texts: Callable[[], list[tuple[int, str]]],
    ) -> Snapshot:
        """Read and verify version directory ``vdir``; ``sha256`` is SQLite's record of it.

        Segments in ``loaded`` (those of the version served now) are taken as they are: they
        were verified when first loaded and never change; so are their quantizers, and each other
        quantizer is read once. ``lexical_texts`` rebuilds BM25 for versions written before
        segments existed.
        """
        manifest = read_manifest(vdir)
        if "segments" not in manifest:
            return cls._load_single(vdir, version, manifest, dim, mmap, sha256, lexical_texts)
        try:
            if sha256_file(vdir / MANIFEST_FILE)[0] != sha256:
                raise VersionFileError(f"{vdir}: manifest differs from the docstore's record")
            verify_files(vdir, manifest)
        except VersionFileError as exc:
            raise IndexCorrupt(str(exc)) from exc
        tombstones = np.asarray(np.load(vdir / TOMBSTONES_FILE), np.int64)
        quantizers = {s.quantizer.name: s.quantizer for s in loaded.values() if s.quantizer}

        def quantizer(name: str, sha256: str) -> Quantizer:
            if name not in quantizers:
                quantizers[name] = Quantizer.load(quantizers_dir / name, dim=dim, sha256=sha256)
            elif sha256_file(quantizers_dir / name / MANIFEST_FILE)[0] != sha256:
                raise IndexCorrupt(f"{quantizers_dir / name}: differs from a segment's record")
            return quantizers[name]

        segments = []
        for entry in manifest["segments"]:
            seg = loaded.get(entry["name"])
            if seg is None:
                seg = Segment.load(
                    segments_dir / entry["name"],
                    dim=dim,
                    mmap=mmap,
                    sha256=entry["sha256"],
                    quantizer=quantizer,
                )
            dead = tombstones[present(seg.ids, tombstones)]
            segments.append(LiveSegment(seg, np.asarray(dead, np.int64)))
        snap = cls(version, tuple(segments), np.asarray(tombstones, np.int64))
        if snap.ntotal != manifest["ntotal"]:
            raise IndexCorrupt(f"{vdir}: {snap.ntotal} live chunks, manifest {manifest['ntotal']}")
        return snap

    @classmethod
    def _load_single(
        cls,
        vdir: Path,
        version: int,
        manifest: dict[str, Any],
        dim: int,
        mmap: bool,
        sha256: str | None,
        lexical_texts: Callable[[], list[tuple[int, str]]],
    ) -> Snapshot:
        """A version written before segments: one FAISS file, and BM25 token ids or none.

        It serves as one segment that the next commit writes out in the segment format.
        """
        path = vdir / INDEX_FILE
        try:
            verify_files(vdir, manifest)
        except VersionFileError as exc:
            raise IndexCorrupt(str(exc)) from exc
        if manifest["files"][INDEX_FILE]["sha256"] != sha256:
            raise IndexCorrupt(f"{path}: sha256 differs from the docstore's record of it")
        try:
            index = read_index(path, mmap=False, structure=manifest.get("structure", "flat"))
        except RuntimeError as exc:
            raise IndexCorrupt(f"{path}: FAISS cannot read it: {exc}") from exc
        if index.d != dim or index.ntotal != manifest["ntotal"]:
            raise IndexCorrupt(
                f"{path}: dim {index.d} / ntotal {index.ntotal} differ from manifest "
                f"(dim {dim}, ntotal {manifest['ntotal']})"
            )
        ids = index_ids(index)
        if any(name.startswith("lexical/") for name in manifest["files"]):
            try:
                lexical, lexical_ids = LexicalSegment.from_bm25s(vdir / "lexical")
            except (ValueError, OSError, KeyError) as exc:
                raise IndexCorrupt(f"{vdir / 'lexical'}: {exc}") from exc
        else:  # written before BM25 existed: the text of the rows, as it was indexed then
            text_of = dict(lexical_texts())
            lexical_ids = np.asarray(sorted(text_of), np.int64)
            lexical = LexicalSegment.build([text_of[int(i)] for i in lexical_ids])
        if not np.array_equal(lexical_ids, ids):
            raise IndexCorrupt(f"{vdir}: FAISS and BM25 hold different chunks")
        segment = Segment(f"legacy-{vname(version)}", index, lexical, ids)
        return cls(version, (LiveSegment(segment),) if ids.size else ())


_POOL: ThreadPoolExecutor | None = None


class _Inline:
    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Any]:
        return map(fn, items)


def _fanout(n: int) -> ThreadPoolExecutor | _Inline:
    """The pool segment searches run on (one per usable core), or inline for one segment."""
    global _POOL
    if n < 2 or (os.cpu_count() or 1) < 2:
        return _Inline()
    if _POOL is None:
        _POOL = ThreadPoolExecutor(min(8, os.cpu_count() or 1), thread_name_prefix="segment")
    return _POOL


def _tombstones(segments: Sequence[LiveSegment]) -> np.ndarray:
    parts = [s.dead_ids for s in segments]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
