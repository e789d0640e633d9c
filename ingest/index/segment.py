"""One immutable segment: FAISS vectors and BM25 postings over the same chunks, written once.

A commit adds one segment of its new chunks; deletions never touch a segment's files (the version
records them as tombstones), and a merge writes a new segment of the live rows of several. The
segment directory's file names live here and nowhere else; ``LiveSegment`` is a segment as one
version sees it, with its deleted rows masked out of both searches. An IVF segment is built on
the collection's quantizer (``ingest.index.quantizer``), which its manifest names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ingest.index.errors import IndexCorrupt
from ingest.index.ids import present
from ingest.index.policy import quantizer_fits, quantizer_nlist, wants_ivf
from ingest.index.quantizer import Quantizer
from ingest.index.structures import (
    Excluding,
    flat_of,
    ivf_from,
    read_index,
    reconstruct,
    same_quantizer,
    structure_of,
)
from ingest.index.structures import write_index as write_faiss
from ingest.lexical import LexicalSegment, LivePostings
from ingest.settings import IndexSettings
from ingest.versions import VersionFileError, read_manifest, sha256_file, verify_files

__all__ = ["IDS_FILE", "INDEX_FILE", "LEXICAL_DIR", "LiveSegment", "Segment"]

INDEX_FILE = "index.faiss"
LEXICAL_DIR = "lexical"
IDS_FILE = "ids.npy"


@dataclass(frozen=True)
class Segment:
    """Chunks ``ids`` (ascending): row r of the BM25 postings is chunk ``ids[r]``.

    ``quantizer``: the collection quantizer an IVF segment was built on (None: exact, or an IVF
    that trained its own lists before quantizers were shared).
    """

    name: str
    index: Any
    lexical: LexicalSegment
    ids: np.ndarray
    path: Path | None = None  # its directory, once written or loaded
    quantizer: Quantizer | None = None

    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def structure(self) -> str:
        return structure_of(self.index)

    @classmethod
    def build(
        cls,
        name: str,
        vectors: np.ndarray,
        ids: np.ndarray,
        texts: Sequence[str],
        policy: IndexSettings,
        quantizer: Quantizer | None = None,
    ) -> Segment:
        """A new segment of ``vectors`` with chunk ``ids`` and BM25 ``texts`` (all in one order).

        An IVF one is built on ``quantizer`` (the collection's) when it fits, else on a new one.
        """
        order = np.argsort(ids, kind="stable")
        ids = np.asarray(ids, np.int64)[order]
        xb = np.asarray(vectors, np.float32)[order]
        index, quantizer = _dense(len(ids), policy, quantizer, [], lambda _: (xb, ids))
        lexical = LexicalSegment.build([texts[i] for i in order])
        return cls(name, index, lexical, ids, quantizer=quantizer)

    @classmethod
    def merge(
        cls,
        name: str,
        parts: Sequence[LiveSegment],
        policy: IndexSettings,
        quantizer: Quantizer | None = None,
    ) -> Segment:
        """One segment of the live rows of ``parts``, its structure chosen for its size.

        ``quantizer``: the collection's (default: the finest one of ``parts``). The IVF lists of
        parts built on it are copied as they are; only other parts' vectors are assigned again.
        """
        keeps = [
            np.flatnonzero(~p.dead) if p.dead is not None else np.arange(len(p)) for p in parts
        ]
        kept = [np.asarray(p.segment.ids, np.int64)[k] for p, k in zip(parts, keeps, strict=True)]
        order = np.argsort(np.concatenate(kept), kind="stable")  # rows by chunk id
        ids = np.concatenate(kept)[order]
        lexical = LexicalSegment.merge(
            [(p.segment.lexical, keep) for p, keep in zip(parts, keeps, strict=True)], order
        )
        quantizer = quantizer or finest(p.segment.quantizer for p in parts)
        shared = [_built_on(p.segment, quantizer) for p in parts]

        def vectors(skip_shared: bool) -> tuple[np.ndarray, np.ndarray]:
            use = [not (skip_shared and s) for s in shared]
            xb = [
                reconstruct(p.segment.index, k)
                for p, k, u in zip(parts, kept, use, strict=True)
                if u
            ]
            mine = [k for k, u in zip(kept, use, strict=True) if u]
            if not skip_shared:  # flat, or a new quantizer to train: every row, by chunk id
                return np.concatenate(xb)[order], ids
            return (np.concatenate(xb), np.concatenate(mine)) if xb else (np.zeros(0), ids[:0])

        lists = [(p.segment.index, p.dead_ids) for p, s in zip(parts, shared, strict=True) if s]
        index, quantizer = _dense(len(ids), policy, quantizer, lists, vectors)
        return cls(name, index, lexical, ids, quantizer=quantizer)

    def save(self, directory: Path) -> None:
        """Write the files into ``directory`` (the caller makes it a segment directory)."""
        write_faiss(self.index, directory / INDEX_FILE)
        self.lexical.save(directory / LEXICAL_DIR)
        np.save(directory / IDS_FILE, self.ids)

    def manifest(self, quantizer_sha256: str | None = None) -> dict[str, Any]:
        """Its manifest's fields; ``quantizer_sha256``: the digest of its quantizer's manifest."""
        out = {"name": self.name, "rows": len(self), "structure": self.structure}
        if self.quantizer is not None:
            out["quantizer"] = {"name": self.quantizer.name, "sha256": quantizer_sha256}
        return out

    @classmethod
    def load(
        cls,
        directory: Path,
        *,
        dim: int,
        mmap: bool,
        sha256: str | None,
        quantizer: Callable[[str, str], Quantizer],
    ) -> Segment:
        """Read and verify a segment directory; ``sha256`` is its manifest's recorded digest.

        ``quantizer(name, sha256)`` returns the verified quantizer a manifest names.
        """
        try:
            manifest = read_manifest(directory)
            if sha256 is not None and sha256_file(directory / "manifest.json")[0] != sha256:
                raise VersionFileError(f"{directory}: manifest differs from the version's record")
            verify_files(directory, manifest)
        except VersionFileError as exc:
            raise IndexCorrupt(str(exc)) from exc
        path = directory / INDEX_FILE
        try:
            index = read_index(path, mmap=mmap, structure=manifest.get("structure", "flat"))
            lexical = LexicalSegment.load(directory / LEXICAL_DIR, mmap=mmap)
            ids = np.load(directory / IDS_FILE, mmap_mode="r" if mmap else None)
        except (RuntimeError, ValueError, OSError) as exc:
            raise IndexCorrupt(f"{directory}: cannot read the segment: {exc}") from exc
        if index.d != dim or not index.ntotal == len(lexical) == ids.size == manifest["rows"]:
            raise IndexCorrupt(
                f"{directory}: dim {index.d}, FAISS {index.ntotal}, BM25 {len(lexical)} and "
                f"{ids.size} ids differ from the manifest's {manifest['rows']} rows of dim {dim}"
            )
        shared = None
        if "quantizer" in manifest:
            shared = quantizer(manifest["quantizer"]["name"], manifest["quantizer"]["sha256"])
            if not same_quantizer(index, shared.index):
                raise IndexCorrupt(f"{directory}: IVF lists differ from quantizer {shared.name}")
        return cls(manifest["name"], index, lexical, ids, directory, shared)


def _built_on(segment: Segment, quantizer: Quantizer | None) -> bool:
    mine = segment.quantizer
    return mine is not None and quantizer is not None and mine.name == quantizer.name


def finest(quantizers: Iterable[Quantizer | None]) -> Quantizer | None:
    """The quantizer with the most lists (the first of those), None when there is none."""
    best = None
    for q in quantizers:
        if q is not None and (best is None or q.nlist > best.nlist):
            best = q
    return best


def _dense(
    n: int,
    policy: IndexSettings,
    quantizer: Quantizer | None,
    lists: list[tuple[Any, np.ndarray]],
    vectors: Callable[[bool], tuple[np.ndarray, np.ndarray]],
) -> tuple[Any, Quantizer | None]:
    """The FAISS side of a segment of ``n`` rows, and the quantizer it is built on.

    ``lists``: IVF indexes built on ``quantizer`` whose live lists can be copied; ``vectors(
    skip)`` gives (vectors, ids) of the rows, without those in ``lists`` when ``skip``.
    """
    kind = policy.kind
    if not wants_ivf(n, kind, nlist=policy.nlist, approx_above=policy.approx_above):
        return flat_of(*vectors(False)), None
    if quantizer is None or not quantizer_fits(quantizer.nlist, n, kind, nlist=policy.nlist):
        xb, ids = vectors(False)
        nlist = quantizer_nlist(n, kind, nlist=policy.nlist, merge_factor=policy.merge_factor)
        quantizer = Quantizer.train(xb, nlist)
        return ivf_from(quantizer.index, [], (xb, ids)), quantizer
    return ivf_from(quantizer.index, lists, vectors(True)), quantizer


@dataclass(frozen=True)
class LiveSegment:
    """A segment as one version sees it: ``dead_ids`` are its chunks deleted since it was written."""

    segment: Segment
    dead_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.segment)

    @cached_property
    def dead(self) -> np.ndarray | None:
        """Bool per row, None when every row is live."""
        if not self.dead_ids.size:
            return None
        mask = np.zeros(len(self), bool)
        mask[np.searchsorted(self.segment.ids, self.dead_ids)] = True
        return mask

    @property
    def live_count(self) -> int:
        return len(self) - int(self.dead_ids.size)

    @cached_property
    def postings(self) -> LivePostings:
        return LivePostings(self.segment.lexical, self.segment.ids, self.dead)

    @cached_property
    def searcher(self) -> Excluding:
        return Excluding(self.segment.index, self.dead_ids)

    def live_ids(self) -> np.ndarray:
        ids = np.asarray(self.segment.ids, np.int64)
        return ids if self.dead is None else ids[~self.dead]

    def members(self, ids: np.ndarray) -> np.ndarray:
        """Which of the sorted ``ids`` are live rows of this segment (bool per id)."""
        found = present(self.segment.ids, ids)
        if self.dead_ids.size:
            found &= ~present(self.dead_ids, ids)
        return found

    def deleting(self, ids: np.ndarray) -> LiveSegment:
        """This segment with ``ids`` (live rows of it) deleted too."""
        return LiveSegment(self.segment, np.union1d(self.dead_ids, ids))
