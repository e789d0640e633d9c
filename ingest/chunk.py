"""Token-aware recursive chunking: split at the strongest boundary that keeps a chunk in budget.

The document is tokenized once with the embedding model's own tokenizer; every possible break (the
gap before a token) gets a rank, strongest first: section start, page start, blank line, line
break, sentence end, word boundary, inside a word. A chunk ends at the first section start within
its token budget, else at the strongest, latest break within it. That is what a recursive
splitter (sections, then paragraphs, lines, sentences, words) computes, but in one pass and with
exact token counts, so chunk sizes are honest and offsets are exact:
``chunk.text == document.text[chunk.start:chunk.end]``.

Every non-whitespace character of the document lies in some chunk; gaps between consecutive
chunks hold only whitespace.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from tokenizers import Tokenizer

from ingest.model import Chunk, Document

# Break ranks; a break may end a chunk early (leaving it short) only when it is strong enough.
_SECTION, _PAGE, _PARAGRAPH, _LINE, _SENTENCE, _WORD, _INSIDE = 6, 5, 4, 3, 2, 1, 0
_SENTENCE_END = frozenset(".!?;:")


def chunk_document(
    doc: Document, tokenizer: Tokenizer, *, size: int, overlap: int = 0
) -> list[Chunk]:
    """Split ``doc`` into chunks of at most ``size`` tokens, consecutive ones sharing ~``overlap``."""
    if size < 1 or overlap < 0:
        raise ValueError("chunk size must be positive and overlap non-negative")
    overlap = min(overlap, size // 4)  # overlap beyond a quarter would mostly re-embed text
    text = doc.text
    spans = [(s, e) for s, e in tokenizer.encode(text, add_special_tokens=False).offsets if e > s]
    if not spans:
        return _whole(doc, text, 0) if text.strip() else []
    ranks = _break_ranks(doc, spans)
    pieces: list[tuple[int, int]] = []  # token ranges [a, b)
    start = 0
    n = len(spans)
    while start < n:
        end = _choose_end(ranks, start, n, size)
        pieces.append((start, end))
        if end >= n:
            break
        start = _choose_restart(ranks, start, end, overlap)
    chunks = [_make(doc, text, spans, a, b) for a, b in pieces]
    return _enforce_limit(doc, tokenizer, chunks, size)


def _break_ranks(doc: Document, spans: list[tuple[int, int]]) -> list[int]:
    """Rank of the break before each token (index 0 is the document start)."""
    text = doc.text
    section_starts = sorted(s.start for s in doc.sections)
    page_starts = sorted(p.start for p in doc.pages)
    ranks = [_SECTION]
    for j in range(1, len(spans)):
        prev_end, here = spans[j - 1][1], spans[j][0]
        gap = text[prev_end:here]
        if gap and _any_within(section_starts, prev_end, here):
            rank = _SECTION
        elif gap and _any_within(page_starts, prev_end, here):
            rank = _PAGE
        elif "\n\n" in gap:
            rank = _PARAGRAPH
        elif "\n" in gap:
            rank = _LINE
        elif gap and text[prev_end - 1] in _SENTENCE_END:
            rank = _SENTENCE
        elif gap:
            rank = _WORD
        else:
            rank = _INSIDE
        ranks.append(rank)
    return ranks


def _any_within(sorted_offsets: list[int], lo: int, hi: int) -> bool:
    i = bisect.bisect_left(sorted_offsets, lo)
    return i < len(sorted_offsets) and sorted_offsets[i] <= hi


def _choose_end(ranks: list[int], start: int, n: int, size: int) -> int:
    """The first section start in budget, else the strongest, then latest, break in budget.

    A chunk never runs on into the next section, however little of its own section is left:
    a chunk is indexed, cited and windowed under the heading path where it starts, so a section
    that began inside it would be filed under its predecessor ("1.1 A note on terminology" for
    the rules after it). Two exceptions keep chunks meaningful: a section's bare heading line
    stays with what follows (a heading alone answers nothing), and a tail of fewer than
    ``size // 8`` tokens does too. Otherwise weak breaks must leave the chunk half full.
    """
    limit, shortest = start + size, start + max(1, size // 8)
    bare = ranks[start] == _SECTION  # nothing yet but the heading line of the section it opens
    for j in range(start + 1, min(limit, n)):
        if ranks[j] == _SECTION and not bare and j >= shortest:
            return j
        bare = bare and ranks[j] < _LINE  # a line break (a section start too) ends the heading
    if limit >= n:
        return n
    best, best_rank = limit, -1
    for j in range(limit, start + size // 4 - 1, -1):
        rank = ranks[j]
        if rank < _PARAGRAPH and j - start < size // 2:
            continue
        if rank > best_rank:
            best, best_rank = j, rank
            if rank == _SECTION:
                break
    return best


def _choose_restart(ranks: list[int], start: int, end: int, overlap: int) -> int:
    """Where the next chunk starts: the strongest break among the last ``overlap`` tokens.

    A chunk that ended at a paragraph or stronger break needs no overlap: the cut is already where
    the text itself changes subject. Ties go to the earliest break (more shared context).
    """
    if overlap == 0 or ranks[end] >= _PARAGRAPH:
        return end
    best, best_rank = end, _WORD
    for j in range(end - 1, max(end - overlap, start + 1) - 1, -1):
        if ranks[j] >= best_rank:
            best, best_rank = j, ranks[j]
    return best


def _make(doc: Document, text: str, spans: list[tuple[int, int]], a: int, b: int) -> Chunk:
    # Characters the tokenizer drops (between tokens) go with the chunk before them.
    lo = 0 if a == 0 else spans[a][0]
    hi = len(text) if b >= len(spans) else spans[b][0]
    while hi > lo and text[hi - 1].isspace():
        hi -= 1
    while lo < hi and text[lo].isspace():
        lo += 1
    return Chunk(
        ordinal=0,
        start=lo,
        end=hi,
        text=text[lo:hi],
        page=doc.page_at(lo),
        heading=doc.heading_path(lo),
        n_tokens=b - a,
    )


def _whole(doc: Document, text: str, n_tokens: int) -> list[Chunk]:
    lo = len(text) - len(text.lstrip())
    hi = len(text.rstrip())
    return [Chunk(0, lo, hi, text[lo:hi], doc.page_at(lo), doc.heading_path(lo), n_tokens)]


def _enforce_limit(
    doc: Document, tokenizer: Tokenizer, chunks: Sequence[Chunk], size: int
) -> list[Chunk]:
    """Recount each chunk on its own and split any that grew past ``size``; number them."""
    counts = [
        len([o for o in enc.offsets if o[1] > o[0]])
        for enc in tokenizer.encode_batch([c.text for c in chunks], add_special_tokens=False)
    ]
    out: list[Chunk] = []
    for chunk, count in zip(chunks, counts, strict=True):
        if count <= size:
            out.append(_renumber(chunk, len(out), count))
            continue
        # A break inside a word re-tokenizes differently on its own (rare: very long "words").
        sub = Document(text=chunk.text, kind=doc.kind)
        for part in chunk_document(sub, tokenizer, size=max(1, size - (count - size)), overlap=0):
            lo, hi = chunk.start + part.start, chunk.start + part.end
            page, heading = doc.page_at(lo), doc.heading_path(lo)
            out.append(Chunk(len(out), lo, hi, part.text, page, heading, part.n_tokens))
    if len(out) == len(chunks):
        return out
    # A split piece can lie wholly inside a neighbour's overlap: keep only the larger span.
    kept: list[Chunk] = []
    for c in out:
        if kept and kept[-1].start <= c.start and c.end <= kept[-1].end:
            continue
        while kept and c.start <= kept[-1].start and kept[-1].end <= c.end:
            kept.pop()
        kept.append(c)
    return [_renumber(c, i, c.n_tokens) for i, c in enumerate(kept)]


def _renumber(chunk: Chunk, ordinal: int, n_tokens: int) -> Chunk:
    return Chunk(ordinal, chunk.start, chunk.end, chunk.text, chunk.page, chunk.heading, n_tokens)
