"""Contextual chunks: document titles per format, the bounded prefix, and where it is indexed."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader, PdfWriter
from tokenizers import Tokenizer

from ingest.context import (
    PREFIX_TOKENS,
    context_prefix,
    contextual_text,
    file_title,
    plausible_title,
)
from ingest.convert import convert_bytes, convert_file
from ingest.embed import Embedder
from ingest.index import VectorIndex
from ingest.model import Chunk
from ingest.records import Record, record_document
from ingest.search import retrieve
from ingest.settings import ChunkSettings, RetrievalSettings
from tests.conftest import make_ingestor, open_store

BM25 = RetrievalSettings(mode="bm25", min_score=None)


@pytest.fixture
def index(tmp_path: Path, embedder: Embedder) -> Iterator[VectorIndex]:
    idx = open_store(tmp_path / "index", embedder)
    yield idx
    idx.close()


# --- titles ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("qa2/docs/sqlite-wal.html", "Write-Ahead Logging"),  # <title>
        ("qa2/docs/git-bisect-lk2009.html", "Fighting regressions with git bisect"),
        ("qa2/docs/zstd-CONTRIBUTING.md", "Contributing to Zstandard"),  # first # heading
        ("qa2/docs/booktabs.pdf", "booktabs"),  # no metadata title, no outline: file name
        ("qa2/docs/tugboat-author-macros.pdf", "tugboat author macros"),
        ("papers/u-net.pdf", "U-Net: Convolutional Networks for Biomedical Image Segmentation"),
        ("papers/attention-is-all-you-need.pdf", "attention is all you need"),  # "Introduction"
        ("corpus/llm-guide.txt", "llm guide"),  # plain text: the file name
        ("corpus/zlib-usage.html", "zlib Usage Example"),
    ],
)
def test_each_format_gets_a_title(shared_data: Path, name: str, title: str) -> None:
    assert convert_file(shared_data / name).title == title


def _retitled_pdf(path: Path, title: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(path))
    writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_junk_pdf_metadata_falls_back_to_the_outline_then_the_file_name(shared_data: Path) -> None:
    unet = _retitled_pdf(shared_data / "papers" / "u-net.pdf", "Microsoft Word - unet.docx")
    doc = convert_bytes(unet, "u-net.pdf")
    assert doc.title == "U-Net: Convolutional Networks for Biomedical Image Segmentation"
    booktabs = _retitled_pdf(shared_data / "qa2" / "docs" / "booktabs.pdf", "booktabs.dtx")
    assert convert_bytes(booktabs, "booktabs.pdf").title == "booktabs"
    good = _retitled_pdf(shared_data / "qa2" / "docs" / "booktabs.pdf", "Publication tables")
    assert convert_bytes(good, "booktabs.pdf").title == "Publication tables"


def test_html_without_title_uses_its_first_h1_then_the_file_name() -> None:
    doc = convert_bytes(b"<body><h1>Quokka manual</h1><p>Body text.</p></body>", "q.html")
    assert doc.title == "Quokka manual"
    assert convert_bytes(b"<p>Just text.</p>", "release_notes-2.html").title == "release notes 2"


@pytest.mark.parametrize(
    "junk", ["", "  ", "Microsoft Word - report.doc", "untitled", "main.tex", "/tmp/x", "1234"]
)
def test_junk_titles_are_rejected(junk: str) -> None:
    assert plausible_title(junk) is None


def test_file_title() -> None:
    assert file_title("/data/gnuplot-5.4-manual.pdf") == "gnuplot 5.4 manual"


def test_record_title_is_not_repeated_in_its_context() -> None:
    rec = Record("d1", "Vitamin D and bone density", "Supplements raised it.", 1, "h")
    doc = record_document(rec)
    assert doc.title == "Vitamin D and bone density"
    body = Chunk(1, 0, 5, "Supplements raised it.", None, ("Vitamin D and bone density",), 4)
    text = contextual_text("title+heading", doc.title, body)
    assert text == "Vitamin D and bone density\nSupplements raised it."
    assert contextual_text("heading", doc.title, body) == text  # same thing for records


# --- the prefix ------------------------------------------------------------------------------


def test_prefix_is_title_then_section_path_and_bounded(tokenizer: Tokenizer) -> None:
    chunk = Chunk(0, 0, 10, "It rotates logs nightly.", None, ("Usage", "Options"), 6)
    assert contextual_text("none", "Quokka", chunk) == chunk.text
    assert contextual_text("heading", "Quokka", chunk) == "Usage > Options\n" + chunk.text
    assert contextual_text("title+heading", "Quokka", chunk) == (
        "Quokka > Usage > Options\n" + chunk.text
    )
    opening = Chunk(0, 0, 10, "Options\nIt rotates.", None, ("Usage", "Options"), 4)
    assert contextual_text("title+heading", "Quokka", opening) == "Quokka > Usage\n" + opening.text

    def count(s: str) -> int:
        return len(tokenizer.encode(s, add_special_tokens=False).ids)

    long_title = " ".join(f"word{i}" for i in range(40))
    text = contextual_text("title+heading", long_title, chunk, count)
    prefix, body = text.split("\n", 1)
    assert body == chunk.text and 0 < count(prefix) <= PREFIX_TOKENS
    assert long_title.startswith(prefix)  # the title is kept first, inner sections dropped


def test_legacy_heading_context_setting_still_loads() -> None:
    assert ChunkSettings.model_validate({"heading_context": True}).context == "heading"
    assert ChunkSettings.model_validate({"heading_context": "false"}).context == "none"
    assert ChunkSettings().context == "title+heading"  # chosen on bench/context.py


# --- what is indexed -------------------------------------------------------------------------


class SpyEmbedder:
    """The real encoder, remembering every text it was asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.name, self.dim, self.max_tokens = inner.name, inner.dim, inner.max_tokens
        self.tokenizer = inner.tokenizer
        self.texts: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self._inner.encode(texts)


QUOKKA = (
    b"<html><head><title>Quokka Logger Manual</title></head><body><h2>Rotation</h2>"
    b"<p>It rotates the files every night and keeps seven of them.</p></body></html>"
)


def test_title_reaches_the_embedder_and_bm25_not_the_stored_text(
    tmp_path: Path, index: VectorIndex, embedder: Embedder
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "quokka.html").write_bytes(QUOKKA)
    spy = SpyEmbedder(embedder)
    plain = make_ingestor(index, spy, chunk=ChunkSettings(context="none"))
    plain.run([tmp_path / "docs"])
    assert not retrieve(embedder, index, "quokka", 5, BM25)
    assert spy.texts == [h.text for h in index.chunks(index.documents()[0].doc_id)]

    spy.texts.clear()
    ctx = make_ingestor(index, spy, chunk=ChunkSettings(context="title+heading"))
    summary = ctx.run([tmp_path / "docs"], trust_stat=True)  # as the watcher polls
    assert (summary.updated, summary.unchanged) == (1, 0)  # a new context re-embeds
    (doc,) = index.documents()
    assert (doc.title, doc.context) == ("Quokka Logger Manual", "title+heading")
    (hit,) = retrieve(embedder, index, "quokka", 5, BM25)  # a word only the title has
    assert "quokka" not in hit.text.lower() and "keeps seven" in hit.text
    (embedded,) = spy.texts
    assert embedded.startswith("Quokka Logger Manual") and embedded.endswith("\n" + hit.text)
    dense = retrieve(embedder, index, "quokka", 5, RetrievalSettings(mode="dense", min_score=None))
    # One text per call: int8 activations are quantized per batch, so batches differ slightly.
    vector, query = (embedder.encode([t])[0] for t in (embedded, "quokka"))
    assert dense[0].score == pytest.approx(float(vector @ query), abs=1e-3)

    assert ctx.run([tmp_path / "docs"]).unchanged == 1  # same content, same context


MANUAL = (
    b"<html><head><title>Quokka Logger Manual</title></head><body><h2>Rotation</h2>"
    + b"".join(
        b"<p>Paragraph %d says the files rotate at night, keeping seven.</p>" % i for i in range(12)
    )
    + b"<h2>Levels</h2><p>Debug, info, warn and error are the levels it knows.</p></body></html>"
)


def test_added_context_encodes_each_prefix_once_and_adds_its_vector(
    tmp_path: Path, index: VectorIndex, embedder: Embedder
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "manual.html").write_bytes(MANUAL)
    spy = SpyEmbedder(embedder)
    chunking = ChunkSettings(context="title+heading", context_embedding="added", size=32)
    assert chunking.context_weight == 0.75
    make_ingestor(index, spy, chunk=chunking).run([tmp_path / "docs"])
    (doc,) = index.documents()
    chunks = index.chunks(doc.doc_id)
    assert doc.context == "title+heading+added:0.75"
    # The encoder read every chunk's own text, then each distinct prefix once, not per chunk
    # (a chunk that opens with its own heading has the title alone).
    n = len(chunks)
    assert spy.texts[:n] == [h.text for h in chunks]
    read = spy.texts[n:]
    assert read == sorted(set(read)) and len(read) <= 3 < n
    assert {"Quokka Logger Manual > Rotation", "Quokka Logger Manual"} <= set(read)
    (hit,) = retrieve(embedder, index, "quokka levels", 1, BM25)  # BM25 still reads the prefix
    assert "quokka" not in hit.text.lower() and "Debug" in hit.text
    # The stored vector is the normalized sum, the prefix's weighted.
    dense = retrieve(embedder, index, "quokka", 1, RetrievalSettings(mode="dense", min_score=None))
    text, query = (embedder.encode([t])[0] for t in (dense[0].text, "quokka"))
    top = dense[0]
    as_chunk = Chunk(0, top.start, top.end, top.text, top.page, top.heading, top.n_tokens)
    prefix = embedder.encode([context_prefix("title+heading", doc.title, as_chunk)])[0]
    vector = text + 0.75 * prefix
    vector /= np.linalg.norm(vector)
    assert dense[0].score == pytest.approx(float(vector @ query), abs=2e-2)  # int8: per-batch
    # Another weight (or going back to prefixed texts) is another index: re-embedded once.
    heavier = chunking.model_copy(update={"context_weight": 1.0})
    again = make_ingestor(index, embedder, chunk=heavier).run([tmp_path / "docs"])
    assert (again.updated, again.unchanged) == (1, 0)
    assert index.documents()[0].context == "title+heading+added:1"
    assert make_ingestor(index, embedder, chunk=heavier).run([tmp_path / "docs"]).unchanged == 1
    assert ChunkSettings(context="none").context_key == "none"  # nothing to add


def test_old_docstore_migrates_and_its_documents_are_reindexed_once(
    shared_data: Path, tmp_path: Path, embedder: Embedder
) -> None:
    docs = [shared_data / "corpus" / "llm-guide.txt"]
    root = tmp_path / "index"
    idx = open_store(root, embedder)
    make_ingestor(idx, embedder, chunk=ChunkSettings(context="heading")).run(docs)
    idx.close()
    # Make it what ragtune wrote before: no context column, no title for a text file.
    with sqlite3.connect(root / "docstore.sqlite") as conn:
        conn.execute("ALTER TABLE documents DROP COLUMN context")
        conn.execute("UPDATE documents SET title = NULL")
        conn.execute("UPDATE meta SET value = 1 WHERE key = 'schema_version'")
    idx = open_store(root, embedder)
    try:
        (old,) = idx.documents()
        assert (old.context, old.title) == (None, "llm guide")  # NULL title: the file name
        # The old default (heading) is what old rows were indexed with: nothing to redo.
        same = make_ingestor(idx, embedder, chunk=ChunkSettings(context="heading")).run(docs)
        assert (same.unchanged, same.updated) == (1, 0)
        new = make_ingestor(idx, embedder, chunk=ChunkSettings(context="title+heading")).run(docs)
        assert (new.unchanged, new.updated) == (0, 1)
        (doc,) = idx.documents()
        assert doc.context == "title+heading"
    finally:
        idx.close()
    with sqlite3.connect(root / "docstore.sqlite") as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        chunk_columns = [r[1] for r in conn.execute("PRAGMA table_info(chunks)")]
        texts = [r[0] for r in conn.execute("SELECT text FROM chunks")]
    assert int(meta["schema_version"]) == 2
    assert "title" not in chunk_columns  # stored once, on the document
    assert not any(t.startswith("llm guide") for t in texts)  # stored text is the passage
