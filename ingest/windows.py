"""Context windows: the model reads a window around each retrieved chunk, not the chunk alone.

Small chunks stay the unit of retrieval (64 tokens rank best with this encoder), but a 64-token
fragment cut mid-sentence is a poor thing to answer from. A window extends a hit with the chunks
around it in its document (read by ordinal; ``chunk.text == document.text[start:end]``, so the
joined text is exact up to the whitespace between chunks), up to a token budget, then trims a
partial sentence at either end that lies outside the hit. Windows of one document that overlap
or touch merge into one passage, so the model never reads the same text twice. Every window
records where its retrieved chunks sit inside its text (``spans``), so a client can highlight
the part that was found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ingest.docstore import Hit

NEIGHBOURS = 8  # chunks read on each side of a hit; the budget decides how many are kept
# A sentence ends at . ! ? (optionally closed by a quote or bracket) before white space, or at a
# blank line; the next sentence starts after that white space.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]?\s+|\n\s*\n")


class _Reader(Protocol):
    def around(self, chunk_id: int, before: int, after: int) -> list[Hit]: ...


@dataclass(frozen=True)
class Window:
    """A passage as the model reads it: the best hit in it, its text and where hits sit in it."""

    hit: Hit  # the best-ranked retrieved chunk inside (its score ranks the window)
    text: str
    start: int  # document offsets of ``text``
    end: int
    spans: tuple[tuple[int, int], ...]  # retrieved chunks' [start, end) inside ``text``
    rows: tuple[Hit, ...]  # the chunks the window was joined from, in text order
    found: frozenset[int]  # ids of the retrieved chunks among them

    @property
    def chunk_ids(self) -> tuple[int, ...]:
        return tuple(r.chunk_id for r in self.rows)


def single(hit: Hit) -> Window:
    """A hit as a window of its own (windows off)."""
    return Window(
        hit, hit.text, hit.start, hit.end, ((0, len(hit.text)),), (hit,), frozenset({hit.chunk_id})
    )


def build_windows(
    hits: Sequence[Hit],
    reader: _Reader,
    budget_tokens: int,
    count_tokens: Callable[[str], int] | None = None,
) -> list[Window]:
    """One window per hit, best first, merged where they meet; ``budget_tokens`` 0: the hits.

    Chunks are measured by ``count_tokens``, or else by the token counts the chunker stored
    (the embedding model's tokenizer; within ~20% of a small LLM's, and free to read).
    """
    if budget_tokens <= 0:
        return [single(h) for h in hits]
    windows: list[Window] = []
    for hit in hits:
        around = reader.around(hit.chunk_id, NEIGHBOURS, NEIGHBOURS)
        mine = _assemble(hit, _grow(hit, around, budget_tokens, count_tokens), {hit.chunk_id})
        for i, other in enumerate(windows):
            if other.hit.doc_id == hit.doc_id and _meet(other, mine):
                rows = {r.chunk_id: r for r in (*other.rows, *mine.rows)}.values()
                merged = sorted(rows, key=lambda r: r.start)
                windows[i] = _assemble(other.hit, merged, other.found | mine.found)
                break
        else:
            windows.append(mine)
    return windows


def _grow(hit: Hit, rows: list[Hit], budget: int, count: Callable[[str], int] | None) -> list[Hit]:
    """The hit plus neighbours, alternately after and before it, while they fit ``budget``.

    The window's size is the sum of its chunks' (``count``, else the counts the chunker stored):
    exact up to the joints.
    """
    at = next((i for i, r in enumerate(rows) if r.chunk_id == hit.chunk_id), None)
    if at is None:  # the hit's document changed since it was ranked: the hit alone
        return [hit]
    size = [count(r.text) if count else r.n_tokens or max(1, len(r.text) // 4) for r in rows]
    lo, hi, used = at, at + 1, size[at]
    after, before = True, True
    while after or before:
        if after:
            after = hi < len(rows) and used + size[hi] <= budget
            if after:
                used += size[hi]
                hi += 1
        if before:
            before = lo > 0 and used + size[lo - 1] <= budget
            if before:
                lo -= 1
                used += size[lo]
    return rows[lo:hi]


def _join(rows: Sequence[Hit]) -> tuple[str, list[int]]:
    """The rows' text joined as the document had it, and where each row starts in it."""
    parts: list[str] = []
    starts: list[int] = []
    pos, end = 0, -1
    for r in rows:
        skip = 0
        if end >= 0:
            if r.start < end:  # overlapping chunks: only what is new
                skip = min(end - r.start, len(r.text))
            else:
                sep = "\n\n" if r.start - end >= 2 or r.heading != rows[0].heading else " "
                parts.append(sep)
                pos += len(sep)
        starts.append(pos - skip)
        parts.append(r.text[skip:])
        pos += len(r.text) - skip
        end = max(end, r.end)
    return "".join(parts), starts


def _assemble(best: Hit, rows: Sequence[Hit], found: set[int] | frozenset[int]) -> Window:
    """The window over ``rows``, trimmed to whole sentences outside the retrieved chunks."""
    text, starts = _join(rows)
    spans = sorted(
        (max(s, 0), s + len(r.text))
        for r, s in zip(rows, starts, strict=True)
        if r.chunk_id in found
    )
    first, last = spans[0][0], max(e for _, e in spans)
    cut_lo = 0
    if first > 0 and not text[:1].isupper():  # starts mid-sentence: from the next sentence on
        m = _SENTENCE_BREAK.search(text, 0, first)
        cut_lo = m.end() if m else 0
    cut_hi = len(text)
    tail = text[last:].rstrip()
    if tail and not tail.endswith((".", "!", "?", '."', ".)")):  # ends mid-sentence
        ends = [m.start() for m in _SENTENCE_BREAK.finditer(text, last)]
        cut_hi = ends[-1] if ends else len(text)
    window_text = text[cut_lo:cut_hi].rstrip()
    shifted = tuple((a - cut_lo, min(b - cut_lo, len(window_text))) for a, b in spans)
    return Window(
        hit=best,
        text=window_text,
        start=rows[0].start + cut_lo,
        end=rows[0].start + cut_lo + len(window_text),
        spans=shifted,
        rows=tuple(rows),
        found=frozenset(found),
    )


def _meet(a: Window, b: Window) -> bool:
    """Windows of one document whose chunks overlap or sit next to each other."""
    if set(a.chunk_ids) & set(b.chunk_ids):
        return True
    return any(
        0 <= y.start - x.end <= 2 or 0 <= x.start - y.end <= 2 for x in a.rows for y in b.rows
    )
