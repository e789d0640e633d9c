"""A collection's IVF quantizer: trained once, written once, shared by every IVF segment.

Segments trained their own IVF lists before, so 8 segments probed 8 sets of lists where one
index probes one, and each merge retrained k-means (most of a 98 s merge at 1M). Now the first
segment large enough for IVF trains the collection's quantizer (coarse centroids and 8-bit
ranges, as a trained, empty FAISS IVF) and every later IVF segment is a copy of it with its own
lists: a query is assigned to lists once and each segment scans its share of them, and a merge
copies lists. ``quantizers/<name>/`` is written like a segment directory (checksummed manifest,
fsync, rename) before the first segment naming it, and each segment's manifest records the
digest of the quantizer's manifest, so the chain of digests from SQLite's row still covers every
byte served. Segments without one (trained alone, or of the single-file format) keep searching
as they did.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.index.errors import IndexCorrupt
from ingest.index.structures import assign, read_index, train_quantizer, write_index
from ingest.versions import (
    MANIFEST_FILE,
    VersionFileError,
    read_manifest,
    sha256_file,
    verify_files,
    write_dir,
)

__all__ = ["QUANTIZER_FILE", "Quantizer"]

QUANTIZER_FILE = "quantizer.faiss"
PREFIX = "q"


@dataclass(frozen=True, eq=False)
class Quantizer:
    """The trained, empty IVF ``index`` that IVF segments of a collection are copies of."""

    name: str
    index: Any
    path: Path | None = None  # its directory, once written or loaded

    @property
    def nlist(self) -> int:
        return int(self.index.nlist)

    @classmethod
    def train(cls, xb: np.ndarray, nlist: int) -> Quantizer:
        """A new quantizer of ``nlist`` lists trained on ``xb``, under a name nothing else uses."""
        return cls(f"{PREFIX}{uuid.uuid4().hex[:16]}", train_quantizer(xb, nlist))

    def assign(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The lists each query is searched in, in every segment built on this quantizer."""
        return assign(self.index, q)

    def save(self, directory: Path) -> None:
        write_index(self.index, directory / QUANTIZER_FILE)

    def write(self, parent: Path) -> str:
        """Write ``parent/<name>/`` (if it is not there yet); returns its manifest's sha256.

        Written before the first segment naming it, under that segment's lock and a name
        nothing else uses, so a crash leaves at most a directory no version needs.
        """
        directory = parent / self.name
        if (directory / MANIFEST_FILE).is_file():
            return sha256_file(directory / MANIFEST_FILE)[0]
        return write_dir(parent, self.name, self.save, self.manifest(), stage="quantizer")

    def manifest(self) -> dict[str, Any]:
        return {"name": self.name, "nlist": self.nlist, "dim": int(self.index.d)}

    @classmethod
    def load(cls, directory: Path, *, dim: int, sha256: str) -> Quantizer:
        """Read and verify ``directory``; ``sha256`` is the digest a segment manifest recorded."""
        try:
            if sha256_file(directory / MANIFEST_FILE)[0] != sha256:
                raise VersionFileError(f"{directory}: manifest differs from the segment's record")
            manifest = read_manifest(directory)
            verify_files(directory, manifest)
            index = read_index(directory / QUANTIZER_FILE, mmap=False, structure="ivf")
        except (VersionFileError, RuntimeError, OSError, ValueError) as exc:
            raise IndexCorrupt(f"{directory}: cannot read the quantizer: {exc}") from exc
        if index.d != dim or index.nlist != manifest["nlist"] or index.ntotal:
            raise IndexCorrupt(
                f"{directory}: dim {index.d}, {index.nlist} lists and {index.ntotal} vectors; "
                f"expected dim {dim}, {manifest['nlist']} lists, empty"
            )
        return cls(manifest["name"], index, directory)
