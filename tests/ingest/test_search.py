"""Fusion math on hand-made rankings, MMR, and every retrieval mode over a real index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.embed import Embedder
from ingest.index import VectorIndex
from ingest.search import blend, mmr, retrieve, rrf, with_overrides
from ingest.settings import RetrievalSettings
from tests.conftest import make_ingestor, open_store

# --- fusion math -------------------------------------------------------------------------


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = rrf([[1, 2, 3], [3, 1, 4]], [1.0, 1.0], k0=60)
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62) and fused[4] == pytest.approx(1 / 63)
    assert sorted(fused, key=lambda i: -fused[i]) == [1, 3, 2, 4]


def test_rrf_weights_and_k0() -> None:
    only_second = rrf([[1, 2], [2, 1]], [0.0, 1.0], k0=60)
    assert sorted(only_second, key=lambda i: -only_second[i]) == [2, 1]
    # A small k0 lets the top rank dominate; a large one flattens the curve.
    sharp, flat = rrf([[1, 2, 3]], [1.0], k0=1), rrf([[1, 2, 3]], [1.0], k0=1000)
    assert sharp[1] / sharp[3] == pytest.approx(2.0) and flat[1] / flat[3] < 1.01


def test_blend_normalizes_each_list() -> None:
    fused = blend([[(1, 10.0), (2, 5.0), (3, 0.0)], [(3, 2.0), (4, 1.0)]], [0.5, 0.5])
    assert fused == pytest.approx({1: 0.5, 2: 0.25, 3: 0.5, 4: 0.0})
    # Raw scale does not matter: BM25 scores in the tens do not swamp cosines below 1.
    assert blend([[(1, 0.9), (2, 0.1)], [(2, 40.0), (1, 10.0)]], [0.5, 0.5]) == pytest.approx(
        {1: 0.5, 2: 0.5}
    )
    assert blend([[(1, 3.0), (2, 3.0)], []], [0.7, 0.3]) == pytest.approx({1: 0.7, 2: 0.7})


@given(
    st.lists(st.permutations(list(range(6))), min_size=1, max_size=4),
    st.integers(min_value=1, max_value=100),
)
def test_rrf_never_ranks_a_dominated_item_higher(rankings: list[list[int]], k0: int) -> None:
    fused = rrf(rankings, [1.0] * len(rankings), k0)
    pos = [{item: r for r, item in enumerate(ranking)} for ranking in rankings]
    for a in range(6):
        for b in range(6):
            if all(p[a] < p[b] for p in pos):  # a above b everywhere
                assert fused[a] > fused[b]


def test_mmr_skips_near_duplicates() -> None:
    a = np.array([1.0, 0.0, 0.0])
    dup = np.array([0.999, 0.0447, 0.0])
    other = np.array([0.0, 1.0, 0.0])
    vecs = np.stack([a, dup, other]).astype(np.float32)
    query = np.array([1.0, 0.2, 0.0], np.float32)
    assert mmr(query, vecs, [1.0, 0.99, 0.5], k=2, lam=0.5) == [0, 2]
    assert mmr(query, vecs, [1.0, 0.99, 0.5], k=3, lam=1.0) == [0, 1, 2]
    assert mmr(query, vecs, [], k=3, lam=0.5) == []


def test_with_overrides_validates() -> None:
    base = RetrievalSettings()
    assert with_overrides(base) is base
    assert with_overrides(base, mode="bm25", dense_weight=None).mode == "bm25"
    with pytest.raises(ValueError):
        with_overrides(base, dense_weight=2.0)


# --- modes over a real index ----------------------------------------------------------------

DOCS = {
    "animals/cats.md": "# Cats\n\nCats purr when content. A cat sleeps sixteen hours a day.",
    "animals/dogs.md": "# Dogs\n\nDogs bark at strangers. A dog needs daily walks.",
    "tools/zlib.md": "# zlib\n\nCall deflateInit2 with windowBits 31 to write a gzip header.",
    "tools/pip.md": "# pip\n\nUse pip install --constraint constraints.txt for reproducible installs.",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[VectorIndex]:
    tmp = tmp_path_factory.mktemp("search")
    for name, text in DOCS.items():
        path = tmp / "docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    idx = open_store(tmp / "index", embedder)
    make_ingestor(idx, embedder).run([tmp / "docs"])
    yield idx
    idx.close()


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
@pytest.mark.parametrize("fusion", ["rrf", "blend"])
def test_every_mode_finds_the_obvious_passage(
    store: VectorIndex, embedder: Embedder, mode: str, fusion: str
) -> None:
    opts = RetrievalSettings(mode=mode, fusion=fusion)  # type: ignore[arg-type]
    hits = retrieve(embedder, store, "which windowBits gives a gzip header", 2, opts)
    assert hits and Path(hits[0].source).name == "zlib.md"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_filters_and_mmr_work_in_every_mode(
    store: VectorIndex, embedder: Embedder, mode: str
) -> None:
    opts = RetrievalSettings(mode=mode, mmr=True, mmr_lambda=0.5)  # type: ignore[arg-type]
    folder = str(Path(store.documents()[0].source).parents[1] / "animals")
    hits = retrieve(embedder, store, "dog cat pets", 4, opts, filters={"source": folder})
    assert hits and all(h.source.startswith(folder + "/") for h in hits)
    assert len({h.chunk_id for h in hits}) == len(hits)
    none = retrieve(embedder, store, "dog cat pets", 4, opts, filters={"kind": "pdf"})
    assert none == []


def test_bm25_alone_finds_nothing_without_shared_terms(
    store: VectorIndex, embedder: Embedder
) -> None:
    opts = RetrievalSettings(mode="bm25")
    assert retrieve(embedder, store, "quantum chromodynamics", 3, opts) == []
    # ... while dense always returns its nearest neighbours.
    assert retrieve(embedder, store, "quantum chromodynamics", 3, RetrievalSettings(mode="dense"))


def test_min_score_is_cosine_in_every_mode(store: VectorIndex, embedder: Embedder) -> None:
    q = "Cats purr when content"
    dense = retrieve(embedder, store, q, 4, RetrievalSettings(mode="dense"))
    floor = dense[0].score - 1e-4  # only the best passage clears it
    for mode in ("dense", "bm25", "hybrid"):
        opts = RetrievalSettings(mode=mode)  # type: ignore[arg-type]
        hits = retrieve(embedder, store, q, 4, opts, min_score=floor)
        assert [h.chunk_id for h in hits] == [dense[0].chunk_id], mode


def test_unknown_filter_is_an_error(store: VectorIndex, embedder: Embedder) -> None:
    with pytest.raises(ValueError, match="unknown filter colour"):
        retrieve(embedder, store, "x", 3, RetrievalSettings(), filters={"colour": "red"})


def test_queries_leave_the_bm25_segment_unchanged() -> None:
    """Queries are tokenized without touching any vocabulary: a server must not grow per query."""
    from ingest.lexical import LexicalSegment, LivePostings, bm25_search

    seg = LexicalSegment.build(["Cats purr when content", "Dogs are running fast"])
    live = LivePostings(seg, np.array([1, 2]), None)
    before = list(seg.terms)
    for i in range(50):
        bm25_search([live], f"novel{i} words{i} running dogs", 5)
    assert seg.terms == before
    assert bm25_search([live], "Running DOGS!", 5)[0].tolist() == [2]  # same terms as the chunks
    assert bm25_search([live], "the and of", 5)[0].size == 0  # stopwords only


# --- grouping by document --------------------------------------------------------------------

TOOLS = ("gzip", "pigz", "zlib", "zopfli", "libdeflate", "miniz", "busybox", "7zip", "python",
         "java", "go", "rust")  # fmt: skip


def _paragraph(tool: str, n: int) -> str:
    return (
        f"Note {n} on {tool}: to write a gzip header, {tool} passes windowBits 31 to "
        f"deflateInit2, and the header then carries the file name and modification time {n}."
    )


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[VectorIndex]:
    """Twelve documents on one subject; the first has many matching chunks, the rest one each."""
    tmp = tmp_path_factory.mktemp("grouped")
    for i, tool in enumerate(TOOLS):
        paragraphs = [_paragraph(tool, n) for n in range(12 if i == 0 else 1)]
        paragraphs += [f"{tool} was first released in year {1990 + i} by its authors."]
        (tmp / "docs").mkdir(exist_ok=True)
        (tmp / "docs" / f"{tool}.md").write_text(f"# {tool}\n\n" + "\n\n".join(paragraphs))
    idx = open_store(tmp / "index", embedder)
    make_ingestor(idx, embedder).run([tmp / "docs"])
    yield idx
    idx.close()


QUERY = "how do I write a gzip header with windowBits 31 and deflateInit2"


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_ten_documents_asked_for_are_ten_distinct_documents(
    many: VectorIndex, embedder: Embedder, mode: str
) -> None:
    # candidates=5: the first search is too shallow for ten documents and has to deepen
    chunks = RetrievalSettings(mode=mode, candidates=5)  # type: ignore[arg-type]
    plain = retrieve(embedder, many, QUERY, 10, chunks)
    assert len(plain) == 10 and len({h.doc_id for h in plain}) < 10  # one document crowds in
    grouped = retrieve(
        embedder, many, QUERY, 10, chunks.model_copy(update={"group_by": "document"})
    )
    assert len(grouped) == 10 and len({h.doc_id for h in grouped}) == 10
    assert [h.score for h in grouped] == sorted((h.score for h in grouped), reverse=True)
    # each document is represented by its best chunk: the first of its chunks in a deep ranking
    deep = retrieve(embedder, many, QUERY, 200, chunks)
    best = {}
    for h in deep:
        best.setdefault(h.doc_id, h.chunk_id)
    assert all(best[h.doc_id] == h.chunk_id for h in grouped)


def test_grouping_returns_every_document_when_there_are_fewer_than_k(
    many: VectorIndex, embedder: Embedder
) -> None:
    opts = RetrievalSettings(group_by="document", candidates=3)
    hits = retrieve(embedder, many, QUERY, 50, opts)
    assert len(hits) == len(TOOLS) == len({h.doc_id for h in hits})


def test_grouping_keeps_filters_the_floor_and_mmr(many: VectorIndex, embedder: Embedder) -> None:
    opts = RetrievalSettings(group_by="document", mmr=True)
    folder = str(Path(many.documents()[0].source).parent)
    wanted = [f"{folder}/{t}.md" for t in TOOLS[:4]]
    hits = retrieve(embedder, many, QUERY, 10, opts, filters={"source": wanted})
    assert sorted(h.source for h in hits) == sorted(wanted)
    dense = retrieve(embedder, many, QUERY, 1, RetrievalSettings(mode="dense"))
    floor = dense[0].score - 1e-4  # only the best chunk clears it
    only = retrieve(embedder, many, QUERY, 10, opts, min_score=floor)
    assert [h.chunk_id for h in only] == [dense[0].chunk_id]
