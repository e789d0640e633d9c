"""``DocumentBuilder``: the one place a ``Document``'s text and offsets are assembled.

Each converter (``convert``, ``convert_html``, ``convert_pdf``, ``records``) fills a builder; it
lives apart from ``convert`` so the per-format converters depend on it without importing the
dispatcher that imports them.
"""

from __future__ import annotations

from ingest.clean import clean_text, normalize_space
from ingest.model import Document, PageSpan, Section

__all__ = ["DocumentBuilder"]


class DocumentBuilder:
    """Accumulates cleaned blocks and records sections and pages at their final offsets.

    Converters only emit blocks in reading order; the builder owns the joining rule ("\\n\\n"
    between non-empty blocks), so every offset refers to exactly the text of the ``Document``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.title: str | None = None
        self._parts: list[str] = []
        self._length = 0
        self._sections: list[Section] = []
        self._pages: list[PageSpan] = []

    @property
    def offset(self) -> int:
        """Offset at which the next non-empty block will start."""
        return self._length + 2 if self._parts else 0

    def text_so_far(self) -> str:
        """The text built so far (used by the PDF outline to locate titles)."""
        return "\n\n".join(self._parts)

    def _append(self, text: str) -> None:
        self._length = self.offset + len(text)
        self._parts.append(text)

    def heading(self, level: int, title: str) -> None:
        """Add a heading block (one line) and record a ``Section`` at its offset."""
        title = normalize_space(clean_text(title))
        if title:
            self._sections.append(Section(self.offset, level, title))
            self._append(title)

    def paragraph(self, text: str, *, preserve_indent: bool = False) -> None:
        """Add a block of body text; blocks that clean to nothing are dropped."""
        text = clean_text(text, preserve_indent=preserve_indent)
        if text:
            self._append(text)

    def page(self, number: int) -> None:
        """Record that page ``number`` starts at the next block."""
        self._pages.append(PageSpan(self.offset, number))

    def section(self, start: int, level: int, title: str) -> None:
        """Record a section at a known offset (headings found after the fact, e.g. PDF outline)."""
        self._sections.append(Section(start, level, title))

    def build(self) -> Document:
        """Return the finished document; page starts past the end are clamped to its length."""
        text = self.text_so_far()
        pages = [PageSpan(min(p.start, len(text)), p.page) for p in self._pages]
        sections = sorted(self._sections, key=lambda s: s.start)
        title = normalize_space(clean_text(self.title)) if self.title else None
        return Document(text, self.kind, title or None, sections, pages)
