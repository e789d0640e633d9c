"""What retrieval and the API read from a store: the one seam service and eval depend on.

``VectorIndex`` implements it over FAISS, BM25 and SQLite; the eval's ``CachedIndex`` implements
it over a ``VectorIndex`` with cached searches. Both pass the same contract tests
(tests/ingest/reader_contract.py), so code written against this protocol cannot tell them apart.
Writing (and opening, refreshing, closing) belongs to the owner of a store, not to its readers.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ingest.docstore import DocumentRecord, Hit, QuarantineRecord

__all__ = ["IndexReader", "Ranked"]

Ranked = tuple[list[int], list[float]]  # chunk ids best first, and their scores


@runtime_checkable
class IndexReader(Protocol):
    """Search by chunk id first, then read rows: fusion ranks ids, only survivors cost a read."""

    @property
    def version(self) -> int:
        """The committed version searches run against; recorded with every answer."""
        ...

    def search_ids(self, queries: np.ndarray, k: int) -> list[Ranked]:
        """Top-``k`` (chunk ids, inner products) per L2-normalized query vector."""
        ...

    def search_lexical_ids(self, queries: list[str], k: int) -> list[Ranked]:
        """Top-``k`` (chunk ids, BM25 scores) per query, only chunks sharing a term with it."""
        ...

    def hits(self, ids: list[int], scores: list[float]) -> list[Hit]:
        """Rows for ranked chunk ids, in order, each with its score (deleted rows skipped)."""
        ...

    def vectors(self, ids: list[int]) -> np.ndarray:
        """Stored vectors of ``ids`` (rows of NaN for ids not in the loaded version)."""
        ...

    def document(self, source: str) -> DocumentRecord | None: ...

    def documents(self, prefix: str = "") -> list[DocumentRecord]: ...

    def chunks(self, doc_id: str) -> list[Hit]: ...

    def around(self, chunk_id: int, before: int, after: int) -> list[Hit]:
        """The chunk and up to ``before``/``after`` neighbours of its document, in text order.

        What a context window is built from (``ingest.windows``); empty for an unknown id.
        """
        ...

    def quarantined(self) -> list[QuarantineRecord]: ...
