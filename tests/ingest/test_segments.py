"""Segment-based versions: commits write only their own chunks, searches fan out, merges compact."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import bm25s
import numpy as np
import pytest
import Stemmer

from ingest.compact import compact, plan
from ingest.index import VectorIndex
from ingest.index.segment import Segment
from ingest.index.structures import write_index
from ingest.lexical import K1, B, LexicalSegment, LivePostings, bm25_search
from ingest.versions import sha256_file
from ingest.writer import Writer
from tests.ingest.test_index import (
    REPO,
    commit_doc,
    make_doc,
    open_index,
    unit_vectors,
)

WORDS = [
    "gzip",
    "deflate",
    "header",
    "window",
    "bits",
    "zlib",
    "stream",
    "inflate",
    "checksum",
    "adler",
    "crc",
    "block",
    "huffman",
    "literal",
    "length",
    "distance",
    "dictionary",
    "level",
    "memory",
    "strategy",
    "flush",
    "sync",
    "finish",
    "buffer",
]


def texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 12)))) for _ in range(n)]


def put_texts(idx: VectorIndex, source: str, body: list[str], seed: int) -> None:
    doc, chunks, vectors = make_doc(source, len(body), seed)
    with Writer.acquire(idx) as w:
        w.put(doc, chunks, vectors, body)
        w.commit()


def segment_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "segments").iterdir())


QUERIES = ["gzip header window", "huffman block", "adler checksum stream", "flush sync finish"]


def lexical_results(idx: VectorIndex) -> list[tuple[list[int], list[float]]]:
    return idx.search_lexical_ids(QUERIES, 10)


def test_bm25_scores_match_bm25s_on_one_segment() -> None:
    """The reference: bm25s' Lucene BM25 over the same texts, tokenized the same way."""
    corpus = texts(60, seed=1)
    seg = LexicalSegment.build(corpus)
    live = LivePostings(seg, np.arange(100, 160), None)
    tokenizer = bm25s.tokenization.Tokenizer(stemmer=Stemmer.Stemmer("english"), stopwords="en")
    ref = bm25s.BM25(k1=K1, b=B, method="lucene")
    ref.index(tokenizer.tokenize(corpus, show_progress=False), show_progress=False)
    for query in QUERIES:
        ids, scores = bm25_search([live], query, 60)
        expected = ref.get_scores(
            tokenizer.tokenize([query], show_progress=False, update_vocab=False)[0]
        )
        assert scores == pytest.approx(expected[ids - 100], rel=1e-5)
        assert ids.size == int((expected > 0).sum())


def test_scores_are_the_same_however_the_chunks_are_segmented(tmp_path: Path) -> None:
    """Global document frequencies: several segments with deletions score as one index does."""
    bodies = {f"d{i}.md": texts(12, seed=i) for i in range(5)}
    split = open_index(tmp_path / "split")
    for i, (source, body) in enumerate(bodies.items()):
        put_texts(split, source, body, seed=i)
    with Writer.acquire(split) as w:
        w.remove("d1.md")
        w.commit()
    one = open_index(tmp_path / "one")
    doc_chunks = [(s, b) for s, b in bodies.items() if s != "d1.md"]
    with Writer.acquire(one) as w:
        for i, (source, body) in enumerate(doc_chunks):
            doc, chunks, vectors = make_doc(source, len(body), seed=i)
            w.put(doc, chunks, vectors, body)
        w.commit()
    try:
        assert split.stats()["segments"] == 4 and split.stats()["tombstones"] == 0
        assert one.stats()["segments"] == 1
        for (a_ids, a_scores), (b_ids, b_scores) in zip(
            lexical_results(split), lexical_results(one), strict=True
        ):
            texts_a = [h.text for h in split.hits(a_ids, a_scores)]
            texts_b = [h.text for h in one.hits(b_ids, b_scores)]
            assert a_scores == pytest.approx(b_scores, rel=1e-5) and texts_a == texts_b
    finally:
        split.close()
        one.close()


def test_a_commit_writes_only_its_new_segment(tmp_path: Path) -> None:
    root = tmp_path / "store"
    idx = open_index(root)
    try:
        commit_doc(idx, "a.md", 50, seed=1)
        first = root / "segments" / "c00000001" / "index.faiss"
        stamp = os.stat(first)
        commit_doc(idx, "b.md", 5, seed=2)
        assert segment_dirs(root) == ["c00000001", "c00000002"]
        assert (
            os.stat(first).st_mtime_ns == stamp.st_mtime_ns and first.stat().st_ino == stamp.st_ino
        )
        with Writer.acquire(idx) as w:  # a deletion writes a version, no segment
            w.remove("b.md")
            w.commit()
        assert segment_dirs(root) == ["c00000001", "c00000002"] or segment_dirs(root) == [
            "c00000001"
        ]
        assert idx.stats()["segments"] == 1  # b's segment had nothing live left: dropped
        commit_doc(idx, "a.md", 50, seed=3, content_hash="h2")  # a replaced: 50 tombstones
        stats = idx.stats()
        assert stats["segments"] == 1 and stats["tombstones"] == 0 and stats["ntotal"] == 50
        assert idx.verify() == []
    finally:
        idx.close()


def test_tombstones_hide_rows_from_both_searches_and_vectors(tmp_path: Path) -> None:
    root = tmp_path / "store"
    idx = open_index(root)
    try:
        put_texts(idx, "a.md", texts(20, seed=1), seed=1)
        put_texts(idx, "b.md", texts(20, seed=2), seed=2)
        with Writer.acquire(idx) as w:
            w.put(*make_doc("c.md", 20, seed=3))
            w.remove("a.md")
            w.commit()
        assert idx.stats()["tombstones"] == 0  # a's whole segment went
        with Writer.acquire(idx) as w:
            doc, chunks, vectors = make_doc("b.md", 3, seed=4, content_hash="h2")
            w.put(doc, chunks, vectors, ["gzip header", "zlib stream", "huffman block"])
            w.commit()
        stats = idx.stats()
        assert stats["segments"] == 2 and stats["ntotal"] == 23 and idx.verify() == []
        old_b = unit_vectors(20, 2)
        assert "b.md" not in {h.source for h in idx.search(old_b[:3], 3)[0][:1]}
        for ids, _ in lexical_results(idx):
            assert {h.source for h in idx.hits(ids, [0.0] * len(ids))} <= {"b.md", "c.md"}
        c = idx.search(unit_vectors(20, 3)[:4], 1)
        assert [row[0].text for row in c] == [f"c.md #{i}" for i in range(4)]
        assert np.isnan(idx.vectors([0])).all()  # a.md's first chunk: deleted
    finally:
        idx.close()
    again = open_index(root)
    try:
        assert again.stats()["ntotal"] == 23 and again.verify() == []
    finally:
        again.close()


def test_merges_compact_small_segments_and_keep_every_answer(tmp_path: Path) -> None:
    root = tmp_path / "store"
    idx = open_index(root, merge_factor=4, keep_versions=1)
    try:
        for i in range(6):
            put_texts(idx, f"d{i}.md", texts(10, seed=i), seed=i)
        with Writer.acquire(idx) as w:
            w.remove("d2.md")
            doc, chunks, vectors = make_doc("d3.md", 4, seed=30, content_hash="h2")
            w.put(doc, chunks, vectors, texts(4, seed=30))
            w.commit()
        before = (idx.search(unit_vectors(8, 4), 5), lexical_results(idx), idx.stats()["ntotal"])
        assert plan(idx.snapshot(), 4) != []
        assert compact(idx) == 1
        stats = idx.stats()
        assert stats["segments"] == 1 and stats["tombstones"] == 0 and idx.verify() == []
        after = (idx.search(unit_vectors(8, 4), 5), lexical_results(idx), stats["ntotal"])
        assert after[0] == before[0] and after[2] == before[2]
        for (a, sa), (b, sb) in zip(after[1], before[1], strict=True):
            assert a == b and sa == pytest.approx(sb, rel=1e-5)
        assert compact(idx) == 0  # nothing left to do
        put_texts(idx, "late.md", texts(3, seed=99), seed=99)
        # keep_versions=1: only the segments the current version names stay on disk
        assert len(segment_dirs(root)) == 2 and idx.stats()["segments"] == 2
    finally:
        idx.close()
    again = open_index(root)
    try:
        assert again.stats()["ntotal"] == after[2] + 3 and again.verify() == []
    finally:
        again.close()


def test_rows_deleted_while_a_merge_runs_stay_deleted(tmp_path: Path) -> None:
    idx = open_index(tmp_path / "store", merge_factor=2)
    try:
        commit_doc(idx, "a.md", 10, seed=1)
        with Writer.acquire(idx) as w:
            w.put(*make_doc("b.md", 10, seed=2))
            w.put(*make_doc("c.md", 10, seed=3))
            w.commit()
        snap = idx.snapshot()
        merged = idx.write_segment(Segment.merge("mtest", list(snap.segments), idx.settings))
        with Writer.acquire(idx) as w:  # committed between the merge's read and its publish
            w.remove("b.md")
            w.commit()
        with Writer.acquire(idx) as w:
            assert w.replace_segments(snap.names(), merged)
            w.commit()
        stats = idx.stats()
        assert stats["segments"] == 1 and stats["ntotal"] == 20 and stats["tombstones"] == 10
        assert "b.md" not in {h.source for h in idx.search(unit_vectors(10, 2), 3)[0]}
        assert idx.verify() == []
        with Writer.acquire(idx) as w:  # 20 of 30 rows dead: the policy rewrites it
            w.remove("c.md")
            w.commit()
        assert plan(idx.snapshot(), 2) == ["mtest"]
        assert compact(idx) == 1 and idx.stats()["tombstones"] == 0 and idx.verify() == []
        assert idx.stats()["ntotal"] == 10
    finally:
        idx.close()


def test_a_merge_is_moot_once_a_commit_dropped_one_of_its_segments(tmp_path: Path) -> None:
    """A segment whose rows are all deleted leaves the version with its tombstones: merging its
    old rows back in would revive them."""
    idx = open_index(tmp_path / "store", merge_factor=2)
    try:
        commit_doc(idx, "a.md", 10, seed=1)
        commit_doc(idx, "b.md", 10, seed=2)
        snap = idx.snapshot()
        merged = idx.write_segment(Segment.merge("mtest", list(snap.segments), idx.settings))
        with Writer.acquire(idx) as w:
            w.remove("a.md")
            w.commit()
        with Writer.acquire(idx) as w:
            assert not w.replace_segments(snap.names(), merged)
            assert w.commit() == 3  # nothing staged
        assert idx.stats()["ntotal"] == 10 and idx.verify() == []
    finally:
        idx.close()


def test_refresh_loads_only_new_segments(tmp_path: Path) -> None:
    root = tmp_path / "store"
    writer_side = open_index(root)
    reader = open_index(root)
    try:
        commit_doc(writer_side, "a.md", 10, seed=1)
        assert reader.refresh()
        first = reader.snapshot().segments[0].segment
        commit_doc(writer_side, "b.md", 10, seed=2)
        assert reader.refresh()
        segs = reader.snapshot().segments
        assert segs[0].segment is first and len(segs) == 2 and reader.verify() == []
    finally:
        writer_side.close()
        reader.close()


def _write_old_bm25(directory: Path, ids: np.ndarray, body: list[str]) -> None:
    """BM25 files as the single-file format kept them: token ids and bm25s' vocabulary."""
    tokenizer = bm25s.tokenization.Tokenizer(stemmer=Stemmer.Stemmer("english"), stopwords="en")
    docs = tokenizer.tokenize(body, update_vocab=True, show_progress=False, return_as="ids")
    directory.mkdir()
    offsets = np.zeros(len(docs) + 1, np.int64)
    np.cumsum([len(d) for d in docs], out=offsets[1:])
    np.save(directory / "tokens.npy", np.array([t for d in docs for t in d], np.int32))
    np.save(directory / "offsets.npy", offsets)
    np.save(directory / "ids.npy", ids)
    tokenizer.save_vocab(str(directory), "tokenizer.json")


@pytest.mark.parametrize("bm25", ["token ids", "none"])
def test_store_in_the_single_file_format_loads_and_moves_to_segments(
    tmp_path: Path, bm25: str
) -> None:
    """Versions written before segments (one index.faiss per version) still serve, as they did."""
    root = tmp_path / "store"
    idx = open_index(root)
    body = texts(6, seed=1)
    if bm25 == "none":  # BM25 indexed the chunks' heading and text then
        commit_doc(idx, "a.md", 6, seed=1)
    else:
        put_texts(idx, "a.md", body, seed=1)
    expected = (idx.search(unit_vectors(6, 1), 3), lexical_results(idx))
    seg = idx.snapshot().segments[0].segment
    idx.close()
    # Rewrite version 1 as the old format wrote it: everything in the version directory.
    vdir = root / "versions" / "v00000001"
    shutil.rmtree(vdir)
    shutil.rmtree(root / "segments")
    vdir.mkdir()
    write_index(seg.index, vdir / "index.faiss")
    if bm25 == "token ids":
        _write_old_bm25(vdir / "lexical", np.asarray(seg.ids), body)
    files = {
        p.relative_to(vdir).as_posix(): dict(zip(("sha256", "bytes"), sha256_file(p), strict=True))
        for p in sorted(vdir.rglob("*"))
        if p.is_file()
    }
    manifest = {"version": 1, "ntotal": 6, "structure": "flat", "files": files}
    (vdir / "manifest.json").write_text(json.dumps(manifest))
    with sqlite3.connect(root / "docstore.sqlite") as conn:
        digest = files["index.faiss"]["sha256"]
        conn.execute("UPDATE versions SET sha256 = ? WHERE version = 1", (digest,))
    idx = open_index(root)
    try:
        got = (idx.search(unit_vectors(6, 1), 3), lexical_results(idx))
        assert got[0] == expected[0] and idx.verify() == []
        for (a, sa), (b, sb) in zip(got[1], expected[1], strict=True):
            assert a == b and sa == pytest.approx(sb, rel=1e-5)
        commit_doc(idx, "b.md", 2, seed=2)
        assert segment_dirs(root) == ["c00000002", "legacy-v00000001"]
    finally:
        idx.close()
    again = open_index(root)
    try:
        assert again.stats()["ntotal"] == 8 and again.verify() == []
    finally:
        again.close()


MERGE_AND_PARK = """
import sys
from pathlib import Path
from ingest.compact import compact
from ingest.index import VectorIndex
from ingest.settings import IndexSettings
idx = VectorIndex.open(Path(sys.argv[1]), IndexSettings(merge_factor=2), embed_model="test-embed", dim=16)
compact(idx)
"""


@pytest.mark.parametrize("fault", ["segment-tmp-written", "segment-renamed", "commit-renamed"])
def test_a_merge_killed_anywhere_leaves_the_last_version_serving(
    tmp_path: Path, fault: str
) -> None:
    root = tmp_path / "store"
    idx = open_index(root, merge_factor=2)
    commit_doc(idx, "a.md", 10, seed=1)
    commit_doc(idx, "b.md", 10, seed=2)
    before = idx.search(unit_vectors(4, 1), 3)
    signal = tmp_path / "parked"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RAGTUNE_FAULT": fault,
        "RAGTUNE_FAULT_SIGNAL": str(signal),
    }
    proc = subprocess.Popen([sys.executable, "-c", MERGE_AND_PARK, str(root)], env=env)
    try:
        from tests.ingest.test_index import _wait_for

        _wait_for(signal, proc)
        proc.kill()
        proc.wait(30)
        assert not idx.refresh() and idx.search(unit_vectors(4, 1), 3) == before
        commit_doc(idx, "c.md", 2, seed=3)  # the next writer cleans up and carries on
        assert not any(n.startswith("m") for n in segment_dirs(root))
        assert idx.verify() == [] and idx.stats()["ntotal"] == 22
        assert compact(idx) >= 1 and idx.verify() == [] and idx.stats()["ntotal"] == 22
    finally:
        if proc.poll() is None:
            proc.kill()
        idx.close()
