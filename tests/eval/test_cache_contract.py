"""The eval's ``CachedIndex`` passes the ``IndexReader`` contract: cached == uncached."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from eval.cache import CachedIndex, EvalCache
from ingest.embed import Embedder
from ingest.index import VectorIndex
from ingest.search import retrieve
from ingest.settings import RetrievalSettings
from tests.ingest.reader_contract import QUESTIONS, IndexReaderContract, MakeReader


class TestCachedIndex(IndexReaderContract):
    @pytest.fixture(scope="class")
    @classmethod
    def shared_cache(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvalCache]:
        """One cache for every contract test, as one serves every configuration of a sweep.

        Searches of one test are then often answered by another's, so a cache key that misses
        an input shows up as a wrong result.
        """
        cache = EvalCache(tmp_path_factory.mktemp("eval-cache") / "cache.sqlite")
        yield cache
        cache.close()

    @pytest.fixture
    def cache(self, tmp_path: Path) -> Iterator[EvalCache]:
        """A cache of this test's own, for counting hits and misses."""
        cache = EvalCache(tmp_path / "cache.sqlite")
        yield cache
        cache.close()

    @pytest.fixture
    def make_reader(self, store: VectorIndex, shared_cache: EvalCache) -> MakeReader:
        return lambda question, min_score: CachedIndex(
            store, shared_cache, question, 0.0 if min_score is None else min_score
        )

    def test_a_repeated_retrieval_is_served_from_the_cache(
        self, store: VectorIndex, cache: EvalCache, embedder: Embedder
    ) -> None:
        question, options = QUESTIONS[0], RetrievalSettings(mode="hybrid")
        first = retrieve(embedder, CachedIndex(store, cache, question, 0.0), question, 4, options)
        assert (cache.stats.retrieval_misses, cache.stats.retrieval_hits) == (2, 0)
        again = retrieve(embedder, CachedIndex(store, cache, question, 0.0), question, 4, options)
        assert (cache.stats.retrieval_misses, cache.stats.retrieval_hits) == (2, 2)
        assert again == first

    def test_the_cache_holds_chunk_ids_not_rows(
        self, store: VectorIndex, cache: EvalCache, embedder: Embedder
    ) -> None:
        question = QUESTIONS[0]
        reader = CachedIndex(store, cache, question, 0.0)
        retrieve(embedder, reader, question, 4, RetrievalSettings())
        with sqlite3.connect(cache.path) as db:
            blobs = [json.loads(b) for (b,) in db.execute("SELECT hits FROM retrieval")]
        assert blobs and all(set(b) == {"ids", "scores"} for b in blobs)

    def test_rows_cached_before_ids_still_serve(
        self, store: VectorIndex, cache: EvalCache, embedder: Embedder
    ) -> None:
        """Caches written when whole rows were stored keep answering, from their ids."""
        question = QUESTIONS[1]
        hits = store.search_lexical([question], 7)[0]
        blob = json.dumps([asdict(h) for h in hits])
        with sqlite3.connect(cache.path) as db:
            db.execute(
                "INSERT INTO retrieval VALUES (?, ?, ?, ?, ?, 0)",
                (store.version, f"bm25\x00{question}", 7, 0.0, blob),
            )
        reader = CachedIndex(store, cache, question, 0.0)
        assert reader.hits(*reader.search_lexical_ids([question], 7)[0]) == hits
        assert cache.stats.retrieval_hits == 1 and cache.stats.retrieval_misses == 0

    def test_it_answers_one_question(self, make_reader: MakeReader, embedder: Embedder) -> None:
        reader = make_reader(QUESTIONS[0], None)
        with pytest.raises(ValueError, match="one question"):
            reader.search_ids(embedder.encode(list(QUESTIONS)), 3)
