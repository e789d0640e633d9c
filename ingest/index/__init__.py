"""Crash-safe, versioned hybrid index: immutable segments (FAISS + BM25 each), rows in SQLite.

A version is a list of segments plus tombstones (chunk ids deleted since a segment was written).
Every commit writes one new segment of its new chunks and a new version directory naming the
segments, and then flips ``meta.current_version`` in the same SQLite transaction that writes the
rows, so a kill -9 at any instant leaves either the old version or the new one, never a mix, and
the dense and lexical sides always describe the same chunks.

One concept per module: ``reader`` (the ``IndexReader`` protocol that service and eval depend
on), ``store`` (``VectorIndex``, opened only by ``VectorIndex.open`` from the ``index``
settings), ``snapshot`` (one version: its segments and searches over them), ``segment`` (one
segment's files), ``quantizer`` (the IVF lists every IVF segment of a collection shares),
``policy`` (which structure at which size), ``structures`` (FAISS, the only module that imports
it), ``errors``. The commit
protocol lives in ``ingest.writer`` and merging in ``ingest.compact``, above this package; the
directory format in ``ingest.versions``, BM25 in ``ingest.lexical``.
"""

from __future__ import annotations

from ingest.docstore import DocumentRecord, Hit, QuarantineRecord
from ingest.index.errors import (
    EmbeddingMismatch,
    IndexCorrupt,
    IndexStoreError,
    StorageError,
    WriterBusy,
)
from ingest.index.reader import IndexReader, Ranked
from ingest.index.snapshot import Snapshot
from ingest.index.store import VectorIndex

__all__ = [
    "DocumentRecord",
    "EmbeddingMismatch",
    "Hit",
    "IndexCorrupt",
    "IndexReader",
    "IndexStoreError",
    "QuarantineRecord",
    "Ranked",
    "Snapshot",
    "StorageError",
    "VectorIndex",
    "WriterBusy",
]
