"""Plain data types shared by the ingest stages (convert -> clean -> chunk -> embed -> index).

They carry no behaviour beyond offset look-ups, so every stage can be tested on its own and the
process pool can send them between processes (they pickle only in memory, never to disk).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    """A heading that starts at ``start`` (char offset into ``Document.text``)."""

    start: int
    level: int
    title: str


@dataclass(frozen=True)
class PageSpan:
    """Page ``page`` (1-based, as printed by PDF viewers) begins at char offset ``start``."""

    start: int
    page: int


@dataclass
class Document:
    """A converted, cleaned document: the text every offset refers to, plus its structure."""

    text: str
    kind: str  # "pdf" | "docx" | "pptx" | "html" | "markdown" | "text"
    title: str | None = None
    sections: list[Section] = field(default_factory=list)  # ordered by start
    pages: list[PageSpan] = field(default_factory=list)  # PDF pages, PPTX slides; else empty

    def heading_path(self, offset: int) -> tuple[str, ...]:
        """Titles of the enclosing headings at ``offset``, outermost first."""
        path: list[Section] = []
        for section in self.sections:
            if section.start > offset:
                break
            while path and path[-1].level >= section.level:
                path.pop()
            path.append(section)
        return tuple(s.title for s in path)

    def page_at(self, offset: int) -> int | None:
        """Page number that contains ``offset``, or None for unpaged documents."""
        if not self.pages:
            return None
        i = bisect.bisect_right([p.start for p in self.pages], offset) - 1
        return self.pages[max(i, 0)].page


class UnsupportedFile(Exception):
    """The file is not a document we convert (unknown type): it is skipped, with this reason."""


class ConversionError(Exception):
    """The file claims a supported type but cannot be converted: it is quarantined, with this reason."""


@dataclass(frozen=True)
class Chunk:
    """A contiguous span ``text == document.text[start:end]`` of one document, ready to embed."""

    ordinal: int  # position within the document, 0-based
    start: int
    end: int
    text: str
    page: int | None
    heading: tuple[str, ...]
    n_tokens: int
