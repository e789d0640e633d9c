"""Tests for the versioned vector index, including real SIGKILLs in the middle of a commit."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest.index import (
    DocumentRecord,
    EmbeddingMismatch,
    IndexCorrupt,
    VectorIndex,
    WriterBusy,
)
from ingest.model import Chunk
from ingest.settings import IndexSettings
from ingest.writer import Writer

REPO = Path(__file__).resolve().parents[2]
DIM = 16
MODEL = "test-embed"


def unit_vectors(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_doc(
    source: str, n: int, seed: int, content_hash: str = "h1"
) -> tuple[DocumentRecord, list[Chunk], np.ndarray]:
    doc = DocumentRecord(
        doc_id=f"id-{source}", source=source, content_hash=content_hash, size=100,
        mtime_ns=1, kind="markdown", title=f"Title {source}",
    )  # fmt: skip
    chunks = [
        Chunk(ordinal=i, start=10 * i, end=10 * i + 5, text=f"{source} #{i}",
              page=None if i % 2 == 0 else i, heading=("Top", f"Sec {i}"), n_tokens=3)
        for i in range(n)
    ]  # fmt: skip
    return doc, chunks, unit_vectors(n, seed)


def open_index(root: Path, embed_model: str = MODEL, **kw: Any) -> VectorIndex:
    return VectorIndex.open(root, IndexSettings(**kw), embed_model=embed_model, dim=DIM)


def commit_doc(idx: VectorIndex, source: str, n: int, seed: int, content_hash: str = "h1") -> int:
    with Writer.acquire(idx) as w:
        w.put(*make_doc(source, n, seed, content_hash))
        return w.commit()


def version_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "versions").iterdir())


def sqlite_chunk_rows(root: Path, doc_id: str) -> int:
    with sqlite3.connect(root / "docstore.sqlite") as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM chunks WHERE doc_id = ?", (doc_id,)).fetchone()[0]
        )


def sources_found(idx: VectorIndex, vectors: np.ndarray, k: int = 5) -> set[str]:
    return {h.source for hits in idx.search(vectors, k) for h in hits}


def lexical_sources(idx: VectorIndex, query: str, k: int = 100) -> set[str]:
    return {h.source for h in idx.search_lexical([query], k)[0]}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def idx(root: Path) -> Iterator[VectorIndex]:
    index = open_index(root)
    yield index
    index.close()


def test_empty_store_opens_at_version_zero(idx: VectorIndex) -> None:
    assert idx.version == 0
    assert idx.search(unit_vectors(2, 0), 5) == [[], []]
    assert idx.stats()["ntotal"] == 0 and idx.documents() == []


def test_put_commit_search_roundtrips_metadata(idx: VectorIndex) -> None:
    assert commit_doc(idx, "a.md", 4, seed=1) == 1
    assert idx.version == 1
    vecs = unit_vectors(4, 1)
    results = idx.search(vecs, 3)
    for i, hits in enumerate(results):
        top = hits[0]
        assert top.source == "a.md" and top.doc_id == "id-a.md"
        assert top.score == pytest.approx(1.0, abs=1e-5)
        assert top.text == f"a.md #{i}" and (top.start, top.end) == (10 * i, 10 * i + 5)
        assert top.heading == ("Top", f"Sec {i}")
        assert top.page == (None if i % 2 == 0 else i)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    rec = idx.document("a.md")
    assert rec is not None and rec.n_chunks == 4 and rec.version == 1 and rec.title == "Title a.md"
    assert [h.text for h in idx.chunks("id-a.md")] == [f"a.md #{i}" for i in range(4)]
    stats = idx.stats()
    assert (stats["documents"], stats["chunks"], stats["ntotal"]) == (1, 4, 4)


def test_reput_replaces_old_chunks(idx: VectorIndex) -> None:
    commit_doc(idx, "a.md", 4, seed=1)
    commit_doc(idx, "b.md", 2, seed=2)
    old_ids = {h.chunk_id for h in idx.chunks("id-a.md")}
    assert commit_doc(idx, "a.md", 3, seed=3, content_hash="h2") == 3
    new = idx.chunks("id-a.md")
    assert len(new) == 3 and not old_ids & {h.chunk_id for h in new}
    hits = idx.search(unit_vectors(4, 1), 10)
    assert not old_ids & {h.chunk_id for row in hits for h in row}
    assert idx.search(unit_vectors(3, 3), 1)[0][0].chunk_id == new[0].chunk_id
    assert idx.stats()["ntotal"] == 5 and idx.stats()["chunks"] == 5
    rec = idx.document("a.md")
    assert rec is not None and rec.content_hash == "h2"


def test_remove(idx: VectorIndex) -> None:
    commit_doc(idx, "a.md", 3, seed=1)
    commit_doc(idx, "b.md", 2, seed=2)
    with Writer.acquire(idx) as w:
        assert w.remove("nope.md") is False and w.pending == 0
        assert w.commit() == 2  # nothing pending: no new version
        assert w.remove("a.md") is True
        assert w.remove("a.md") is False
        assert w.commit() == 3
    assert idx.document("a.md") is None and idx.chunks("id-a.md") == []
    assert sources_found(idx, unit_vectors(3, 1)) == {"b.md"}
    assert idx.stats()["ntotal"] == 2


def test_quarantine_keeps_last_good_version_and_put_clears_it(idx: VectorIndex) -> None:
    commit_doc(idx, "a.md", 2, seed=1)
    with Writer.acquire(idx) as w:
        w.quarantine("a.md", "h2", "pdf is encrypted")
        w.quarantine("broken.pdf", None, "unreadable")
        assert w.pending == 2
        w.commit()
    entry = idx.quarantine_entry("a.md")
    assert entry is not None and entry.reason == "pdf is encrypted" and entry.content_hash == "h2"
    assert {q.source for q in idx.quarantined()} == {"a.md", "broken.pdf"}
    assert sources_found(idx, unit_vectors(2, 1)) == {"a.md"}  # last good version stays
    commit_doc(idx, "a.md", 2, seed=1, content_hash="h3")
    assert idx.quarantine_entry("a.md") is None
    assert idx.stats()["quarantined"] == 1


def test_exit_without_commit_discards(idx: VectorIndex) -> None:
    commit_doc(idx, "a.md", 2, seed=1)
    with Writer.acquire(idx) as w:
        w.put(*make_doc("b.md", 2, seed=2))
        w.remove("a.md")
    with pytest.raises(RuntimeError), Writer.acquire(idx) as w:
        w.put(*make_doc("c.md", 2, seed=3))
        raise RuntimeError("boom")
    assert idx.version == 1 and [d.source for d in idx.documents()] == ["a.md"]
    with Writer.acquire(idx) as w:
        assert w.pending == 0
    assert sources_found(idx, unit_vectors(2, 2)) == {"a.md"}


def test_embedding_mismatch(root: Path, idx: VectorIndex) -> None:
    commit_doc(idx, "a.md", 2, seed=1)
    with pytest.raises(EmbeddingMismatch, match="other-model") as info:
        open_index(root, embed_model="other-model")
    assert MODEL in str(info.value)
    with pytest.raises(EmbeddingMismatch, match="dim=8"):
        VectorIndex.open(root, IndexSettings(), embed_model=MODEL, dim=8)


def test_corrupt_index_file_is_detected(root: Path, idx: VectorIndex) -> None:
    commit_doc(idx, "a.md", 4, seed=1)
    path = root / "segments" / "c00000001" / "index.faiss"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match=r"index\.faiss"):
        open_index(root)


def _child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "child never reached the signal point"
        time.sleep(0.05)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


HOLD_LOCK = """
import sys, time
from pathlib import Path
from ingest.index import VectorIndex
from ingest.settings import IndexSettings
from ingest.writer import Writer
idx = VectorIndex.open(
    Path(sys.argv[1]), IndexSettings(), embed_model=sys.argv[3], dim=int(sys.argv[4])
)
with Writer.acquire(idx):
    Path(sys.argv[2]).write_text("held")
    time.sleep(120)
"""


def test_writer_busy_when_another_process_holds_the_lock(root: Path, idx: VectorIndex) -> None:
    sig = root.parent / "held"
    cmd = [sys.executable, "-c", HOLD_LOCK, str(root), str(sig), MODEL, str(DIM)]
    proc = subprocess.Popen(cmd, env=_child_env(), cwd=REPO, stderr=subprocess.PIPE)
    try:
        _wait_for(sig, proc)
        with pytest.raises(WriterBusy, match=str(proc.pid)):
            Writer.acquire(idx, timeout=0.3)
    finally:
        _kill(proc)
    with Writer.acquire(idx, timeout=5.0) as w:  # the kernel dropped the dead holder's lock
        assert w.pending == 0


def test_reader_sees_old_version_until_refresh(root: Path, idx: VectorIndex) -> None:
    commit_doc(idx, "a.md", 3, seed=1)
    reader = open_index(root)
    try:
        commit_doc(idx, "b.md", 2, seed=2)
        commit_doc(idx, "a.md", 3, seed=3, content_hash="h2")  # old a.md rows deleted
        assert reader.version == 1
        assert sources_found(reader, unit_vectors(2, 2)) == set()  # b.md not in its FAISS
        assert sources_found(reader, unit_vectors(3, 1)) == set()  # rows gone: hits skipped
        assert reader.refresh() is True and reader.version == 3
        assert reader.refresh() is False
        assert reader.search(unit_vectors(1, 2), 1)[0][0].source == "b.md"
    finally:
        reader.close()


def test_threads_search_while_commits_swap_the_index(idx: VectorIndex) -> None:
    commit_doc(idx, "a.md", 3, seed=1)
    stop = threading.Event()

    def search_loop() -> int:
        n = 0
        while not stop.is_set():
            hits = idx.search(unit_vectors(3, 1), 2)
            assert all(h.source in {"a.md", "b.md"} for row in hits for h in row)
            n += 1
        return n

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(search_loop) for _ in range(3)]
        try:
            for i in range(5):
                commit_doc(idx, "b.md", 2, seed=10 + i, content_hash=f"h{i}")
        finally:
            stop.set()
        assert all(f.result() > 0 for f in futures)  # re-raises a failure inside a thread
    assert idx.version == 6


def test_gc_keeps_newest_versions(tmp_path: Path) -> None:
    root = tmp_path / "store"
    idx = open_index(root, keep_versions=2)
    try:
        for i in range(4):
            commit_doc(idx, f"d{i}.md", 1, seed=i)
        assert version_dirs(root) == ["v00000003", "v00000004"]
        assert idx.stats()["ntotal"] == 4
    finally:
        idx.close()


def test_ivf_switches_at_threshold_and_remove_still_works(tmp_path: Path) -> None:
    from ingest.compact import compact

    root = tmp_path / "store"
    idx = open_index(root, kind="ivf", nlist=4, nprobe=4, merge_factor=2)
    try:
        commit_doc(idx, "a.md", 100, seed=1)
        assert idx.stats()["structure"] == "flat"
        commit_doc(idx, "b.md", 60, seed=2)
        assert compact(idx) == 1  # one segment of 160 >= 39 * 4: trained
        assert idx.stats()["structure"] == "ivf" and idx.stats()["ntotal"] == 160
        b = unit_vectors(60, 2)
        assert [row[0].text for row in idx.search(b[:5], 1)] == [f"b.md #{i}" for i in range(5)]
        with Writer.acquire(idx) as w:
            w.remove("a.md")
            w.put(*make_doc("c.md", 3, seed=3))
            assert w.commit() == 4  # 1 and 2 added, 3 merged
        assert idx.stats()["ntotal"] == 63
        assert "a.md" not in sources_found(idx, unit_vectors(100, 1)[:10])
    finally:
        idx.close()
    again = open_index(root, kind="ivf", nlist=4, nprobe=4)
    try:
        assert again.version == 4 and again.stats()["structure"] == "mixed"  # + c's small one
        assert again.search(unit_vectors(3, 3), 1)[2][0].text == "c.md #2"
    finally:
        again.close()


PUT_AND_COMMIT = """
import sys
from pathlib import Path
import numpy as np
from ingest.index import DocumentRecord, VectorIndex
from ingest.model import Chunk
from ingest.settings import IndexSettings
from ingest.writer import Writer
root, source, vectors_path, model = sys.argv[1:5]
vectors = np.load(vectors_path, allow_pickle=False)
idx = VectorIndex.open(Path(root), IndexSettings(), embed_model=model, dim=vectors.shape[1])
doc = DocumentRecord(doc_id=f"id-{source}", source=source, content_hash="h1", size=100,
                     mtime_ns=1, kind="markdown", title=None)
chunks = [Chunk(i, 0, 1, f"{source} #{i}", None, (), 1) for i in range(len(vectors))]
with Writer.acquire(idx) as w:
    w.put(doc, chunks, vectors)
    w.commit()
"""

ORPHAN_AFTER_KILL = {  # the point, and what it leaves behind: (directory, name)
    "segment-tmp-written": ("segments", "c00000002.tmp"),
    "segment-renamed": ("segments", "c00000002"),
    "commit-tmp-written": ("versions", "v00000002.tmp"),
    "commit-renamed": ("versions", "v00000002"),
    "commit-sqlite-open": ("versions", "v00000002"),
}


@pytest.mark.parametrize("point", sorted(ORPHAN_AFTER_KILL))
def test_sigkill_mid_commit_leaves_previous_version(tmp_path: Path, point: str) -> None:
    root = tmp_path / "store"
    idx = open_index(root)
    commit_doc(idx, "a.md", 3, seed=1)
    idx.close()

    sig, vectors_path = tmp_path / "reached", tmp_path / "b.npy"
    np.save(vectors_path, unit_vectors(4, 2), allow_pickle=False)
    cmd = [sys.executable, "-c", PUT_AND_COMMIT, str(root), "b.md", str(vectors_path), MODEL]
    env = _child_env(RAGTUNE_FAULT=point, RAGTUNE_FAULT_SIGNAL=str(sig))
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stderr=subprocess.PIPE)
    try:
        _wait_for(sig, proc)
        assert sig.read_text() == point
    finally:
        _kill(proc)
    where, orphan = ORPHAN_AFTER_KILL[point]
    assert orphan in {p.name for p in (root / where).iterdir()}  # killed where we meant to

    idx = open_index(root)
    try:
        assert idx.version == 1
        assert idx.document("b.md") is None and sqlite_chunk_rows(root, "id-b.md") == 0
        assert idx.stats()["ntotal"] == 3 and idx.stats()["chunks"] == 3
        assert sources_found(idx, unit_vectors(4, 2)) == {"a.md"}
        assert lexical_sources(idx, "md") == {"a.md"} and idx.verify() == []
        with Writer.acquire(idx) as w:
            assert version_dirs(root) == ["v00000001"]  # orphans removed on writer start
            assert sorted(p.name for p in (root / "segments").iterdir()) == ["c00000001"]
            w.put(*make_doc("b.md", 4, seed=2))
            assert w.commit() == 2
        assert version_dirs(root) == ["v00000001", "v00000002"]
        assert idx.search(unit_vectors(4, 2), 1)[3][0].text == "b.md #3"
        assert sqlite_chunk_rows(root, "id-b.md") == 4
        assert lexical_sources(idx, "md") == {"a.md", "b.md"} and idx.verify() == []
    finally:
        idx.close()
    reopened = open_index(root)
    assert reopened.version == 2 and reopened.stats()["ntotal"] == 7
    reopened.close()


def test_bm25_follows_add_update_delete_and_reopen(root: Path) -> None:
    idx = open_index(root)
    try:
        commit_doc(idx, "alpha.md", 3, seed=1)
        commit_doc(idx, "beta.md", 2, seed=2)
        assert lexical_sources(idx, "alpha") == {"alpha.md"}
        assert idx.stats()["lexical"] == 5 and idx.verify() == []
        old = {h.chunk_id for h in idx.search_lexical(["alpha"], 10)[0]}
        commit_doc(idx, "alpha.md", 4, seed=3, content_hash="h2")  # update: new chunk ids
        new = {h.chunk_id for h in idx.search_lexical(["alpha"], 10)[0]}
        assert len(new) == 4 and old.isdisjoint(new) and idx.verify() == []
        with Writer.acquire(idx) as w:
            w.remove("beta.md")
            w.commit()
        assert lexical_sources(idx, "beta") == set() and idx.stats()["lexical"] == 4
        assert idx.verify() == []
    finally:
        idx.close()
    again = open_index(root)
    try:
        assert again.stats()["memory_mapped"] and again.stats()["lexical"] == 4
        assert lexical_sources(again, "alpha") == {"alpha.md"} and again.verify() == []
    finally:
        again.close()


def test_bm25_files_are_checked_against_the_manifest(root: Path) -> None:
    idx = open_index(root)
    commit_doc(idx, "alpha.md", 3, seed=1)
    idx.close()
    [rows] = (root / "segments").glob("*/lexical/rows.npy")
    data = bytearray(rows.read_bytes())
    data[-1] ^= 0xFF
    rows.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match=r"rows\.npy"):
        open_index(root)


def test_auto_kind_goes_approximate_above_the_threshold_and_back(root: Path) -> None:
    from ingest.compact import compact

    idx = open_index(root, kind="auto", approx_above=400, nprobe=4, nlist=4, merge_factor=2)
    try:
        commit_doc(idx, "a.md", 300, seed=1)
        assert idx.stats()["structure"] == "flat"
        commit_doc(idx, "b.md", 200, seed=2)
        assert compact(idx) == 1  # one segment of 500 > 400: IVF, lists for 2 x its size
        stats = idx.stats()
        assert stats["structure"] == "ivf" and stats["nlist"] == 16 and idx.verify() == []
        b = unit_vectors(200, 2)
        assert [row[0].text for row in idx.search(b[:5], 1)] == [f"b.md #{i}" for i in range(5)]
        # 8-bit codes: stored vectors come back to within quantization error.
        assert idx.vectors([idx.search(b[:1], 1)[0][0].chunk_id]) == pytest.approx(b[:1], abs=0.02)
        with Writer.acquire(idx) as w:  # deleted rows of an IVF segment are skipped in FAISS
            w.remove("b.md")
            w.commit()
        assert "b.md" not in sources_found(idx, b[:5], 3) and idx.verify() == []
        with Writer.acquire(idx) as w:  # 100 left < 400 / 2: exact again
            w.remove("a.md")
            w.put(*make_doc("c.md", 100, seed=3))
            w.commit()
        assert idx.stats()["structure"] == "flat" and idx.verify() == []
    finally:
        idx.close()
