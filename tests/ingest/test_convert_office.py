"""DOCX and PPTX conversion, on files the tests write with python-docx and python-pptx."""

from __future__ import annotations

import io
import string
import zipfile
from typing import Any

import docx
import pytest
from docx.enum.style import WD_STYLE_TYPE
from hypothesis import given, settings
from hypothesis import strategies as st
from pptx import Presentation
from pptx.util import Inches

from ingest import convert_office
from ingest.convert import convert_bytes
from ingest.model import ConversionError


def _docx_bytes(d: Any) -> bytes:
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _report() -> bytes:
    d = docx.Document()
    d.add_heading("Quarterly report", 0)
    d.add_paragraph("Written before any section.")
    d.add_heading("Results", 1)
    d.add_paragraph("Revenue grew in every region.\nSee the table below.")
    d.add_heading("By region", 2)
    table = d.add_table(rows=3, cols=3)
    rows = [["Region", "Q1", "Q2"], ["North", "10", "12"], ["South east", "7", "9"]]
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    table.cell(2, 0).text = "South\neast"  # a line break inside a cell
    table.cell(0, 1).merge(table.cell(0, 2)).text = "Quarters"
    d.add_paragraph("After the table.")
    custom = d.styles.add_style("Appendix Heading", WD_STYLE_TYPE.PARAGRAPH)
    custom.base_style = d.styles["Heading 2"]
    d.add_heading("Outlook", 1)
    d.add_paragraph("Steady growth expected.", style="List Bullet")
    d.add_paragraph("Method notes", style="Appendix Heading")
    d.add_paragraph("Numbers are unaudited.")
    return _docx_bytes(d)


def test_docx_headings_become_sections() -> None:
    doc = convert_bytes(_report(), "report.docx")
    assert doc.kind == "docx"
    assert doc.title == "Quarterly report"
    assert [(s.level, s.title) for s in doc.sections] == [
        (1, "Quarterly report"),
        (1, "Results"),
        (2, "By region"),
        (1, "Outlook"),
        (2, "Method notes"),  # a custom style based on "Heading 2"
    ]
    for s in doc.sections:
        assert doc.text[s.start :].startswith(s.title)
    assert doc.heading_path(doc.text.index("North")) == ("Results", "By region")
    assert doc.heading_path(doc.text.index("unaudited")) == ("Outlook", "Method notes")
    assert "Revenue grew in every region.\nSee the table below." in doc.text
    assert doc.pages == []


def test_docx_table_rows_stay_rows() -> None:
    doc = convert_bytes(_report(), "report.docx")
    table = "Region | Quarters\nNorth | 10 | 12\nSouth east | 7 | 9"  # merged cell once
    assert f"\n\n{table}\n\nAfter the table." in doc.text


def test_docx_core_title_wins_over_title_style() -> None:
    d = docx.Document()
    d.core_properties.title = "From the properties"
    d.add_heading("From the page", 0)
    d.add_paragraph("Body.")
    doc = convert_bytes(_docx_bytes(d), "t.docx")
    assert doc.title == "From the properties"
    assert doc.text == "From the page\n\nBody."


_words = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=8)
_line = st.lists(_words, min_size=1, max_size=6).map(" ".join)
_blocks = st.lists(st.tuples(st.sampled_from([None, None, 1, 2, 3]), _line), min_size=1)


@settings(max_examples=30, deadline=None)
@given(_blocks)
def test_docx_property_every_heading_a_section_every_word_in_order(
    blocks: list[tuple[int | None, str]],
) -> None:
    d = docx.Document()
    for level, text in blocks:
        if level is None:
            d.add_paragraph(text)
        else:
            d.add_heading(text, level)
    doc = convert_bytes(_docx_bytes(d), "p.docx")
    headings = [(level, text) for level, text in blocks if level is not None]
    assert [(s.level, s.title) for s in doc.sections] == headings
    assert doc.text.split("\n\n") == [text for _, text in blocks]


def _deck() -> bytes:
    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[0])  # title slide
    slide.shapes.title.text = "Roadmap 2025"
    slide.placeholders[1].text = "Platform team"
    slide = prs.slides.add_slide(prs.slide_layouts[1])  # title and content
    slide.shapes.title.text = "Goals"
    frame = slide.placeholders[1].text_frame
    frame.text = "Ship the search API"
    sub = frame.add_paragraph()
    sub.text, sub.level = "with citations", 1
    slide.notes_slide.notes_text_frame.text = "Mention the latency budget."
    slide = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    slide.shapes.title.text = "Milestones"
    shape = slide.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(1.5))
    for r, row in enumerate(
        [["Quarter", "Milestone"], ["Q1", "Beta"], ["Q2", "General\navailability"]]
    ):
        for c, value in enumerate(row):
            shape.table.cell(r, c).text = value
    slide = prs.slides.add_slide(prs.slide_layouts[6])  # blank: no title
    # Added bottom first: the file's order is drawing order, the reader's is top to bottom.
    slide.shapes.add_textbox(Inches(1), Inches(4), Inches(4), Inches(1)).text = "Second, lower"
    group = slide.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(1), Inches(1), Inches(4), Inches(1)).text = "First, on top"
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def test_pptx_slides_become_sections_and_pages() -> None:
    doc = convert_bytes(_deck(), "roadmap.pptx")
    assert doc.kind == "pptx"
    assert doc.title == "Roadmap 2025"
    titles = ["Roadmap 2025", "Goals", "Milestones", "Slide 4"]
    assert [(s.level, s.title) for s in doc.sections] == [(1, t) for t in titles]
    assert [p.page for p in doc.pages] == [1, 2, 3, 4]
    assert [p.start for p in doc.pages] == [s.start for s in doc.sections]
    goals = doc.text.index("Ship the search API")
    assert doc.heading_path(goals) == ("Goals",) and doc.page_at(goals) == 2
    assert "Ship the search API\nwith citations" in doc.text
    assert "Mention the latency budget." in doc.text  # speaker notes are searchable too


def test_pptx_tables_and_reading_order() -> None:
    doc = convert_bytes(_deck(), "roadmap.pptx")
    assert "Quarter | Milestone\nQ1 | Beta\nQ2 | General availability" in doc.text
    assert doc.text.endswith("Slide 4\n\nFirst, on top\n\nSecond, lower")


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"just some text, not a package", "notes.docx", "not a DOCX: no ZIP package header"),
        (b"PK\x03\x04 truncated", "deck.pptx", "unreadable PPTX: broken ZIP package"),
        (_zip({"hello.txt": b"hi"}), "a.docx", "not a DOCX: a ZIP package without Office"),
        (_zip({"[Content_Types].xml": b"<Types/>"}), "b.docx", "unreadable DOCX"),
        (_report(), "report.pptx", "not a PPTX: package content type is application/vnd"),
        (_report()[:3000], "cut.docx", "unreadable DOCX"),  # truncated download
    ],
)
def test_broken_office_files_are_conversion_errors(data: bytes, name: str, reason: str) -> None:
    with pytest.raises(ConversionError) as e:
        convert_bytes(data, name)
    assert reason in str(e.value)
    assert "\n" not in str(e.value)


def test_empty_docx_has_no_text() -> None:
    with pytest.raises(ConversionError, match="no extractable text"):
        convert_bytes(_docx_bytes(docx.Document()), "empty.docx")


def test_decompression_bomb_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real limit is 512 MiB; lowering it keeps the test from writing one.
    monkeypatch.setattr(convert_office, "_MAX_UNPACKED", 10_000)
    with pytest.raises(ConversionError, match=r"unpacks to .* too large"):
        convert_bytes(_report(), "big.docx")
