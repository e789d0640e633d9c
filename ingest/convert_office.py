"""DOCX and PPTX conversion with python-docx and python-pptx: headings, slides and tables kept.

Both formats are ZIP packages of XML, which is why they share a module: the same package
checks (a ZIP at all, not a decompression bomb) and the same rule for tables (one row per line,
cells joined by `` | ``, so a row stays one retrievable line, as PDF tables do). Like
``convert_pdf``, every failure to read becomes a one-line ``ConversionError``.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ingest.clean import normalize_space
from ingest.model import ConversionError

if TYPE_CHECKING:
    from ingest.builder import DocumentBuilder

__all__ = ["convert_docx", "convert_pptx"]

# Office XML compresses ~10-50x; far beyond that is a decompression bomb, not a document.
_MAX_UNPACKED = 512 * 1024 * 1024
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_WRONG_TYPE = re.compile(r"content type is '([^']+)'")


def convert_docx(data: bytes, b: DocumentBuilder) -> None:
    """Fill ``b`` from DOCX bytes: Heading styles become sections, tables one row per line."""
    from docx import Document as open_docx  # noqa: N813  (imported here: only DOCX needs it)

    doc = _open_package(data, "DOCX", open_docx)
    _read("DOCX", lambda: _fill_docx(doc, b))


def _fill_docx(doc: Any, b: DocumentBuilder) -> None:
    from docx.table import Table

    b.title = doc.core_properties.title or None
    for block in doc.iter_inner_content():  # body paragraphs and tables, in reading order
        if isinstance(block, Table):
            b.paragraph(_table_text(_docx_rows(block)))
            continue
        text = block.text
        level = _heading_level(block.style)
        if level == 0:  # the "Title" style
            b.title = b.title or normalize_space(text) or None
            b.heading(1, text)
        elif level is not None:
            b.heading(level, text)
        else:
            b.paragraph(text)


def _heading_level(style: Any) -> int | None:
    """Heading level of a paragraph style (0 for "Title"), following "based on" links.

    A custom style based on "Heading 2" is a level-2 heading to the reader, so the chain of
    base styles is followed (a few steps: style chains are short and may be cyclic).
    """
    for _ in range(4):
        if style is None:
            return None
        name = style.name or ""
        if name.lower() == "title":
            return 0
        if m := _HEADING_STYLE.match(name):
            return int(m.group(1))
        style = style.base_style
    return None


def _docx_rows(table: Any) -> Iterator[list[str]]:
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:  # a merged cell repeats for every grid column it spans
            if id(cell._tc) not in seen:
                seen.add(id(cell._tc))
                cells.append(cell.text)
        yield cells


def convert_pptx(data: bytes, b: DocumentBuilder) -> None:
    """Fill ``b`` from PPTX bytes: one section per slide (its title), then text, tables, notes.

    Each slide is also recorded as a page, so a chunk cites its slide number the way a PDF
    chunk cites its page. Shapes are read top to bottom, then left to right: the order in the
    file is the order they were drawn, which for a slide edited over time is arbitrary.
    """
    from pptx import Presentation

    prs = _open_package(data, "PPTX", Presentation)
    _read("PPTX", lambda: _fill_pptx(prs, b))


def _fill_pptx(prs: Any, b: DocumentBuilder) -> None:
    b.title = prs.core_properties.title or None
    for number, slide in enumerate(prs.slides, start=1):
        b.page(number)
        title_shape = slide.shapes.title
        title = normalize_space(title_shape.text_frame.text) if title_shape is not None else ""
        b.heading(1, title or f"Slide {number}")
        if number == 1 and title:
            b.title = b.title or title
        for shape in _reading_order(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            if shape.has_text_frame:
                b.paragraph("\n".join(p.text for p in shape.text_frame.paragraphs))
            elif shape.has_table:
                b.paragraph(_table_text([c.text for c in row.cells] for row in shape.table.rows))
        if slide.has_notes_slide and (notes := slide.notes_slide.notes_text_frame) is not None:
            b.paragraph(notes.text)


def _reading_order(shapes: Iterable[Any]) -> Iterator[Any]:
    """Shapes top to bottom, left to right; a group's members take the group's place."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    def key(shape: Any) -> tuple[int, int]:
        return (shape.top or 0, shape.left or 0)

    for shape in sorted(shapes, key=key):
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _reading_order(shape.shapes)
        else:
            yield shape


def _table_text(rows: Iterable[list[str]]) -> str:
    """One line per row, cells separated by `` | ``; line breaks inside a cell become spaces."""
    lines = []
    for cells in rows:
        texts = [normalize_space(c) for c in cells]
        if any(texts):
            lines.append(" | ".join(texts))
    return "\n".join(lines)


def _open_package(data: bytes, kind: str, opener: Callable[[io.BytesIO], Any]) -> Any:
    """Check the ZIP container, then open it with the format's library."""
    if not data.startswith(b"PK\x03\x04"):
        raise ConversionError(f"not a {kind}: no ZIP package header")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            unpacked = sum(info.file_size for info in z.infolist())
            names = set(z.namelist())
    except (zipfile.BadZipFile, EOFError, ValueError) as e:
        raise ConversionError(f"unreadable {kind}: broken ZIP package ({e})") from e
    if "[Content_Types].xml" not in names:
        raise ConversionError(f"not a {kind}: a ZIP package without Office content types")
    if unpacked > _MAX_UNPACKED:
        raise ConversionError(f"{kind} unpacks to {unpacked / 2**20:.0f} MiB: too large")
    return _read(kind, lambda: opener(io.BytesIO(data)))


def _read(kind: str, step: Callable[[], Any]) -> Any:
    """Run ``step``; the libraries raise many types (KeyError, lxml, OPC errors) on bad files."""
    try:
        return step()
    except ConversionError:
        raise
    except Exception as e:
        reason = normalize_space(str(e)) or type(e).__name__
        if m := _WRONG_TYPE.search(reason):  # e.g. a Word document named .pptx
            raise ConversionError(f"not a {kind}: package content type is {m.group(1)}") from e
        raise ConversionError(f"unreadable {kind}: {reason}") from e
