"""``VectorIndex`` passes the ``IndexReader`` contract (the reference every reader matches)."""

from __future__ import annotations

import pytest

from ingest.index import VectorIndex
from tests.ingest.reader_contract import IndexReaderContract, MakeReader


class TestVectorIndex(IndexReaderContract):
    @pytest.fixture
    def make_reader(self, store: VectorIndex) -> MakeReader:
        return lambda question, min_score: store
