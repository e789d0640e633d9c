"""One version's search structures, FAISS and BM25 together: loading, deriving and saving them.

A snapshot is immutable once published: a commit derives the next one from a private copy
(``derive``) and the store swaps its pointer, so in-flight searches keep the one they took. The
version directory's file names live here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.index.errors import IndexCorrupt
from ingest.index.structures import (
    apply_changes,
    clone,
    empty_flat,
    read_index,
    restructure,
    structure_of,
    write_index,
)
from ingest.lexical import LexicalIndex
from ingest.settings import IndexSettings
from ingest.versions import VersionFileError, read_manifest, verify_files

__all__ = ["INDEX_FILE", "LEXICAL_DIR", "Snapshot"]

INDEX_FILE = "index.faiss"
LEXICAL_DIR = "lexical"


@dataclass(frozen=True)
class Snapshot:
    """One version as loaded or built: FAISS and BM25 always travel together."""

    index: Any
    lexical: LexicalIndex
    version: int
    path: Path | None = None  # the FAISS file, when ``index`` is memory-mapped from it

    @classmethod
    def empty(cls, dim: int) -> Snapshot:
        return cls(empty_flat(dim), LexicalIndex.empty(), 0)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def structure(self) -> str:
        """flat (exact) or ivf (approximate, trained)."""
        return structure_of(self.index)

    @classmethod
    def load(
        cls,
        vdir: Path,
        version: int,
        *,
        dim: int,
        mmap: bool,
        sha256: str | None,
        lexical_texts: Callable[[], list[tuple[int, str]]],
    ) -> Snapshot:
        """Read and verify version directory ``vdir``; ``sha256`` is SQLite's record of its index.

        ``lexical_texts`` rebuilds BM25 for versions written before BM25 existed.
        """
        manifest = read_manifest(vdir)
        path = vdir / INDEX_FILE
        try:
            verify_files(vdir, manifest)
        except VersionFileError as exc:
            raise IndexCorrupt(str(exc)) from exc
        if manifest["files"][INDEX_FILE]["sha256"] != sha256:
            raise IndexCorrupt(f"{path}: sha256 differs from the docstore's record of it")
        try:
            index = read_index(path, mmap=mmap, structure=manifest.get("structure", "flat"))
        except RuntimeError as exc:
            raise IndexCorrupt(f"{path}: FAISS cannot read it: {exc}") from exc
        if index.d != dim or index.ntotal != manifest["ntotal"]:
            raise IndexCorrupt(
                f"{path}: dim {index.d} / ntotal {index.ntotal} differ from manifest "
                f"(dim {dim}, ntotal {manifest['ntotal']})"
            )
        if any(name.startswith(LEXICAL_DIR + "/") for name in manifest["files"]):
            try:
                lexical = LexicalIndex.load(vdir / LEXICAL_DIR, mmap=mmap)
            except (ValueError, OSError) as exc:
                raise IndexCorrupt(f"{vdir / LEXICAL_DIR}: {exc}") from exc
        else:  # written before BM25 existed: rebuild it from the rows (the next commit saves it)
            lexical = LexicalIndex.empty().updated(np.zeros(0, np.int64), lexical_texts())
        if len(lexical) != index.ntotal:
            raise IndexCorrupt(f"{vdir}: BM25 holds {len(lexical)} chunks, FAISS {index.ntotal}")
        return cls(index, lexical, version, path if mmap else None)

    def derive(
        self,
        removes: np.ndarray,
        adds: tuple[np.ndarray, np.ndarray] | None,
        texts: list[tuple[int, str]],
        policy: IndexSettings,
    ) -> Snapshot:
        """The next version: ``removes`` ids dropped, ``adds`` (vectors, ids) and ``texts`` added.

        Built on a private copy, so searches of this snapshot are untouched; the structure
        follows ``policy.kind`` for the new size (see ``IndexSettings.kind``).
        """
        index = self._writable_copy()
        apply_changes(index, removes, adds)
        index = restructure(
            index,
            policy.kind,
            nlist=policy.nlist,
            approx_above=policy.approx_above,
            dim=int(index.d),
        )
        return Snapshot(index, self.lexical.updated(removes, texts), self.version + 1)

    def _writable_copy(self) -> Any:
        # A memory-mapped index is read-only (a clone would share its mapping), so it is read
        # again from its file; an in-memory one is cloned.
        if self.path is not None:
            return read_index(self.path, mmap=False)
        return clone(self.index)

    def save(self, vdir: Path) -> None:
        """Write both structures into ``vdir`` (the caller makes it a version directory)."""
        write_index(self.index, vdir / INDEX_FILE)
        self.lexical.save(vdir / LEXICAL_DIR)
