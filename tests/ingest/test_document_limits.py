"""Per-document limits: a small file that expands into huge text, or into too many chunks, is
quarantined with the reason before anything is embedded, while the rest of the batch ingests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.embed import Embedder
from ingest.index import VectorIndex
from ingest.pool import ConversionPool, Failed, convert_path
from ingest.scan import source_of
from tests.conftest import make_ingestor, open_store

SENTENCE = "The lighthouse keeper calibrates quantum sundials every Tuesday at dawn."


@pytest.fixture
def index(tmp_path: Path, embedder: Embedder) -> Iterator[VectorIndex]:
    idx = open_store(tmp_path / "index", embedder)
    yield idx
    idx.close()


def text_pdf(dest: Path, lines: int) -> Path:
    """A one-page PDF, a few KB compressed, whose content stream draws ``lines`` lines of text."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    fonts = DictionaryObject({NameObject("/F1"): writer._add_object(font)})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    shown = b" ".join(b"(%s %d) Tj T*" % (SENTENCE.encode(), i) for i in range(lines))
    stream = DecodedStreamObject()
    stream.set_data(b"BT /F1 10 Tf 14 TL 40 760 Td " + shown + b" ET")
    page[NameObject("/Contents")] = writer._add_object(stream)
    page.compress_content_streams()
    with dest.open("wb") as f:
        writer.write(f)
    return dest


def paragraphs(n: int) -> str:
    return "\n\n".join(f"{SENTENCE} Paragraph {i} adds its own words." for i in range(n))


def test_text_limit_is_checked_in_the_conversion_worker(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text(paragraphs(400))
    failed = convert_path(big, max_bytes=10**9, max_chars=5_000)
    assert isinstance(failed, Failed) and not failed.skipped
    assert "ingest.max_text_chars" in failed.reason and failed.content_hash
    with ConversionPool(max_text_chars=5_000) as pool:
        [outcome] = pool.imap([big])
    assert isinstance(outcome, Failed) and outcome.reason == failed.reason


def test_documents_over_a_limit_are_quarantined_and_the_rest_ingests(
    tmp_path: Path, index: VectorIndex, embedder: Embedder
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    good = folder / "good.txt"
    good.write_text(paragraphs(3))
    huge_txt = folder / "huge.txt"
    huge_txt.write_text(paragraphs(2_000))  # ~130k characters
    bomb = text_pdf(folder / "bomb.pdf", lines=2_000)
    assert bomb.stat().st_size < 20_000  # small on disk, ~150k characters of text
    many = folder / "many.txt"
    many.write_text(paragraphs(150))  # ~16k characters: under the text limit, over 30 chunks

    ingestor = make_ingestor(index, embedder, max_text_chars=20_000, max_chunks=30)
    summary = ingestor.run([folder])

    assert (summary.added, summary.quarantined) == (1, 3)
    assert [d.source for d in index.documents()] == [source_of(good)]
    held = {q.source: q.reason for q in index.quarantined()}
    assert "ingest.max_text_chars" in held[source_of(huge_txt)]
    assert "ingest.max_text_chars" in held[source_of(bomb)]
    assert "ingest.max_chunks" in held[source_of(many)]
    assert summary.chunks == index.documents()[0].n_chunks  # only the good one was embedded
