"""Text cleaning for converted documents: pure string functions, no I/O.

Every converter funnels its text through here so that chunking, embedding and exact-string
evidence matching all see one canonical form, whatever the source format. The functions are
idempotent, so cleaning a block twice (page, then paragraph) is harmless.
"""

from __future__ import annotations

import bisect
import html
import itertools
import re
import unicodedata
from collections import Counter

__all__ = [
    "Spellings",
    "clean_text",
    "decode_entities",
    "join_hyphenation",
    "normalize_space",
    "strip_repeated_lines",
]


def _build_table() -> dict[int, str | None]:
    """Translation table: drop controls, unify odd spaces and line breaks, expand ligatures."""
    table: dict[int, str | None] = {}
    for code in [*range(0x20), *range(0x7F, 0xA0)]:
        table[code] = None  # C0/C1 controls, DEL
    table[ord("\n")] = "\n"
    table[ord("\t")] = " "
    for ch in "\v\f\u2028\u2029":  # vertical breaks: keep them as line breaks, not glued words
        table[ord(ch)] = "\n"
    for code in range(0x80, 0x10000):
        if unicodedata.category(chr(code)) == "Zs":
            table[code] = " "  # no-break space, em space, thin space, ideographic space...
    for ch in "\u200b\u200c\u200d\u2060\ufeff\u180e\u00ad":  # zero-width chars, BOM, soft hyphen
        table[ord(ch)] = None
    ligatures = {"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}
    for lig, expanded in ligatures.items():
        table[ord(lig)] = expanded
    return table


_TABLE = _build_table()
_SPACES = re.compile(r" {2,}")
_LEADING = re.compile(r"^ +")
_BLANK_RUN = re.compile(r"\n{3,}")


def clean_text(s: str, *, preserve_indent: bool = False) -> str:
    """Return ``s`` in canonical form: NFC, no controls, single spaces, at most one blank line.

    Exact-string retrieval and evidence matching only work if the same words always map to the
    same characters, whether they came from a PDF (ligatures, soft hyphens) or HTML (nbsp).
    With ``preserve_indent`` each line keeps its leading indentation (tabs there expand to a
    4-column tab stop), because indentation is meaning in code; elsewhere it is noise.
    """
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    if preserve_indent:
        # Expand indentation tabs before the table turns every tab into one space.
        s = "\n".join(_expand_indent(line) for line in s.split("\n"))
    s = unicodedata.normalize("NFC", s.translate(_TABLE))
    lines = []
    for line in s.split("\n"):
        body = line.lstrip(" ")
        indent = line[: len(line) - len(body)] if preserve_indent else ""
        body = _SPACES.sub(" ", body).rstrip(" ")
        lines.append(indent + body if body else "")
    return _BLANK_RUN.sub("\n\n", "\n".join(lines)).strip("\n")


def _expand_indent(line: str) -> str:
    body = line.lstrip(" \t")
    return line[: len(line) - len(body)].expandtabs(4) + body


def normalize_space(s: str) -> str:
    """Collapse all whitespace runs to one space: the form used to compare or look up strings."""
    return " ".join(s.split())


_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_HYPHEN_BREAK = re.compile(r"(\S*?)([^\W\d_]+)-[ \t]*\n[ \t]*([^\W\d_]+)")
# Used only when the document gives no evidence either way. Left halves that form hyphenated
# compounds far more often than they end a syllable:
_COMPOUND_PREFIXES = frozenset({"self", "non", "well", "cross", "half", "all", "semi", "quasi"})
# ... and left halves that are words but mostly start closed compounds ("some-thing").
_CLOSED_PREFIXES = frozenset(
    {"some", "every", "there", "where", "what", "when", "with", "through", "under", "over", "trans"}
)


class Spellings:
    """How one document spells its words: casefolded words and in-line hyphen pairs, counted.

    A word split at a line end is usually spelled elsewhere in the same document, joined or
    hyphenated, in this or another inflection ("pre-trained" beside "pre-\\ntrains"); that is
    better evidence than a general dictionary. Only unbroken, in-line occurrences are counted.
    """

    def __init__(self, text: str) -> None:
        counts: Counter[str] = Counter()
        for m in _WORD.finditer(text):
            parts = m.group(0).casefold().split("-")
            counts.update(parts)
            counts.update(f"{a}-{b}" for a, b in itertools.pairwise(parts))
        self._counts = counts
        self._keys = sorted(counts)
        self._cumulative = list(itertools.accumulate((counts[k] for k in self._keys), initial=0))

    def count(self, word: str) -> int:
        """Occurrences of ``word`` (casefolded; "a-b" counts in-line hyphen pairs)."""
        return self._counts[word.casefold()]

    def count_prefixed(self, prefix: str) -> int:
        """Occurrences of all words and pairs that start with ``prefix`` (casefolded)."""
        prefix = prefix.casefold()
        lo = bisect.bisect_left(self._keys, prefix)
        hi = bisect.bisect_left(self._keys, prefix + "\U0010ffff")
        return self._cumulative[hi] - self._cumulative[lo]


def join_hyphenation(s: str, spellings: Spellings | None = None) -> str:
    """Undo line-end hyphenation: ``"exam-\\nple"`` -> ``"example"``, but keep real hyphens.

    Only a hyphen right after a letter and right before the line break is considered, and only
    when a lowercase letter follows, so names and capitalised words ("Jean-\\nPaul") and hyphens
    inside a line ("English-to-German") are never touched. Whether the hyphen is a real one is
    decided by how the document spells the word elsewhere (``spellings``, by default those of
    ``s``): joined ("example") or hyphenated ("English-to"), exactly or in another inflection
    ("pre-trained" for "pre-\\ntrains"). Without evidence, ``_looks_compound`` guesses from the
    word's shape. Either way the line break goes, so the word reads whole.
    """
    spellings = Spellings(s) if spellings is None else spellings

    def repl(m: re.Match[str]) -> str:
        before, left, right = m.groups()
        if not right[0].islower():
            return m.group(0)
        stem = right[: max(3, len(right) - 3)]  # "trains" -> "tra": any inflection counts
        for joined, hyphenated in (
            (spellings.count(left + right), spellings.count(f"{left}-{right}")),
            (spellings.count_prefixed(left + stem), spellings.count_prefixed(f"{left}-{stem}")),
        ):
            if joined != hyphenated:
                keep = hyphenated > joined
                break
        else:
            keep = _looks_compound(before, left, right, s[m.end() : m.end() + 2], spellings)
        return before + left + ("-" if keep else "") + right

    return _HYPHEN_BREAK.sub(repl, s)


def _looks_compound(before: str, left: str, right: str, after: str, spellings: Spellings) -> bool:
    """Whether ``left-\\nright`` is a hyphenated compound, judged without a spelling elsewhere.

    A hyphen already in the left or right word ("state-of-\\nthe-art", "English-\\nto-German")
    or a compound-forming prefix ("self-\\nattention") says compound. Otherwise: a syllable break
    almost always leaves a half that is no word of its own ("transduc-tion"),
    whereas "sequence-aligned" joins two words the document also uses alone (the break itself
    counts each half once, hence ``>= 2``). Short halves are too often words by accident.
    """
    if "-" in before or (after[:1] == "-" and after[1:].isalpha()):
        return True  # "state-of-\nthe-art", "English-\nto-German"
    lo, ro = left.casefold(), right.casefold()
    if lo in _COMPOUND_PREFIXES:
        return True
    return (
        min(len(lo), len(ro)) >= 4
        and lo not in _CLOSED_PREFIXES
        and spellings.count(lo) >= 2
        and spellings.count(ro) >= 2
    )


_PAGE_NUMBER = re.compile(
    r"^[-–—\s]*(?:page\s+)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?[-–—\s]*$", re.IGNORECASE
)
_EDGE_DEPTH = 2  # lines looked at from each edge of a page: a header and its page number
_RUN_GAP = 2  # pages between two occurrences of one running line: 2 when it alternates sides
_RUN_LENGTH = 3  # occurrences a run needs before its line counts as page furniture


def strip_repeated_lines(pages: list[str]) -> list[str]:
    """Remove running headers, footers and bare page numbers from the text of each page.

    They recur on every page and would otherwise be glued into chunks as noise (and dominate
    near-duplicate detection). A line is a running header (footer) when, with digits replaced by
    ``#``, it is among the first (last) two lines of at least three pages, each within two pages
    of the next: books alternate headers between left and right pages, and a chapter's running
    title covers a stretch of pages, not half the book. Lines are peeled from each edge inwards
    and the peeling stops at the first line that is not furniture, so a repeated line of body
    text below a kept line is safe. The top and bottom are counted apart: a title on page one
    that is also every page's footer stays. With fewer than three pages nothing is touched.
    """
    if len(pages) < _RUN_LENGTH:
        return list(pages)
    split = [page.split("\n") for page in pages]
    edges = [_edge_lines(lines) for lines in split]
    seen: dict[tuple[int, str], list[int]] = {}
    for number, (lines, sides) in enumerate(zip(split, edges, strict=True)):
        for side, idx in enumerate(sides):
            for key in {_line_key(lines[i]) for i in idx}:
                seen.setdefault((side, key), []).append(number)
    running = {k: r for k, on in seen.items() if (r := _in_runs(on))}
    out = []
    for number, (lines, sides) in enumerate(zip(split, edges, strict=True)):
        drop: set[int] = set()
        for side, idx in enumerate(sides):
            for i in idx:
                pages_on = running.get((side, _line_key(lines[i])), frozenset())
                if not (_PAGE_NUMBER.match(lines[i]) or number in pages_on):
                    break
                drop.add(i)
        out.append("\n".join(line for i, line in enumerate(lines) if i not in drop))
    return out


def _in_runs(pages: list[int]) -> frozenset[int]:
    """The pages (sorted input) that lie in runs of ``_RUN_LENGTH`` or more, ``_RUN_GAP`` apart."""
    kept: list[int] = []
    run = pages[:1]
    for page in pages[1:]:
        if page - run[-1] > _RUN_GAP:
            kept.extend(run if len(run) >= _RUN_LENGTH else [])
            run = []
        run.append(page)
    kept.extend(run if len(run) >= _RUN_LENGTH else [])
    return frozenset(kept)


def _edge_lines(lines: list[str]) -> tuple[list[int], list[int]]:
    """Indices of the top and bottom candidate lines, each listed from its edge inwards."""
    nonempty = [i for i, line in enumerate(lines) if line.strip()]
    return nonempty[:_EDGE_DEPTH], nonempty[::-1][:_EDGE_DEPTH]


def _line_key(line: str) -> str:
    return re.sub(r"\d", "#", normalize_space(line))


_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def decode_entities(s: str) -> str:
    """Decode HTML character references that end in ``;`` (``&amp;``, ``&#8212;``).

    Markdown may carry entities; plain text does not, so only converters that need it call this.
    Unlike bare ``html.unescape`` it leaves ``&copy=2`` in a URL query string alone.
    """
    return _ENTITY.sub(lambda m: html.unescape(m.group(0)), s)
