"""Convert a file (PDF, DOCX, PPTX, HTML, Markdown, plain text) into a cleaned ``Document``.

One entry point per input (``convert_file`` for the watcher, ``convert_bytes`` for API uploads),
dispatching on the file suffix. A file with an unknown suffix raises ``UnsupportedFile`` (skipped);
a file whose content is broken raises ``ConversionError`` with a one-line reason (quarantined), and
no other exception type escapes for bad content, so callers need exactly two ``except`` clauses.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath

from ingest.builder import DocumentBuilder
from ingest.clean import decode_entities
from ingest.context import document_title
from ingest.convert_html import convert_html
from ingest.convert_office import convert_docx, convert_pptx
from ingest.convert_pdf import convert_pdf
from ingest.model import ConversionError, Document, UnsupportedFile

__all__ = [
    "SUPPORTED_SUFFIXES",
    "DocumentBuilder",
    "convert_bytes",
    "convert_file",
    "decode_text",
    "detect_kind",
]

SUPPORTED_SUFFIXES: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
}


def detect_kind(name: str) -> str:
    """Return the document kind for a file name, judged by its suffix alone.

    Sniffing content would let a stray binary in the watched folder be parsed as text; the suffix
    is what the user chose, and ``convert_bytes`` then checks the content matches it.
    """
    suffix = PurePath(name).suffix.lower()
    try:
        return SUPPORTED_SUFFIXES[suffix]
    except KeyError:
        raise UnsupportedFile(f"unsupported file type '{suffix or name}'") from None


def convert_file(path: Path) -> Document:
    """Read ``path`` and convert it; the suffix is checked before the bytes are read."""
    detect_kind(path.name)
    return convert_bytes(path.read_bytes(), path.name)


def convert_bytes(data: bytes, name: str) -> Document:
    """Convert the raw bytes of a file called ``name`` into a ``Document``."""
    kind = detect_kind(name)
    builder = DocumentBuilder(kind)
    if kind == "pdf":
        convert_pdf(data, builder)
    elif kind == "docx":
        convert_docx(data, builder)
    elif kind == "pptx":
        convert_pptx(data, builder)
    elif kind == "html":
        try:
            convert_html(decode_text(data, html=True), builder)
        except RecursionError:  # the element walk is recursive; absurd nesting is broken input
            raise ConversionError("HTML nesting too deep to convert") from None
    elif kind == "markdown":
        _convert_markdown(decode_text(data), builder)
    else:
        _convert_text(decode_text(data), builder)
    doc = builder.build()
    if not doc.text:
        reason = " (scanned PDF? OCR is not supported)" if kind == "pdf" else ""
        raise ConversionError(f"no extractable text{reason}")
    doc.title = document_title(doc, name)
    return doc


_BOMS = (
    ("utf-8-sig", b"\xef\xbb\xbf"),
    ("utf-32", b"\xff\xfe\x00\x00"),
    ("utf-16", b"\xff\xfe"),
    ("utf-16", b"\xfe\xff"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_BINARY_BYTES = bytes([*range(0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])


def decode_text(data: bytes, *, html: bool = False) -> str:
    """Decode a text file: BOM, then UTF-8, then the HTML meta charset, then cp1252 if text-like.

    A binary file with a text suffix must fail loudly instead of producing mojibake that would
    pollute the index; legacy single-byte text (Windows "smart quotes") is common enough to keep.
    """
    for encoding, bom in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as e:
                raise ConversionError(f"undecodable {encoding} text: {e.reason}") from None
    if b"\x00" in data:
        raise ConversionError("binary content (NUL bytes) in a text file")
    if len(data.translate(None, _BINARY_BYTES)) < 0.98 * len(data):
        raise ConversionError("binary content (control bytes) in a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if html and (m := _META_CHARSET.search(data[:4096])):
        try:
            return data.decode(m.group(1).decode("ascii"))
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        raise ConversionError("not valid UTF-8 and not cp1252 text") from None


_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT_MATTER_END = re.compile(r"^(---|\.\.\.)\s*$")


def _convert_markdown(text: str, b: DocumentBuilder) -> None:
    """Line-based Markdown: headings become sections, fenced code stays verbatim.

    Emphasis and link syntax are kept as written: exact strings in them matter for retrieval, and
    a full Markdown parser would cost more than it buys. YAML front matter is dropped (metadata,
    not content) except its ``title:``, which becomes the document title.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    i = 0
    if lines and lines[0].strip() == "---":
        end = next((j for j in range(1, len(lines)) if _FRONT_MATTER_END.match(lines[j])), None)
        if end is not None:
            for line in lines[1:end]:
                if line.startswith("title:"):
                    b.title = line[6:].strip().strip("\"'")
            i = end + 1
    para: list[str] = []

    def flush() -> None:
        if para:
            code = all(p.startswith(("    ", "\t")) for p in para)  # indented code block
            b.paragraph("\n".join(para), preserve_indent=code)
            para.clear()

    in_comment = False
    while i < len(lines):
        line = lines[i]
        i += 1
        if in_comment:
            if "-->" not in line:
                continue
            line, in_comment = line.split("-->", 1)[1], False
        if fence := _FENCE.match(line):
            flush()
            marker = fence.group(1)
            block = [line]
            while i < len(lines):
                block.append(lines[i])
                i += 1
                closing = lines[i - 1].strip()
                if len(closing) >= len(marker) and closing == marker[0] * len(closing):
                    break
            b.paragraph("\n".join(block), preserve_indent=True)
            continue
        had_comment = "<!--" in line
        line = re.sub(r"<!--.*?-->", "", line)
        if "<!--" in line:
            line, in_comment = line.split("<!--", 1)[0], True
        if had_comment and not line.strip():
            continue  # a comment-only line is neither text nor a paragraph break
        line = decode_entities(line)
        if not line.strip():
            flush()
        elif atx := _ATX.match(line):
            flush()
            b.heading(len(atx.group(1)), atx.group(2) or "")
        elif para and (setext := _SETEXT.match(line)):
            title = " ".join(p.strip() for p in para)
            para.clear()
            b.heading(1 if setext.group(1)[0] == "=" else 2, title)
        else:
            para.append(line)
    flush()


_SENTENCE_END = (".", ",", ";", ":", "!", "?")
_LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s")


def _heading_candidate(line: str) -> bool:
    """Short, capitalised, not a sentence: how headings look in text without markup."""
    line = line.strip()
    return (
        0 < len(line) <= 80
        and len(line.split()) <= 10
        and (line[0].isupper() or line[0].isdigit())
        and not line.endswith(_SENTENCE_END)
    )


def _find_headings(units: list[str]) -> list[bool]:
    """Mark one-line units that look like headings and introduce body text.

    The unit after a heading must be longer, a list item, or itself a heading (a chapter title
    directly followed by a section title); a short line followed by a shorter one is more
    likely a label or a line of code.
    """
    marks = [False] * len(units)
    for k in range(len(units) - 2, -1, -1):
        unit, nxt = units[k].strip(), units[k + 1]
        marks[k] = (
            "\n" not in unit
            and _heading_candidate(unit)
            and (len(nxt.strip()) > len(unit) or bool(_LIST_ITEM.match(nxt)) or marks[k + 1])
        )
    return marks


def _convert_text(text: str, b: DocumentBuilder) -> None:
    """Plain text: paragraphs split on blank lines; one per line where lines are unwrapped.

    Text exported from web pages or word processors often has one paragraph per line and few or
    no blank lines; taking such a block as one paragraph would hide its structure (and headings)
    from the chunker. A block counts as unwrapped when the file has no blank line at all or the
    block has a line over 100 characters, which hard-wrapped prose never has.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    blocks = [blk for blk in re.split(r"\n[ \t]*\n", text) if blk.strip()]
    units: list[str] = []
    for block in blocks:
        lines = [line for line in block.split("\n") if line.strip()]
        if len(blocks) == 1 or max(len(line) for line in lines) > 100:
            units.extend(lines)
        else:
            units.append(block)
    for unit, is_heading in zip(units, _find_headings(units), strict=True):
        if is_heading:
            b.heading(1, unit)
        else:
            b.paragraph(unit)
