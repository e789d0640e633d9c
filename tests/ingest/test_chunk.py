"""Tests for token-aware chunking with the embedding model's real tokenizer."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from ingest.chunk import chunk_document
from ingest.convert import convert_file
from ingest.model import Chunk, Document, PageSpan, Section


def token_count(tokenizer: Tokenizer, text: str) -> int:
    """Tokens of ``text`` on its own, counted the way the chunker's budget counts them."""
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    return sum(1 for s, e in offsets if e > s)


def assert_well_formed(
    doc: Document,
    chunks: list[Chunk],
    tokenizer: Tokenizer,
    size: int,
) -> None:
    """The invariants every chunking must satisfy, whatever the input."""
    text = doc.text
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    covered = 0  # every character before this offset is in a chunk or is whitespace
    for prev, chunk in zip([None, *chunks], chunks, strict=False):
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.text, f"empty chunk {chunk}"
        assert chunk.text == chunk.text.strip(), "chunks are trimmed of surrounding whitespace"
        assert chunk.page == doc.page_at(chunk.start)
        assert chunk.heading == doc.heading_path(chunk.start)
        n = token_count(tokenizer, chunk.text)
        assert n <= size, f"chunk {chunk.ordinal} has {n} tokens > {size}: {chunk.text!r}"
        assert chunk.n_tokens == n
        if prev is not None:
            assert prev.start < chunk.start and prev.end < chunk.end, "offsets must increase"
        elif prev is not None:
            assert prev.start <= chunk.start and prev.end <= chunk.end, "offsets must not decrease"
        gap = text[covered : chunk.start]
        assert not gap.strip(), f"non-whitespace {gap!r} between chunks"
        covered = max(covered, chunk.end)
    assert not text[covered:].strip(), f"non-whitespace {text[covered:]!r} after the last chunk"


# --- hand-built documents ------------------------------------------------------------------


def paragraphs_doc(n_paragraphs: int, sentences: int) -> Document:
    paras = [
        " ".join(f"Paragraph {p} sentence {s} talks about topic {p}." for s in range(sentences))
        for p in range(n_paragraphs)
    ]
    return Document(text="\n\n".join(paras), kind="text")


def test_rejects_bad_size_and_overlap(tokenizer: Tokenizer) -> None:
    doc = Document(text="some words", kind="text")
    with pytest.raises(ValueError):
        chunk_document(doc, tokenizer, size=0)
    with pytest.raises(ValueError):
        chunk_document(doc, tokenizer, size=8, overlap=-1)


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t \n"])
def test_empty_and_whitespace_documents_have_no_chunks(tokenizer: Tokenizer, text: str) -> None:
    assert chunk_document(Document(text=text, kind="text"), tokenizer, size=16) == []


def test_short_document_is_one_trimmed_chunk(tokenizer: Tokenizer) -> None:
    doc = Document(text="\n  Attention is all you need.  \n", kind="text")
    [chunk] = chunk_document(doc, tokenizer, size=64, overlap=8)
    assert (chunk.ordinal, chunk.start, chunk.end) == (0, 3, 29)
    assert chunk.text == "Attention is all you need."
    assert chunk.n_tokens == token_count(tokenizer, chunk.text) == 6
    assert (chunk.page, chunk.heading) == (None, ())


def test_breaks_at_paragraphs_without_overlap(tokenizer: Tokenizer) -> None:
    # Each paragraph is 3 sentences of 9 tokens; a 40-token budget fits one paragraph only.
    doc = paragraphs_doc(n_paragraphs=5, sentences=3)
    paras = doc.text.split("\n\n")
    assert token_count(tokenizer, paras[0]) == 27
    chunks = chunk_document(doc, tokenizer, size=40, overlap=8)
    assert_well_formed(doc, chunks, tokenizer, 40)
    # A cut at a paragraph break needs no overlap: the chunks are exactly the paragraphs.
    assert [c.text for c in chunks] == paras


def test_long_paragraph_breaks_at_sentences_with_overlap(tokenizer: Tokenizer) -> None:
    doc = paragraphs_doc(n_paragraphs=1, sentences=12)  # 108 tokens, no paragraph breaks
    chunks = chunk_document(doc, tokenizer, size=32, overlap=8)
    assert_well_formed(doc, chunks, tokenizer, 32)
    assert len(chunks) >= 4
    for prev, nxt in itertools.pairwise(chunks):
        # Cut after a sentence; the next chunk restarts a little earlier (shared context).
        assert prev.text.endswith(".")
        assert nxt.start < prev.end
        shared = doc.text[nxt.start : prev.end]
        assert prev.text.endswith(shared) and nxt.text.startswith(shared)
        assert 0 < token_count(tokenizer, shared) <= 8


def test_zero_overlap_never_shares_text(tokenizer: Tokenizer) -> None:
    doc = paragraphs_doc(n_paragraphs=1, sentences=12)
    chunks = chunk_document(doc, tokenizer, size=32, overlap=0)
    assert_well_formed(doc, chunks, tokenizer, 32)
    assert len(chunks) == 4  # 108 tokens, cut after every third 9-token sentence (27 tokens)
    assert all(p.end < n.start for p, n in itertools.pairwise(chunks))
    assert " ".join(c.text for c in chunks) == doc.text


def test_chunks_end_at_section_starts(tokenizer: Tokenizer) -> None:
    # Sections of 1 + 19 tokens under a 32-token budget: no two fit together, and the only
    # section start in budget beats the paragraph break and sentence ends inside each section.
    body = "It reads each page in turn. It counts the tokens.\n\nIt stops at the end."
    assert token_count(tokenizer, body) == 19
    titles = ["Intro", "Methods", "Results", "Discussion"]
    text = "\n\n".join(f"{t}\n\n{body}" for t in titles)
    starts = [text.index(t) for t in titles]
    levels = [1, 2, 3, 2]
    doc = Document(
        text=text,
        kind="markdown",
        sections=[Section(s, lv, t) for s, lv, t in zip(starts, levels, titles, strict=True)],
    )
    chunks = chunk_document(doc, tokenizer, size=32, overlap=4)
    assert_well_formed(doc, chunks, tokenizer, 32)
    assert [c.start for c in chunks] == starts
    assert [c.text for c in chunks] == [f"{t}\n\n{body}" for t in titles]
    assert [c.heading for c in chunks] == [
        ("Intro",),
        ("Intro", "Methods"),
        ("Intro", "Methods", "Results"),
        ("Intro", "Discussion"),
    ]


READING = (
    "The reader opens the file and checks its header. It then reads every page in turn and counts"
    " the tokens on each. It stops at the end of the file. Errors are logged."
)
WRITING = "The writer appends one record per page and syncs the file."


def sectioned(*parts: tuple[str, int, str]) -> Document:
    """A PDF-like document of (title, level, body) sections, heading lines then their bodies."""
    text, sections = "", []
    for title, level, body in parts:
        sections.append(Section(len(text), level, title))
        text += f"{title}\n{body}\n" if body else f"{title}\n"
    return Document(text=text.rstrip(), kind="pdf", sections=sections)


def test_the_rest_of_a_section_does_not_run_on_into_the_next(tokenizer: Tokenizer) -> None:
    """The last 13 tokens of "Reading" used to share a chunk with "Writing", filed under
    "Reading": a section start within the first quarter of a chunk did not end it."""
    doc = sectioned(("Reading", 1, READING), ("Writing", 1, WRITING))
    chunks = chunk_document(doc, tokenizer, size=32)
    assert_well_formed(doc, chunks, tokenizer, 32)
    assert [(c.heading, c.text.split()[0]) for c in chunks] == [
        (("Reading",), "Reading"),
        (("Reading",), "It"),
        (("Writing",), "Writing"),
    ]
    # Under a budget that fits the whole section, nothing changes.
    assert [c.heading for c in chunk_document(doc, tokenizer, size=40)] == [
        ("Reading",),
        ("Writing",),
    ]


def test_a_bare_heading_and_a_short_tail_stay_with_what_follows(tokenizer: Tokenizer) -> None:
    doc = sectioned(("Part I", 1, ""), ("Writing", 2, WRITING))
    assert [c.text for c in chunk_document(doc, tokenizer, size=32)] == [doc.text]
    tail = sectioned(("Reading", 1, "It ends."), ("Writing", 1, WRITING))
    assert token_count(tokenizer, "Reading\nIt ends.") < 64 // 8  # too short to stand alone
    assert [c.text for c in chunk_document(tail, tokenizer, size=64)] == [tail.text]


def test_chunks_end_at_page_starts(tokenizer: Tokenizer) -> None:
    # Pages of 2 + 3 * 10 tokens with single line breaks; a 48-token budget fits one page only.
    sentence = "The encoder reads each page in turn."
    pages = [f"Page {n}\n" + " ".join([sentence] * 3) for n in (1, 2, 3)]
    assert token_count(tokenizer, pages[0]) == 32
    text = "\n".join(pages)
    starts = [text.index(p) for p in pages]
    doc = Document(
        text=text,
        kind="pdf",
        pages=[PageSpan(s, n) for n, s in zip((1, 2, 3), starts, strict=True)],
    )
    chunks = chunk_document(doc, tokenizer, size=48, overlap=8)
    assert_well_formed(doc, chunks, tokenizer, 48)
    assert [(c.start, c.page, c.text) for c in chunks] == list(
        zip(starts, (1, 2, 3), pages, strict=True)
    )


def test_word_longer_than_budget_is_split_inside(tokenizer: Tokenizer) -> None:
    word = "xq" * 45  # 90 word pieces; WordPiece gives up (one [UNK]) only past 100 characters
    assert token_count(tokenizer, word) == 90
    doc = Document(text=f"start {word} end", kind="text")
    chunks = chunk_document(doc, tokenizer, size=16)
    assert_well_formed(doc, chunks, tokenizer, 16)
    assert len(chunks) >= 6
    joined = "".join(c.text for c in chunks)
    assert joined.replace(" ", "") == doc.text.replace(" ", "")  # no overlap, nothing lost


def test_split_piece_inside_next_chunks_overlap(tokenizer: Tokenizer) -> None:
    # Found by hypothesis. The chunk "dfab...000 0:" starts mid-word, so on its own it tokenizes
    # into more than 13 pieces and is split into "dfab...000" and "0:"; the next chunk already
    # restarts (overlap) at "0:", so the piece "0:" duplicates the head of "0: thethe".
    text = (
        "thethe0A02 modelmodelaaaaaaaaaaaaaaaaaaaabdgaaaaaaaaaaaaacfhbbhbdabdaaaaacfdaaaaabdfab"
        "daaabdacfaa000 0: thethe"
    )
    doc = Document(text=text, kind="text")
    chunks = chunk_document(doc, tokenizer, size=13, overlap=2)
    assert_well_formed(doc, chunks, tokenizer, 13)


# --- real documents ------------------------------------------------------------------------


def test_llm_guide_headings(shared_data: Path, tokenizer: Tokenizer) -> None:
    doc = convert_file(shared_data / "corpus" / "llm-guide.txt")
    chunks = chunk_document(doc, tokenizer, size=128, overlap=16)
    assert_well_formed(doc, chunks, tokenizer, 128)
    assert chunks[0].heading == ("Large Language Models",)
    headed = {c.heading[-1] for c in chunks if c.heading}
    assert {"Selecting an LLM", "Popular LLMs", "Key Features"} <= headed
    section_starts = {s.start for s in doc.sections}
    # Most chunks begin a section or paragraph: the guide is short paragraphs under headings.
    at_paragraph = [
        c for c in chunks if c.start in section_starts or doc.text[: c.start].endswith("\n\n")
    ]
    assert len(at_paragraph) >= 0.8 * len(chunks)
    selecting = next(c for c in chunks if c.heading == ("Selecting an LLM",))
    assert selecting.start == next(s.start for s in doc.sections if s.title == "Selecting an LLM")


def test_pdf_pages(shared_data: Path, tokenizer: Tokenizer) -> None:
    doc = convert_file(shared_data / "papers" / "u-net.pdf")
    assert len(doc.pages) == 8
    chunks = chunk_document(doc, tokenizer, size=128, overlap=16)
    assert_well_formed(doc, chunks, tokenizer, 128)
    pages = [c.page for c in chunks]
    assert pages == sorted(pages)
    assert set(pages) == set(range(1, 9))
    # A page start is a strong break: every page's first chunk starts exactly where the page does.
    for span in doc.pages[1:]:
        first = next(c for c in chunks if c.page == span.page)
        assert first.start == span.start + len(doc.text[span.start :]) - len(
            doc.text[span.start :].lstrip()
        )


# --- properties ----------------------------------------------------------------------------

_pieces = st.one_of(
    st.sampled_from(["the", "model", "attention", "RAG", "ok.", "why?", "x;", "3.14", "e-mail"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8),
    st.text(st.sampled_from("abcdefghij"), min_size=20, max_size=300),  # very long words
    st.sampled_from(
        ["ünïcödé", "日本語のテキスト", "Ωμέγα", "🙂🙂", "naïve café", "\u00a0", "\u2028"]
    ),
    st.sampled_from([" ", "  ", "\n", "\n\n", "\n\n\n", "\t", " \n \n ", "\r\n"]),
)


@st.composite
def documents(draw: st.DrawFn) -> Document:
    text = "".join(draw(st.lists(_pieces, min_size=10, max_size=250)))
    offsets = st.integers(0, len(text))
    starts = sorted(draw(st.lists(offsets, max_size=6, unique=True)))
    levels = draw(st.lists(st.integers(1, 3), min_size=len(starts), max_size=len(starts)))
    sections = [
        Section(s, lv, f"H{i}") for i, (s, lv) in enumerate(zip(starts, levels, strict=True))
    ]
    page_starts = sorted([*draw(st.lists(offsets, max_size=4, unique=True)), 0])
    pages = [PageSpan(s, i + 1) for i, s in enumerate(dict.fromkeys(page_starts))]
    paged = draw(st.booleans())
    return Document(text=text, kind="text", sections=sections, pages=pages if paged else [])


_property_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@_property_settings
@given(doc=documents(), size=st.integers(8, 64), overlap=st.integers(0, 16))
def test_chunks_cover_text_within_budget(
    tokenizer: Tokenizer, doc: Document, size: int, overlap: int
) -> None:
    chunks = chunk_document(doc, tokenizer, size=size, overlap=overlap)
    assert_well_formed(doc, chunks, tokenizer, size)
    assert bool(chunks) == bool(doc.text.strip())


@_property_settings
@given(doc=documents(), size=st.integers(8, 64), overlap=st.integers(0, 16))
def test_chunking_is_deterministic(
    tokenizer: Tokenizer, doc: Document, size: int, overlap: int
) -> None:
    first = chunk_document(doc, tokenizer, size=size, overlap=overlap)
    assert chunk_document(doc, tokenizer, size=size, overlap=overlap) == first
