"""Tests for ingest.convert on the real shared documents, plus broken and synthetic inputs."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import pytest

from ingest.clean import normalize_space
from ingest.convert import (
    SUPPORTED_SUFFIXES,
    DocumentBuilder,
    convert_bytes,
    convert_file,
    detect_kind,
)
from ingest.model import ConversionError, Document, UnsupportedFile

PAPERS = [
    "attention-is-all-you-need.pdf",
    "bert-pre-training.pdf",
    "raptor-expanding-horizons-in-rag.pdf",
    "u-net.pdf",
    "vit-an-image-is-worth-16x16-words.pdf",
]


def assert_well_formed(doc: Document) -> None:
    """Offsets are in range and ordered, and every section sits on its own title."""
    starts = [s.start for s in doc.sections]
    assert starts == sorted(starts)
    assert all(0 <= s.start < len(doc.text) for s in doc.sections)
    pages = [p.start for p in doc.pages]
    assert pages == sorted(pages)
    assert all(0 <= p <= len(doc.text) for p in pages)
    assert "\n\n\n" not in doc.text
    if doc.kind != "pdf":
        for s in doc.sections:
            assert doc.text[s.start :].startswith(s.title), s
            assert s.start == 0 or doc.text[s.start - 2 : s.start] == "\n\n"


@pytest.fixture(scope="module")
def papers(shared_data: Path) -> dict[str, Document]:
    """Each PDF converted once per module: extraction is the slow part of this suite."""
    return {name: convert_file(shared_data / "papers" / name) for name in PAPERS}


# --- dispatch and errors ---------------------------------------------------------------


def test_detect_kind() -> None:
    assert detect_kind("a/B.PDF") == "pdf"
    assert detect_kind("x.htm") == detect_kind("x.xhtml") == "html"
    assert detect_kind("x.markdown") == "markdown"
    assert detect_kind("x.text") == "text"
    assert set(SUPPORTED_SUFFIXES.values()) == {"pdf", "docx", "pptx", "html", "markdown", "text"}
    with pytest.raises(UnsupportedFile, match=r"unsupported file type '\.xyz'"):
        detect_kind("notes.xyz")
    with pytest.raises(UnsupportedFile):
        convert_bytes(b"hello", "archive.tar.gz")


def test_truncated_pdf_raises_conversion_error(shared_data: Path) -> None:
    data = (shared_data / "papers" / "bert-pre-training.pdf").read_bytes()
    for cut in (2000, len(data) // 2):
        with pytest.raises(ConversionError, match="unreadable PDF"):
            convert_bytes(data[:cut], "bert.pdf")


def test_random_bytes_named_pdf() -> None:
    with pytest.raises(ConversionError, match="not a PDF"):
        convert_bytes(os.urandom(4096), "x.pdf")


def test_pdf_header_with_garbage_body() -> None:
    with pytest.raises(ConversionError, match="unreadable PDF"):
        convert_bytes(b"%PDF-1.7\n" + os.urandom(4096), "x.pdf")


@pytest.mark.parametrize("name", ["x.txt", "x.md", "x.html"])
def test_binary_bytes_in_text_file(name: str) -> None:
    data = bytes(range(256)) * 16
    with pytest.raises(ConversionError, match="binary"):
        convert_bytes(data, name)


def test_absurdly_nested_html() -> None:
    with pytest.raises(ConversionError, match="nesting too deep"):
        convert_bytes(b"<div>" * 5000 + b"x", "deep.html")


def test_empty_text_file() -> None:
    with pytest.raises(ConversionError, match="no extractable text"):
        convert_bytes(b"  \n\n \t\n", "empty.txt")


def test_decoding_bom_and_cp1252() -> None:
    assert convert_bytes("\ufeffCaf\u00e9 au lait.".encode(), "a.txt").text == "Caf\u00e9 au lait."
    assert convert_bytes(b"\x93smart\x94 quotes.", "a.txt").text == "\u201csmart\u201d quotes."
    utf16 = "Hello world.".encode("utf-16")
    assert convert_bytes(utf16, "a.txt").text == "Hello world."


def test_convert_file_reads_path(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_text("# Title\n\nBody.\n", encoding="utf-8")
    doc = convert_file(path)
    assert doc.text == "Title\n\nBody."
    assert doc.kind == "markdown"


# --- builder ---------------------------------------------------------------------------


def test_builder_offsets() -> None:
    b = DocumentBuilder("text")
    b.page(1)
    b.heading(2, "  A   title ")
    b.paragraph("   ")
    b.paragraph("one  two")
    b.page(2)
    b.paragraph("three")
    b.page(3)
    doc = b.build()
    assert doc.text == "A title\n\none two\n\nthree"
    assert [(s.start, s.level, s.title) for s in doc.sections] == [(0, 2, "A title")]
    assert [(p.start, p.page) for p in doc.pages] == [(0, 1), (18, 2), (23, 3)]
    assert doc.page_at(doc.text.index("three")) == 2


# --- plain text ------------------------------------------------------------------------


def test_llm_guide(shared_data: Path) -> None:
    doc = convert_file(shared_data / "corpus" / "llm-guide.txt")
    assert_well_formed(doc)
    assert "key and value vectors are shared across all heads" in normalize_space(doc.text)
    titles = [s.title for s in doc.sections]
    for expected in ["Large Language Models", "LLMs vs. Foundation Models", "Selecting an LLM"]:
        assert expected in titles
    assert "Multi-Query Attention" in titles
    assert 30 <= len(titles) <= 60
    assert all(s.level == 1 for s in doc.sections)
    # One paragraph per line: the long lines of the source are separate blocks.
    assert doc.text.count("\n\n") > 200
    assert not any(t.startswith("-") or t.endswith(".") for t in titles)
    assert doc.heading_path(doc.text.index("key and value vectors")) == ("Multi-Query Attention",)


def test_text_with_blank_lines_keeps_wrapped_paragraphs() -> None:
    raw = b"Intro\n\nThis is a hard-wrapped\nparagraph of prose text.\n\nShort.\n"
    doc = convert_bytes(raw, "a.txt")
    assert doc.text == "Intro\n\nThis is a hard-wrapped\nparagraph of prose text.\n\nShort."
    assert [s.title for s in doc.sections] == ["Intro"]


def test_text_keeps_entities_verbatim() -> None:
    assert convert_bytes(b"a &amp; b", "a.txt").text == "a &amp; b"


# --- HTML ------------------------------------------------------------------------------


def _assert_clean_html(doc: Document) -> None:
    for bad in ("<script", "<style", "{", "\u00b6", "</"):
        assert bad not in doc.text.replace("{adosovitskiy", ""), bad


def test_zlib_usage(shared_data: Path) -> None:
    doc = convert_file(shared_data / "corpus" / "zlib-usage.html")
    assert_well_formed(doc)
    flat = normalize_space(doc.text)
    for evidence in (
        "#define CHUNK 16384",
        "suppresses the end-of-line conversions",
        "128K or 256K bytes",
    ):
        assert evidence in flat
    assert doc.title == "zlib Usage Example"
    assert [(s.level, s.title) for s in doc.sections] == [(2, "zlib Usage Example")]
    # <pre> keeps its lines and indentation.
    assert re.search(r"\n {4,}\S", doc.text)
    assert "int def(FILE *source, FILE *dest, int level)" in doc.text


def test_debian_python_policy(shared_data: Path) -> None:
    doc = convert_file(shared_data / "corpus" / "debian-python-policy.html")
    assert_well_formed(doc)
    assert "/usr/lib/python3/dist-packages" in normalize_space(doc.text)
    assert "\u00b6" not in doc.text
    assert "<script" not in doc.text
    assert "Navigation" not in doc.text  # Sphinx sidebar
    assert "Quick search" not in doc.text
    assert "previous |" not in doc.text and "Created using" not in doc.text
    levels = {s.title: s.level for s in doc.sections}
    assert levels["1. Copyright"] == 2
    assert levels["3.1. Versions"] == 3
    assert doc.text.startswith("Abstract")
    assert "- Neil Schemenauer <nas@debian.org>" in doc.text  # list item with its marker


def test_gemma_terms(shared_data: Path) -> None:
    doc = convert_file(shared_data / "bench" / "gemma-terms.html")
    assert_well_formed(doc)
    assert doc.title is not None and "Gemma Terms of Use" in doc.title
    assert [s.title for s in doc.sections][:2] == ["Gemma Terms of Use", "Section 1: DEFINITIONS"]
    assert "--devsite" not in doc.text and "googledevai-theme" not in doc.text
    assert "Use Restrictions" in doc.text
    assert len(doc.text) < 20_000  # the 168 KB page is mostly chrome


def test_html_structure_and_chrome() -> None:
    page = b"""<html><head><title>T &amp; U</title><style>p{color:red}</style></head><body>
    <nav>Home | About</nav><header>Site banner</header>
    <main><h1>Main &amp; title<a class="headerlink" href="#x">\xc2\xb6</a></h1>
    <p>Some <em>inline</em>
       <code>text</code>&nbsp;here.</p>
    <div hidden>secret</div><div style="display: none">also secret</div>
    <ul><li>one</li><li><p>two</p></li></ul>
    <pre>  def f():\n      return 1</pre>
    <table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
    <script>alert(1)</script></main><footer>Copyright</footer></body></html>"""
    doc = convert_bytes(page, "p.html")
    assert doc.title == "T & U"
    assert doc.text == (
        "Main & title\n\nSome inline text here.\n\n- one\n\n- two\n\n"
        "  def f():\n      return 1\n\nk | v\n\na | 1"
    )
    assert [(s.level, s.title) for s in doc.sections] == [(1, "Main & title")]


# --- Markdown --------------------------------------------------------------------------


def test_markdown_synthetic() -> None:
    md = """---
title: "Front"
tags: [a]
---
# Top #

Intro with **bold** and [a link](http://x.y) &amp; more.
<!-- a comment -->
Second line.

Sub heading
-----------

```python
# not a heading
x = 1  &amp;
    indented
```

<!--
multi
-->
Setext one
===
"""
    doc = convert_bytes(md.encode(), "a.md")
    assert doc.title == "Front"
    assert [(s.level, s.title) for s in doc.sections] == [
        (1, "Top"),
        (2, "Sub heading"),
        (1, "Setext one"),
    ]
    assert "Intro with **bold** and [a link](http://x.y) & more.\nSecond line." in doc.text
    assert "```python\n# not a heading\nx = 1 &amp;\n    indented\n```" in doc.text
    assert "comment" not in doc.text and "multi" not in doc.text
    assert_well_formed(doc)


@pytest.mark.parametrize("name", ["fs.md", "buffer.md", "index.md", "zlib.md"])
def test_nodejs_markdown(shared_data: Path, name: str) -> None:
    doc = convert_file(shared_data / "bench" / "nodejs-api" / name)
    assert_well_formed(doc)
    assert "<!--" not in doc.text and "YAML" not in doc.text.split("```")[0][:200]
    if name != "index.md":
        assert doc.sections[0].level == 1


def test_nodejs_fs_headings_and_code(shared_data: Path) -> None:
    doc = convert_file(shared_data / "bench" / "nodejs-api" / "fs.md")
    titles = {s.title: s.level for s in doc.sections}
    assert titles["File system"] == 1
    assert titles["Promises API"] == 2
    assert titles["Class: `FileHandle`"] == 3
    assert "import { unlink } from 'node:fs/promises';" in doc.text
    assert "added: v" not in doc.text  # YAML metadata lives in HTML comments


def test_all_nodejs_markdown_converts(shared_data: Path) -> None:
    docs = [convert_file(p) for p in sorted((shared_data / "bench" / "nodejs-api").glob("*.md"))]
    assert len(docs) == 64
    assert all(d.text and d.kind == "markdown" for d in docs)


# --- PDF -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAPERS)
def test_pdf_pages_and_structure(papers: dict[str, Document], name: str) -> None:
    doc = papers[name]
    assert doc.kind == "pdf"
    assert_well_formed(doc)
    assert [p.page for p in doc.pages] == list(range(1, len(doc.pages) + 1))
    assert doc.pages[0].start == 0
    assert len(doc.pages) >= 8
    # Every section is on its page, at its title (case and line breaks aside) or the page start.
    for s in doc.sections:
        at = normalize_space(doc.text[s.start : s.start + 3 * len(s.title)]).casefold()
        assert at.startswith(s.title.casefold()) or s.start in {p.start for p in doc.pages}, s


def test_pdf_page_one_content(papers: dict[str, Document]) -> None:
    expected = {
        "attention-is-all-you-need.pdf": "The dominant sequence transduction models",
        "bert-pre-training.pdf": "We introduce a new language representation model called BERT",
        "raptor-expanding-horizons-in-rag.pdf": "Retrieval-Augmentation Generation",
        "u-net.pdf": "successful training of deep networks requires many thousand",
        "vit-an-image-is-worth-16x16-words.pdf": "Vision Transformer (ViT) attains excellent",
    }
    for name, phrase in expected.items():
        doc = papers[name]
        page1 = doc.text[: doc.pages[1].start]
        assert phrase in normalize_space(page1), name
    att = papers["attention-is-all-you-need.pdf"]
    assert "Transformer" in att.text[: att.pages[1].start]


def test_pdf_running_headers_removed(papers: dict[str, Document]) -> None:
    vit = papers["vit-an-image-is-worth-16x16-words.pdf"]
    assert vit.text.count("Published as a conference paper at ICLR 2021") == 0
    for doc in papers.values():
        starts = [p.start for p in doc.pages] + [len(doc.text)]
        first_lines = [doc.text[a:b].split("\n")[0] for a, b in itertools.pairwise(starts)]
        last_lines = [doc.text[a:b].rstrip().split("\n")[-1] for a, b in itertools.pairwise(starts)]
        assert len(set(first_lines)) > len(first_lines) // 2
        assert not any(re.fullmatch(r"\d{1,2}", line.strip()) for line in last_lines)


def test_pdf_hyphenation_joined(papers: dict[str, Document]) -> None:
    bert = normalize_space(papers["bert-pre-training.pdf"].text)
    # "representa-\ntion" and "ob-\njective" are split at line ends in the PDF.
    assert "language representation model called BERT" in bert
    assert "the MLM objective enables" in bert
    assert not re.search(r"[a-z]-\n[a-z]", papers["bert-pre-training.pdf"].text)


def test_pdf_outline_sections(papers: dict[str, Document]) -> None:
    att = papers["attention-is-all-you-need.pdf"]
    levels = {s.title: s.level for s in att.sections}
    assert levels["Introduction"] == 1
    assert levels["Encoder and Decoder Stacks"] == 2
    assert levels["Scaled Dot-Product Attention"] == 3
    intro = next(s for s in att.sections if s.title == "Introduction")
    assert att.page_at(intro.start) == 2
    assert att.text[intro.start :].startswith("Introduction\nRecurrent neural networks")
    # bert has no outline: its sections come from its fonts (test_pdf_headings.py)
    assert (
        papers["u-net.pdf"].title
        == "U-Net: Convolutional Networks for Biomedical Image Segmentation"
    )
