"""Context windows around retrieved chunks: exact text, whole sentences, merged, within budget."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.docstore import Hit
from ingest.windows import Window, build_windows


def words(text: str) -> int:
    return len(text.split())


def chunked(text: str, per: int, doc: str = "d") -> list[Hit]:
    """``text`` cut every ``per`` words, with exact offsets (as the real chunker keeps them)."""
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    rows = []
    for n, i in enumerate(range(0, len(spans), per)):
        start, end = spans[i][0], spans[min(i + per, len(spans)) - 1][1]
        rows.append(
            Hit(
                100 * ord(doc[0]) + n,
                doc,
                f"/{doc}.txt",
                None,
                (),
                start,
                end,
                text[start:end],
                0.0,
            )
        )
    return rows


class Reader:
    def __init__(self, *docs: list[Hit]) -> None:
        self.rows = {r.chunk_id: (doc, i) for doc in docs for i, r in enumerate(doc)}

    def around(self, chunk_id: int, before: int, after: int) -> list[Hit]:
        if chunk_id not in self.rows:
            return []
        doc, i = self.rows[chunk_id]
        return doc[max(0, i - before) : i + after + 1]


DOC = " ".join(
    f"Sentence {n} says that the widget number {n} weighs {n * 3} grams in total."
    for n in range(1, 30)
)


def check_spans(w: Window, found: list[Hit]) -> None:
    by_id = {h.chunk_id: h for h in found}
    texts = sorted(w.text[a:b] for a, b in w.spans)
    assert texts == sorted(by_id[i].text for i in w.found)


def test_no_budget_gives_the_chunks_themselves() -> None:
    rows = chunked(DOC, 7)
    [w] = build_windows([rows[3]], Reader(rows), 0, words)
    assert (w.text, w.spans, w.start, w.end) == (
        rows[3].text,
        ((0, len(rows[3].text)),),
        rows[3].start,
        rows[3].end,
    )


def test_a_window_grows_into_whole_sentences_within_the_budget() -> None:
    rows = chunked(DOC, 7)  # 7 words: every chunk cuts a 13-word sentence
    hit = rows[10]
    [w] = build_windows([hit], Reader(rows), 40, words)
    assert words(w.text) <= 40 and len(w.text) > len(hit.text)
    assert w.text == DOC[w.start : w.end]  # exact: the document's own text
    assert w.text.startswith("Sentence ") and w.text.endswith("in total.")
    check_spans(w, [hit])


def test_windows_of_one_document_that_meet_merge_and_keep_both_spans() -> None:
    rows = chunked(DOC, 7)
    other = chunked(DOC, 7, doc="e")
    ws = build_windows([rows[10], other[4], rows[11]], Reader(rows, other), 30, words)
    assert [w.hit.doc_id for w in ws] == ["d", "e"]  # rank order of the best hit in each
    assert ws[0].found == {rows[10].chunk_id, rows[11].chunk_id}
    check_spans(ws[0], [rows[10], rows[11]])
    far = build_windows([rows[1], rows[25]], Reader(rows), 20, words)
    assert len(far) == 2  # far apart in one document: two passages


@settings(max_examples=60, deadline=None)
@given(
    n_sentences=st.integers(1, 25),
    per=st.integers(2, 15),
    budget=st.integers(1, 80),
    picks=st.lists(st.integers(0, 200), min_size=1, max_size=5, unique=True),
)
def test_windows_are_exact_and_hold_their_hits(
    n_sentences: int, per: int, budget: int, picks: list[int]
) -> None:
    text = " ".join(f"Item {n} is {'very ' * (n % 4)}small." for n in range(n_sentences))
    rows = chunked(text, per)
    hits = list(dict.fromkeys(rows[p % len(rows)] for p in picks))
    windows = build_windows(hits, Reader(rows), budget, words)
    assert len(windows) <= len(hits)
    assert {i for w in windows for i in w.found} == {h.chunk_id for h in hits}
    for w in windows:
        assert w.text == text[w.start : w.end]
        check_spans(w, hits)
        if len(w.found) == 1 and words(w.hit.text) <= budget:
            assert words(w.text) <= budget
