"""Section headings of a PDF that has no outline, read from its fonts.

Many PDFs carry no bookmarks (LaTeX without hyperref, most journal and office exports), so every
chunk of them used to be indexed with the document title alone: the chunks competed on a few words
each, and a passage that never names its subject had nothing to name it. Their headings are still
visible as type: a bigger size than the body text, or bold at body size. pypdf reports the font of
every piece of text it extracts; a run of such pieces that is a whole line of the page's text is
taken as a heading.

What makes a heading, kept strict because a false one is indexed with every chunk under it:
- its style (size, bold) stands out: at least ``LARGER`` times the body size (the size most
  characters are set in), or bold and at least body size (figure captions are smaller);
- it is a whole line of the extracted page text, short, and does not end a sentence;
- where the document numbers its headings ("3", "3.1", "A", "A.2"), an unnumbered one must name
  front or back matter ("Abstract", "References", ...): figure labels and author lines are set
  in heading type too;
- where it numbers none, the style recurs on two or more pages (a style seen on one page only is
  the title page's), and a text that recurs as often as three times is a label, not a section.

A heading broken over two lines is one run over two lines of text. Levels come from the
numbering ("3.1" is level 2), else from the style's rank by size.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ingest.clean import clean_text

__all__ = ["FontRuns", "font_headings"]

LARGER = 1.1  # a heading set in regular weight is at least this much bigger than the body text
MAX_CHARS = 120
MAX_WORDS = 16
_BOLD = re.compile(r"bold|black|heavy|semibold|demi|bx|-bd|,bd", re.IGNORECASE)
# "3", "3.1" before any word; "A", "A.2" (appendices) before a capitalized one, so that the
# article of "A note on terminology" is not read as a number.
_NUMBER = re.compile(
    r"^(?:(\d{1,2}(?:\.\d{1,2}){0,3})\.?\s+\S|([A-Z](?:\.\d{1,2}){0,3})\.?\s+[A-Z0-9])"
)
_SPACE = re.compile(r"\s+")
_MATTER = re.compile(
    r"^(abstract|acknowledge?ments?|appendix|appendices|bibliography|change history|conclusions?"
    r"|contents|glossary|index|notes|preface|foreword|references|summary)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Run:
    text: str
    first: str  # its first line, where it runs over two
    size: float  # effective size in points, rounded to 0.1
    bold: bool


@dataclass
class FontRuns:
    """A ``visitor_text`` for ``PageObject.extract_text``: the page's styled runs of text.

    Consecutive pieces in the same style on the same baseline form one run; ``chars`` counts
    characters per size for the body size.
    """

    runs: list[_Run] = field(default_factory=list)
    chars: Counter[float] = field(default_factory=Counter)
    _parts: list[str] = field(default_factory=list)
    _first: int = 0  # how many of _parts are on the run's first line (0: all)
    _style: tuple[float, bool] | None = None
    _y: float | None = None

    def visit(self, text: str, cm: Any, tm: Any, font: Any, size: float) -> None:
        if not text.strip():
            if self._parts:
                self._parts.append(text)
            return
        scale = abs(float(tm[3])) if tm else 1.0
        scale *= abs(float(cm[3])) if cm else 1.0
        eff = round(float(size) * (scale or 1.0), 1)
        style = (eff, _is_bold(font))
        y = float(tm[5]) if tm else None
        self.chars[eff] += len(text.strip())
        # The same style a line further down continues the run (a heading over two lines),
        # unless the new line starts a numbered heading of its own.
        moved = 0.0 if self._y is None or y is None else self._y - y
        same_line = abs(moved) < max(eff, 1.0) * 0.5
        next_line = 0 < moved <= max(eff, 1.0) * 1.6 and not _NUMBER.match(text.strip())
        if style != self._style or not (same_line or next_line):
            self.flush()
            self._style = style
        elif next_line and not self._first:
            self._first = len(self._parts)
        self._y = y
        self._parts.append(text)

    def flush(self) -> None:
        if self._parts and self._style is not None:
            text = _SPACE.sub(" ", "".join(self._parts)).strip()
            first = _SPACE.sub(" ", "".join(self._parts[: self._first or None])).strip()
            if text:
                self.runs.append(_Run(text, first, *self._style))
        self._parts, self._first = [], 0


def _is_bold(font: Any) -> bool:
    if not font:
        return False
    try:
        if _BOLD.search(str(font.get("/BaseFont", "")).split("+")[-1]):
            return True
        desc = font.get("/FontDescriptor")
        desc = desc.get_object() if desc is not None else None
        weight = desc.get("/FontWeight") if desc is not None else None
        return weight is not None and float(weight) >= 600
    except Exception:  # a damaged font dictionary is just not bold
        return False


def _key(s: str) -> str:
    return _SPACE.sub("", s).lower()


def font_headings(pages: list[str], runs: list[FontRuns]) -> list[tuple[int, str, int]]:
    """(level, title, 0-based page) of each heading found, in document order.

    ``pages`` are the texts the document is built from (so a title found here is found again
    when it is placed); ``runs`` the same pages' styled runs.
    """
    chars: Counter[float] = Counter()
    for r in runs:
        chars.update(r.chars)
    if not chars:
        return []
    body = chars.most_common(1)[0][0]
    found: list[tuple[int, _Run, str]] = []  # (page, run, line as the page text has it)
    for page, (text, page_runs) in enumerate(zip(pages, runs, strict=True)):
        lines: dict[str, list[str]] = {}
        rows = [_SPACE.sub(" ", line).strip() for line in text.split("\n")]
        for i, line in enumerate(rows):
            lines.setdefault(_key(line), []).append(line)
            if i + 1 < len(rows):  # a heading over two lines
                lines.setdefault(_key(line + rows[i + 1]), []).append(f"{line} {rows[i + 1]}")
        for run in page_runs.runs:
            if not _stands_out(run, body) or not _looks_like_heading(run.text):
                continue
            match = lines.get(_key(clean_text(run.text))) or lines.get(_key(clean_text(run.first)))
            if match:
                found.append((page, run, match.pop(0)))
    pages_of: dict[tuple[float, bool], set[int]] = {}
    for page, run, _ in found:
        pages_of.setdefault((run.size, run.bold), set()).add(page)
    recurring = [style for style, pages in pages_of.items() if len(pages) >= 2]
    ranked = sorted(recurring, key=lambda s: (-s[0], not s[1]))
    seen = Counter(_key(line) for _, _, line in found)
    # Appendix letters count once the digits have begun: before them "A Survey of ..." is a title.
    digits = [
        i for i, (_, _, line) in enumerate(found) if (m := _NUMBER.match(line)) and m.group(1)
    ]
    out = []
    for i, (page, run, line) in enumerate(found):
        style = (run.size, run.bold)
        number = _NUMBER.match(line)
        if number and number.group(2) and (not digits or i < digits[0]):
            number = None
        if number:
            level = _depth(number)
        elif len(digits) >= 2:
            if not _MATTER.match(line):
                continue
            level = 1
        elif style in recurring and seen[_key(line)] < 3:
            level = ranked.index(style) + 1
        else:
            continue
        out.append((level, line, page))
    return out


def _stands_out(run: _Run, body: float) -> bool:
    return run.size >= body * LARGER or (run.bold and run.size >= body * 0.95)


def _looks_like_heading(text: str) -> bool:
    letters = sum(c.isalpha() for c in text)
    return (
        letters >= 2
        and len(text) <= MAX_CHARS
        and len(text.split()) <= MAX_WORDS
        and not text.endswith((".", ",", ";", ":"))
    )


def _depth(number: re.Match[str]) -> int:
    label = number.group(1) or number.group(2)
    return label.count(".") + 1
