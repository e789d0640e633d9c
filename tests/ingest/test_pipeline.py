"""Tests for ingest runs and the watcher over copies of real documents, with the real encoder."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.embed import Embedder
from ingest.index import DocumentRecord, EmbeddingMismatch, VectorIndex
from ingest.model import Chunk
from ingest.pipeline import Summary, document_id
from ingest.scan import source_of
from ingest.settings import IndexSettings
from ingest.watch import watch
from ingest.writer import Writer
from tests.conftest import (
    copy_files,
    corpus_files,
    make_ingestor,
    open_store,
    random_pdf,
    truncated_pdf,
    wait_until,
)

MARKER = "The zebra-striped lighthouse keeper calibrates quantum sundials every Tuesday."


@pytest.fixture
def index(tmp_path: Path, embedder: Embedder) -> Iterator[VectorIndex]:
    idx = open_store(tmp_path / "index", embedder)
    yield idx
    idx.close()


def small_docs(shared_data: Path, folder: Path) -> list[Path]:
    node = shared_data / "bench" / "nodejs-api"
    return copy_files([node / "punycode.md", node / "string_decoder.md"], folder)


def counts(summary: Summary) -> dict[str, int]:
    keys = ("added", "updated", "unchanged", "removed", "quarantined", "skipped")
    return {k: getattr(summary, k) for k in keys}


def chunk_rows(index: VectorIndex, path: Path) -> int:
    return len(index.chunks(document_id(source_of(path))))


@pytest.mark.slow
def test_ingest_lifecycle(
    shared_data: Path, tmp_path: Path, index: VectorIndex, embedder: Embedder
) -> None:
    files = copy_files(corpus_files(shared_data), tmp_path / "docs")
    ingestor = make_ingestor(index, embedder)
    root = [tmp_path / "docs"]

    # 1. First run: everything is new.
    first = ingestor.run(root)
    assert counts(first) == dict(
        added=6, updated=0, unchanged=0, removed=0, quarantined=0, skipped=0
    )
    assert first.problems == []
    docs = {d.source: d for d in index.documents()}
    assert set(docs) == {source_of(f) for f in files}
    stats = index.stats()
    assert (
        first.chunks == stats["chunks"] == stats["ntotal"] == sum(d.n_chunks for d in docs.values())
    )
    assert (stats["documents"], stats["version"]) == (6, first.version)
    assert first.version >= 1
    assert stats["lexical"] == stats["ntotal"] and index.verify() == []
    for f in files:
        record = docs[source_of(f)]
        assert record.n_chunks > 0 and chunk_rows(index, f) == record.n_chunks
    by_name = {f.name: docs[source_of(f)] for f in files}
    assert {n: d.kind for n, d in by_name.items()} == {
        "llm-guide.txt": "text",
        "zlib-usage.html": "html",
        "tty.md": "markdown",
        "punycode.md": "markdown",
        "string_decoder.md": "markdown",
        "u-net.pdf": "pdf",
    }
    pdf_chunks = index.chunks(by_name["u-net.pdf"].doc_id)
    assert {h.page for h in pdf_chunks} == set(range(1, 9))
    for name in ("tty.md", "punycode.md", "string_decoder.md", "zlib-usage.html", "llm-guide.txt"):
        hits = index.chunks(by_name[name].doc_id)
        assert all(h.page is None for h in hits)
        assert all(h.heading for h in hits), f"{name}: chunk without a heading"
    assert index.chunks(by_name["tty.md"].doc_id)[0].heading[0] == "TTY"

    # 2. Identical rerun: nothing to do, no new version.
    second = ingestor.run(root)
    assert counts(second) == dict(
        added=0, updated=0, unchanged=6, removed=0, quarantined=0, skipped=0
    )
    assert (second.chunks, second.version) == (0, first.version)
    assert index.stats() == stats

    # 3. Changed content: one update, its old chunks replaced, the new text searchable.
    tty = tmp_path / "docs" / "tty.md"
    tty_id = document_id(source_of(tty))
    old_ids = {h.chunk_id for h in index.chunks(tty_id)}
    tty.write_text(tty.read_text(encoding="utf-8") + f"\n\n{MARKER}\n", encoding="utf-8")
    third = ingestor.run(root)
    assert counts(third) == dict(
        added=0, updated=1, unchanged=5, removed=0, quarantined=0, skipped=0
    )
    assert third.version == first.version + 1
    new_hits = index.chunks(tty_id)
    assert new_hits and old_ids.isdisjoint(h.chunk_id for h in new_hits)
    assert index.stats()["ntotal"] == index.stats()["chunks"]
    [top] = index.search(embedder.encode([MARKER]), 1)[0]
    assert top.source == source_of(tty) and MARKER in top.text
    # BM25 moved with FAISS: the new words are found, no old chunk of the file is.
    [lex] = index.search_lexical(["zebra lighthouse sundials"], 1)[0:1][0]
    assert lex.source == source_of(tty) and MARKER in lex.text
    lexical_ids = {h.chunk_id for h in index.search_lexical(["tty"], 500)[0]}
    assert lexical_ids and old_ids.isdisjoint(lexical_ids)
    assert index.verify() == []

    # 4. A deleted file stays indexed without sync, and is removed with it.
    gone = tmp_path / "docs" / "punycode.md"
    gone_id = document_id(source_of(gone))
    gone.unlink()
    fourth = ingestor.run(root)
    assert counts(fourth) == dict(
        added=0, updated=0, unchanged=5, removed=0, quarantined=0, skipped=0
    )
    assert source_of(gone) in {d.source for d in index.documents()}
    fifth = ingestor.run(root, sync=True)
    assert counts(fifth) == dict(
        added=0, updated=0, unchanged=5, removed=1, quarantined=0, skipped=0
    )
    assert source_of(gone) not in {d.source for d in index.documents()}
    assert index.chunks(gone_id) == []
    assert all(h.doc_id != gone_id for h in index.search_lexical(["punycode"], 500)[0])
    assert index.verify() == []
    stats = index.stats()
    assert stats["documents"] == 5
    assert stats["chunks"] == stats["ntotal"] == sum(d.n_chunks for d in index.documents())


def test_sync_only_removes_documents_under_the_given_roots(
    shared_data: Path, tmp_path: Path, index: VectorIndex, embedder: Embedder
) -> None:
    a = small_docs(shared_data, tmp_path / "a")
    node = shared_data / "bench" / "nodejs-api"
    [b] = copy_files([node / "synopsis.md"], tmp_path / "b")
    ingestor = make_ingestor(index, embedder)
    assert ingestor.run([tmp_path / "a", tmp_path / "b"]).added == 3
    a[0].unlink()
    summary = ingestor.run([tmp_path / "b"], sync=True)  # a/ is not part of this run
    assert (summary.removed, summary.unchanged) == (0, 1)
    assert {d.source for d in index.documents()} == {source_of(p) for p in [*a, b]}


def test_broken_files_quarantined_and_not_retried(
    shared_data: Path, tmp_path: Path, index: VectorIndex, embedder: Embedder
) -> None:
    folder = tmp_path / "docs"
    good = small_docs(shared_data, folder)
    broken = truncated_pdf(shared_data, folder / "broken.pdf")
    noise = random_pdf(folder / "noise.pdf")
    (folder / "figure.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    ingestor = make_ingestor(index, embedder)

    first = ingestor.run([folder])
    assert counts(first) == dict(
        added=2, updated=0, unchanged=0, removed=0, quarantined=2, skipped=1
    )
    assert {d.source for d in index.documents()} == {source_of(p) for p in good}
    held = {q.source: q for q in index.quarantined()}
    assert set(held) == {source_of(broken), source_of(noise)}
    assert all(q.reason and q.content_hash for q in held.values())
    problems = {(p["source"], p["status"]) for p in first.problems}
    assert problems == {
        (source_of(broken), "quarantined"),
        (source_of(noise), "quarantined"),
        (source_of(folder / "figure.png"), "skipped"),
    }
    skipped = next(p for p in first.problems if p["status"] == "skipped")
    assert skipped["reason"] == "unsupported file type '.png'"

    # Unchanged broken files are not converted again (their records keep their timestamps).
    second = ingestor.run([folder])
    assert counts(second) == dict(
        added=0, updated=0, unchanged=2, removed=0, quarantined=2, skipped=1
    )
    assert {q.source: q for q in index.quarantined()} == held
    assert second.version == first.version

    # ... unless asked to; and a repaired file leaves quarantine.
    retried = ingestor.run([folder], retry_quarantined=True)
    assert retried.quarantined == 2
    assert all(q.at > held[q.source].at for q in index.quarantined())
    noise.write_bytes((shared_data / "papers" / "u-net.pdf").read_bytes())
    fixed = ingestor.run([folder])
    assert (fixed.added, fixed.quarantined) == (1, 1)
    assert {q.source for q in index.quarantined()} == {source_of(broken)}


def test_sync_forgets_quarantined_files_that_vanished(
    shared_data: Path, tmp_path: Path, index: VectorIndex, embedder: Embedder
) -> None:
    folder = tmp_path / "docs"
    small_docs(shared_data, folder)
    broken = truncated_pdf(shared_data, folder / "broken.pdf")
    ingestor = make_ingestor(index, embedder)
    assert ingestor.run([folder]).quarantined == 1
    broken.unlink()
    ingestor.run([folder], sync=True)
    assert index.quarantined() == []


def test_store_refuses_another_embedding_model(
    shared_data: Path, tmp_path: Path, index: VectorIndex, embedder: Embedder
) -> None:
    small_docs(shared_data, tmp_path / "docs")
    assert make_ingestor(index, embedder).run([tmp_path / "docs"]).added == 2
    with pytest.raises(EmbeddingMismatch, match="other/model"):
        VectorIndex.open(
            tmp_path / "index", IndexSettings(), embed_model="other/model", dim=embedder.dim
        )
    with pytest.raises(EmbeddingMismatch):
        VectorIndex.open(tmp_path / "index", IndexSettings(), embed_model=embedder.name, dim=768)


def test_watch_follows_new_changed_and_deleted_files(
    shared_data: Path, tmp_path: Path, index: VectorIndex, embedder: Embedder
) -> None:
    folder = tmp_path / "docs"
    first, second = small_docs(shared_data, folder)
    summaries: list[Summary] = []
    stop = threading.Event()
    ingestor = make_ingestor(index, embedder)
    thread = threading.Thread(
        target=watch,
        args=(ingestor, [folder]),
        kwargs=dict(interval_s=0.2, on_summary=summaries.append, stop=stop),
        daemon=True,
    )
    thread.start()
    try:

        def seen(**expected: int) -> bool:
            return any(counts(s) | expected == counts(s) for s in summaries)

        wait_until(lambda: len(summaries) >= 1, 30, "the initial ingest")
        assert summaries[0].added == 2
        new = folder / "note.txt"
        new.write_text("Watched folders pick up new notes.\n", encoding="utf-8")
        wait_until(lambda: seen(added=1, unchanged=2), 30, "the new file")
        first.write_text(first.read_text(encoding="utf-8") + f"\n\n{MARKER}\n", encoding="utf-8")
        wait_until(lambda: seen(updated=1, unchanged=2), 30, "the changed file")
        second.unlink()
        wait_until(lambda: seen(removed=1, unchanged=2), 30, "the deleted file")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert [counts(s) for s in summaries] == [
        dict(added=2, updated=0, unchanged=0, removed=0, quarantined=0, skipped=0),
        dict(added=1, updated=0, unchanged=2, removed=0, quarantined=0, skipped=0),
        dict(added=0, updated=1, unchanged=2, removed=0, quarantined=0, skipped=0),
        dict(added=0, updated=0, unchanged=2, removed=1, quarantined=0, skipped=0),
    ]
    assert {d.source for d in index.documents()} == {source_of(first), source_of(new)}
    [top] = index.search(embedder.encode([MARKER]), 1)[0]
    assert top.source == source_of(first) and MARKER in top.text


def test_other_writers_commit_while_an_ingest_run_converts_and_embeds(
    shared_data: Path, tmp_path: Path, index: VectorIndex, embedder: Embedder
) -> None:
    """The run holds the store's writer lock only while committing, so an upload gets a turn."""
    small_docs(shared_data, tmp_path / "docs")
    versions: list[int] = []

    def meanwhile(_: int) -> None:
        if versions:
            return
        # WriterBusy if the run held the lock throughout
        with Writer.acquire(index, timeout=1.0) as w:
            doc = DocumentRecord("upload", "/uploads/note.md", "h", 1, 1, "markdown", None)
            chunk = Chunk(0, 0, 4, "note", None, (), 1)
            w.put(doc, [chunk], embedder.encode(["note"]))
            versions.append(w.commit())

    summary = make_ingestor(index, embedder).run([tmp_path / "docs"], progress=meanwhile)
    assert versions and summary.added == 2 and summary.version > versions[0]
    assert {d.source for d in index.documents()} >= {"/uploads/note.md"}
    assert index.verify() == []
