"""Table-of-contents entries in PDF page text: section titles with a page number, no content.

A manual's contents, list of figures and index repeat every heading with its page number
("Spiderplot . . . . . . 197"). As chunks they carry exactly the words questions use and
nothing that answers them, so they outrank the passages they point at: 528 of the gnuplot
manual's 4,468 chunks were contents lines. The outline or the font headings already give every
chunk its section, so the entries are dropped before chunking.

An entry is a line that ends in a page number: after dot leaders, or (LaTeX sets a chapter's
line in bold without them) after a title and a space ("Linespoints 77"). A page is a contents
page when at least ``_MIN_LEADERS`` of its lines have leaders and entries make up ``_MIN_SHARE``
of its non-empty lines; there every entry is dropped. Elsewhere nothing is touched, so a body
line that ends in a number stays, and so does an index whose entries list several pages.
"""

from __future__ import annotations

import re

__all__ = ["strip_contents"]

# Title, two or more leader dots (spaced or not), then an arabic or roman page number.
_LEADER = re.compile(r"^.*\S\s*(?:\.\s*){2,}(?:\d{1,4}|[ivxlcdm]{1,7})$", re.IGNORECASE)
# On a contents page, also a title with a letter in it and an arabic page number after a space.
_BARE = re.compile(r"^.*[^\W\d_].*\s\d{1,4}$")
_MIN_LEADERS = 3
_MIN_SHARE = 0.6
_MAX_ENTRY = 200  # characters: an entry is one line of a contents page (and regexes stay linear)


def strip_contents(pages: list[str]) -> list[str]:
    """``pages`` with the entry lines of contents pages removed (other pages unchanged)."""
    return [_strip_page(page) for page in pages]


def _strip_page(page: str) -> str:
    lines = page.split("\n")
    stripped = [line.strip() for line in lines]
    nonempty = sum(1 for s in stripped if s)
    leader = [_is(_LEADER, s) for s in stripped]
    entry = [lead or _is(_BARE, s) for lead, s in zip(leader, stripped, strict=True)]
    if sum(leader) < _MIN_LEADERS or sum(entry) < _MIN_SHARE * nonempty:
        return page
    return "\n".join(line for line, drop in zip(lines, entry, strict=True) if not drop)


def _is(pattern: re.Pattern[str], line: str) -> bool:
    return len(line) <= _MAX_ENTRY and pattern.match(line) is not None
