"""PDF conversion with pypdf: text per page, running headers and contents entries removed,
outline as sections.

A PDF without an outline gets its sections from its fonts instead (``ingest.pdf_headings``).

Kept apart from ``convert.py`` because PDF is the one format with pages, repeated chrome and
a separate table of contents, and because pypdf raises a zoo of exception types that all have
to become ``ConversionError`` here.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

from pypdf import PdfReader

from ingest.clean import (
    Spellings,
    clean_text,
    join_hyphenation,
    normalize_space,
    strip_repeated_lines,
)
from ingest.model import ConversionError
from ingest.pdf_contents import strip_contents
from ingest.pdf_headings import FontRuns, font_headings

if TYPE_CHECKING:
    from ingest.builder import DocumentBuilder

__all__ = ["convert_pdf"]


def convert_pdf(data: bytes, b: DocumentBuilder) -> None:
    """Fill ``b`` from PDF bytes; any failure to read becomes a one-line ``ConversionError``."""
    if b"%PDF-" not in data[:1024]:
        raise ConversionError("not a PDF: no %PDF- header in the first 1 KiB")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ConversionError("encrypted PDF: needs a password")
        outline = _flatten_outline(reader, reader.outline)
        runs = [] if outline else [FontRuns() for _ in reader.pages]
        pages = []
        for n, page in enumerate(reader.pages):
            visit = runs[n].visit if runs else None
            pages.append(page.extract_text(visitor_text=visit) or "")
            if runs:
                runs[n].flush()
        meta = reader.metadata
        title = meta.title if meta is not None else None
    except ConversionError:
        raise
    except Exception as e:  # pypdf raises many types (PdfReadError, KeyError, ValueError...)
        reason = normalize_space(str(e)) or type(e).__name__
        if "decrypt" in reason.lower() or "crypt" in type(e).__name__.lower():
            raise ConversionError(f"encrypted PDF: {reason}") from e
        raise ConversionError(f"unreadable PDF: {reason}") from e
    b.title = title if isinstance(title, str) else None
    pages = strip_contents(strip_repeated_lines([clean_text(p) for p in pages]))
    if runs:
        outline = font_headings(pages, runs)
    spellings = Spellings("\n".join(pages))  # how the whole document spells its words
    bounds: list[tuple[int, int]] = []  # (offset where each page starts, end) in the text
    for number, text in enumerate(pages, start=1):
        b.page(number)
        start = b.offset
        # Hyphenation is joined within a page only: across a page break sit figures and
        # footnotes, so the word's second half is often not the next line of text.
        for para in re.split(r"\n\s*\n", join_hyphenation(text, spellings)):
            b.paragraph(para)
        bounds.append((start, max(start, len(b.text_so_far()))))
    _add_outline_sections(b, outline, bounds)


def _flatten_outline(reader: PdfReader, items: Any, depth: int = 1) -> list[tuple[int, str, int]]:
    """(level, title, 0-based page index) for each bookmark, in document order."""
    out: list[tuple[int, str, int]] = []
    for item in items:
        if isinstance(item, list):
            out.extend(_flatten_outline(reader, item, depth + 1))
            continue
        page = reader.get_destination_page_number(item)
        title = normalize_space(clean_text(str(item.title or "")))
        if page is not None and page >= 0 and title:
            out.append((depth, title, page))
    return out


def _add_outline_sections(
    b: DocumentBuilder, outline: list[tuple[int, str, int]], bounds: list[tuple[int, int]]
) -> None:
    """Place each bookmark at its title's text on its page, else at the page start.

    Bookmarks carry a page but no position; searching the page for the title (in order, so two
    sections on one page keep their order) puts the heading where the reader sees it.
    """
    text = b.text_so_far()
    cursor: dict[int, int] = {}
    for level, title, page in outline:
        if page >= len(bounds):
            continue
        start, end = bounds[page]
        frm = cursor.get(page, start)
        pos = text.find(title, frm, end)
        if pos < 0:
            # Section numbers and line breaks often differ between bookmark and page text.
            words = title.split()
            pattern = r"\s+".join(re.escape(w) for w in words)
            m = re.compile(pattern, re.IGNORECASE).search(text, frm, end) if words else None
            pos = m.start() if m else -1
        if pos < 0:
            pos = start
        else:
            cursor[page] = pos + 1
        b.section(pos, level, title)
