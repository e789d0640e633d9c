"""The ``IndexReader`` contract: one test class that every implementation passes.

haystack's ``testing/document_store.py`` pattern: a subclass per implementation provides the
``make_reader`` fixture and inherits every test. The reference is always the ``VectorIndex``
itself, read directly, so "cached == uncached" is part of the contract: for the same query and
settings, any reader returns exactly what the store does, in every retrieval mode, with filters,
MMR and ``min_score``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest.embed import Embedder
from ingest.index import DocumentRecord, IndexReader, VectorIndex
from ingest.search import Filters, matches, retrieve
from ingest.settings import RetrievalSettings
from tests.conftest import open_store

MakeReader = Callable[[str, float | None], IndexReader]  # (question, min_score) -> reader

QUESTIONS = (
    "Which windowBits value makes zlib write a gzip header?",
    "How does a language model pick the next token?",
)
K = 4
MODES: dict[str, dict[str, Any]] = {
    "dense": {"mode": "dense"},
    "bm25": {"mode": "bm25"},
    "hybrid-rrf": {"mode": "hybrid", "fusion": "rrf"},
    "hybrid-blend": {"mode": "hybrid", "fusion": "blend", "dense_weight": 0.7},
}
# (retrieval overrides, which filter, min_score)
VARIANTS: dict[str, tuple[dict[str, Any], str | None, float | None]] = {
    "plain": ({}, None, None),
    "source-filter": ({}, "source", None),
    "kind-filter": ({}, "kind", None),
    "doc-id-filter": ({}, "doc_id", None),
    "mmr": ({"mmr": True, "mmr_lambda": 0.5}, None, None),
    "min-score": ({}, None, 0.45),  # keeps a few of one question's hits, one of the other's
    "all-at-once": ({"mmr": True, "mmr_lambda": 0.6, "candidates": 20}, "source", 0.3),
}


def filter_for(which: str | None, doc: DocumentRecord) -> Filters | None:
    if which is None:
        return None
    if which == "source":
        return {"source": doc.source}
    if which == "kind":
        return {"kind": [doc.kind, "pdf"]}
    return {"doc_id": doc.doc_id}


class IndexReaderContract:
    """Inherit and define ``make_reader``; every test here then runs against that reader."""

    @pytest.fixture(scope="class")
    @classmethod
    def store(cls, service_home: Path, embedder: Embedder) -> Iterator[VectorIndex]:
        """The reference: a real store (two real documents) read directly."""
        index = open_store(service_home / "index", embedder)
        yield index
        index.close()

    @pytest.fixture
    def make_reader(self, store: VectorIndex) -> MakeReader:
        raise NotImplementedError("a contract subclass provides the reader under test")

    def test_is_an_index_reader(self, make_reader: MakeReader) -> None:
        assert isinstance(make_reader(QUESTIONS[0], None), IndexReader)

    def test_version_and_reads_are_the_stores(
        self, make_reader: MakeReader, store: VectorIndex
    ) -> None:
        reader = make_reader(QUESTIONS[0], None)
        assert reader.version == store.version > 0
        docs = store.documents()
        assert len(docs) == 2 and reader.documents() == docs
        prefix = str(Path(docs[0].source).parent)
        assert reader.documents(prefix) == store.documents(prefix)
        for doc in docs:
            assert reader.document(doc.source) == doc
            assert reader.chunks(doc.doc_id) == store.chunks(doc.doc_id) != []
        assert reader.document("/no/such/file") is None and reader.chunks("nope") == []
        assert reader.quarantined() == store.quarantined()

    def test_around_reads_a_chunks_neighbours_in_text_order(
        self, make_reader: MakeReader, store: VectorIndex
    ) -> None:
        reader = make_reader(QUESTIONS[0], None)
        doc = store.documents()[0]
        chunks = store.chunks(doc.doc_id)
        assert len(chunks) >= 5
        mid = chunks[2]
        assert reader.around(mid.chunk_id, 2, 1) == chunks[0:4] == store.around(mid.chunk_id, 2, 1)
        assert reader.around(chunks[0].chunk_id, 3, 0) == chunks[:1]  # the document's start
        assert reader.around(chunks[-1].chunk_id, 0, 5) == chunks[-1:]  # and its end
        assert reader.around(-7, 1, 1) == []

    @pytest.mark.parametrize("question", QUESTIONS)
    def test_ranked_ids_read_back_as_the_stores_hits(
        self, make_reader: MakeReader, store: VectorIndex, embedder: Embedder, question: str
    ) -> None:
        qvec = embedder.encode([question])
        for k in (3, 10, 3, 10):  # a cache answers the second round; k is part of the query
            reader = make_reader(question, None)
            [dense] = reader.search_ids(qvec, k)
            [lexical] = reader.search_lexical_ids([question], k)
            assert reader.hits(*dense) == store.search(qvec, k)[0] != []
            assert reader.hits(*lexical) == store.search_lexical([question], k)[0] != []
            ids = dense[0][:3]
            np.testing.assert_array_equal(reader.vectors(ids), store.vectors(ids))
        assert reader.vectors([]).shape == (0, embedder.dim)

    @pytest.mark.parametrize("variant", sorted(VARIANTS))
    @pytest.mark.parametrize("mode", sorted(MODES))
    def test_retrieve_gives_what_the_store_gives(
        self,
        make_reader: MakeReader,
        store: VectorIndex,
        embedder: Embedder,
        mode: str,
        variant: str,
    ) -> None:
        overrides, which, min_score = VARIANTS[variant]
        options = RetrievalSettings(**MODES[mode], **overrides)
        for question in QUESTIONS:
            # Filter to the document the question is about, so the filter keeps something.
            [[top]] = store.search(embedder.encode([question]), 1)
            target = store.document(top.source)
            assert target is not None
            filters = filter_for(which, target)
            expected = retrieve(
                embedder, store, question, K, options, filters=filters, min_score=min_score
            )
            assert expected, "every case must retrieve something, or it compares nothing"
            for _ in range(2):  # cold, then (for a cache) warm
                reader = make_reader(question, min_score)
                got = retrieve(
                    embedder, reader, question, K, options, filters=filters, min_score=min_score
                )
                assert got == expected
            assert len(got) <= K and len({h.chunk_id for h in got}) == len(got)
            assert all(matches(h, filters or {}, reader) for h in got)
            if min_score is not None:
                cosines = reader.vectors([h.chunk_id for h in got]) @ embedder.encode([question])[0]
                assert (cosines >= min_score - 1e-3).all()
