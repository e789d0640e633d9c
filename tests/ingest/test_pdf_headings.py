"""Headings of PDFs without an outline, read from their fonts (``ingest.pdf_headings``).

Small PDFs written here (standard Helvetica fonts, one text object per line) pin each rule; the
real outline-less PDFs of the shared data (booktabs, TUGboat, BERT) pin what it finds in LaTeX
output, where it matters for retrieval: chunks now carry their section in what is indexed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from ingest.chunk import chunk_document
from ingest.clean import normalize_space
from ingest.convert import convert_bytes, convert_file
from ingest.model import ConversionError, Document

Line = tuple[str, float, str]  # (font: "R" regular or "B" bold, size, text)


def make_pdf(pages: list[list[Line]], *, outline: bool = False) -> bytes:
    """A PDF with one line of text per entry, top to bottom; optionally one bookmark."""
    objs: dict[int, bytes] = {
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        4: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>",
    }
    kids = []
    for n, lines in enumerate(pages):
        ops, y = [], 780.0
        for font, size, text in lines:
            safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"BT /F{font} {size} Tf 72 {y:.1f} Td ({safe}) Tj ET")
            y -= size * 1.4 + 2
        stream = "\n".join(ops).encode("latin-1")
        page_id, content_id = 10 + 2 * n, 11 + 2 * n
        objs[content_id] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
        objs[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /FR 3 0 R /FB 4 0 R >> >> >>" % content_id
        )
        kids.append(page_id)
    objs[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    catalog = b"<< /Type /Catalog /Pages 2 0 R"
    if outline:
        objs[5] = b"<< /Type /Outlines /First 6 0 R /Last 6 0 R /Count 1 >>"
        objs[6] = b"<< /Title (Bookmarked) /Parent 5 0 R /Dest [%d 0 R /Fit] >>" % kids[0]
        catalog += b" /Outlines 5 0 R"
    objs[1] = catalog + b" >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for num in sorted(objs):
        offsets[num] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (num, objs[num])
    size = max(objs) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for num in range(1, size):
        out += b"%010d 00000 n \n" % offsets[num] if num in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


BODY = [("R", 10, f"Body text line {i} says something about the matter at hand") for i in range(4)]


def sections(doc: Document) -> list[tuple[int, str]]:
    return [(s.level, s.title) for s in doc.sections]


def test_numbered_headings_by_size_and_weight() -> None:
    doc = convert_bytes(
        make_pdf(
            [
                [("R", 20, "A Title Set Large"), ("R", 12, "Ann Author"), *BODY],
                [("B", 14, "1 Introduction"), *BODY, ("B", 10, "1.1 Bold at body size"), *BODY],
                [("B", 14, "2 Method"), *BODY, ("R", 12, "2.1 Larger but regular"), *BODY],
            ]
        ),
        "paper.pdf",
    )
    assert sections(doc) == [
        (1, "1 Introduction"),
        (2, "1.1 Bold at body size"),
        (1, "2 Method"),
        (2, "2.1 Larger but regular"),
    ]
    for s in doc.sections:  # each placed on its own line of text
        assert doc.text[s.start :].startswith(s.title)


def test_unnumbered_matter_kept_labels_and_small_bold_dropped() -> None:
    doc = convert_bytes(
        make_pdf(
            [
                [("B", 12, "Abstract"), *BODY, ("B", 14, "1 Introduction"), *BODY],
                [("B", 12, "Encoder"), ("B", 12, "Figure label"), ("B", 8, "Figure 1 small")],
                [("B", 14, "2 Results"), *BODY, ("B", 12, "Encoder"), *BODY],
                [("B", 14, "References"), ("R", 10, "[1] Someone. A paper. 2020.")],
            ]
        ),
        "paper.pdf",
    )
    # A numbered document's unnumbered headings must name front or back matter: figure text is
    # set in heading type too.
    assert sections(doc) == [
        (1, "Abstract"),
        (1, "1 Introduction"),
        (1, "2 Results"),
        (1, "References"),
    ]


def test_unnumbered_document_needs_a_recurring_style() -> None:
    doc = convert_bytes(
        make_pdf(
            [
                [("R", 20, "Only On The Title Page"), *BODY, ("B", 13, "Getting started"), *BODY],
                [("B", 13, "Configuration"), *BODY, ("B", 11, "Advanced options"), *BODY],
                [("B", 13, "Troubleshooting"), *BODY, ("B", 11, "Known issues"), *BODY],
            ]
        ),
        "manual.pdf",
    )
    assert sections(doc) == [
        (1, "Getting started"),
        (1, "Configuration"),
        (2, "Advanced options"),
        (1, "Troubleshooting"),
        (2, "Known issues"),
    ]


def test_capital_letters_number_appendices_only_after_digits() -> None:
    pages = [[("B", 14, "A Survey of Things"), *BODY], [("B", 14, "B Other Matters"), *BODY]]
    # No digits anywhere: "A" and "B" open the words, and the recurring bold style makes them
    # plain headings (not appendices, not dropped as unnumbered lines of a numbered document).
    assert sections(convert_bytes(make_pdf(pages), "x.pdf")) == [
        (1, "A Survey of Things"),
        (1, "B Other Matters"),
    ]


def test_sentences_and_inline_bold_are_not_headings() -> None:
    doc = convert_bytes(
        make_pdf(
            [
                [("B", 12, "Note that this bold line is a sentence."), *BODY],
                [("B", 12, "Note that this bold line is a sentence."), *BODY],
                [("R", 10, "Some words and then"), ("B", 10, "bold words"), *BODY],
            ]
        ),
        "notes.pdf",
    )
    assert sections(doc) == []


def test_a_heading_over_two_lines_is_one() -> None:
    doc = convert_bytes(
        make_pdf(
            [
                [
                    ("B", 14, "1 A long heading that the layout"),
                    ("B", 14, "broke over two lines"),
                    *BODY,
                ],
                [("B", 14, "2 Short"), *BODY],
            ]
        ),
        "wrap.pdf",
    )
    assert sections(doc) == [
        (1, "1 A long heading that the layout broke over two lines"),
        (1, "2 Short"),
    ]


def test_an_outline_wins_over_fonts() -> None:
    pages = [[("B", 14, "1 Introduction"), *BODY], [("B", 14, "2 Method"), *BODY]]
    assert sections(convert_bytes(make_pdf(pages, outline=True), "x.pdf")) == [(1, "Bookmarked")]
    assert sections(convert_bytes(make_pdf(pages), "x.pdf")) == [
        (1, "1 Introduction"),
        (1, "2 Method"),
    ]


_words = st.text(alphabet="abcdefgh XYZ.123", min_size=1, max_size=40)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(st.sampled_from("RB"), st.sampled_from([8, 10, 12, 16]), _words), max_size=8
        ),
        min_size=1,
        max_size=4,
    )
)
def test_any_styled_text_converts_with_sections_in_order(pages: list[list[Line]]) -> None:
    try:
        doc = convert_bytes(make_pdf(pages), "any.pdf")
    except ConversionError as e:  # only when there is no text at all
        assert "no extractable text" in str(e)
        return
    starts = [s.start for s in doc.sections]
    assert starts == sorted(starts)
    assert all(0 <= s.start <= len(doc.text) and s.level >= 1 and s.title for s in doc.sections)


# --- real outline-less PDFs ------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(shared_data: Path) -> dict[str, Document]:
    return {
        "booktabs": convert_file(shared_data / "qa2" / "docs" / "booktabs.pdf"),
        "tugboat": convert_file(shared_data / "qa2" / "docs" / "tugboat-author-macros.pdf"),
        "bert": convert_file(shared_data / "papers" / "bert-pre-training.pdf"),
    }


def test_latex_documents_get_their_sections(real: dict[str, Document]) -> None:
    assert sections(real["booktabs"])[:4] == [
        (1, "1 Introduction"),
        (2, "1.1 A note on terminology"),
        (1, "2 The layout of formal tables"),
        (1, "3 Use of the new commands"),
    ]
    assert (2, "9.2 Special subrules") in sections(real["booktabs"])
    tug = sections(real["tugboat"])
    assert (1, "7 Titles, addresses and so on") in tug
    assert (2, "13.1 Non-recommended bibliography facilities") in tug  # over two lines
    assert [t for _, t in sections(real["bert"])] == [
        "Abstract",
        "1 Introduction",
        "2 Related Work",
        "3 BERT",
        "4 Experiments",
        "5 Ablation Studies",
        "6 Conclusion",
        "References",
        "Appendix for “BERT: Pre-training of",  # the first of its three lines
        "A Additional Details for BERT",
        "B Detailed Experimental Setup",
        "C Additional Ablation Studies",
    ]


def test_a_passage_that_never_names_its_subject_is_indexed_under_it(
    real: dict[str, Document], tokenizer: Tokenizer
) -> None:
    # qa2's "Which command sets the abbreviated article title that appears in the running
    # heads?": the passage speaks of \shortTitle and running heads, its section of titles.
    chunks = chunk_document(real["tugboat"], tokenizer, size=64)
    hit = next(c for c in chunks if "form used in running heads" in normalize_space(c.text))
    assert hit.heading[-1] == "7 Titles, addresses and so on"
