"""BM25 over chunk text in immutable segments, scored with the whole collection's statistics.

A segment keeps raw term frequencies, not scores: a CSC-style posting matrix over its own sorted
vocabulary of stems (``indptr``, ``rows``, ``tf``) plus each chunk's length. BM25 needs
collection-wide document frequencies and average length, and those change with every commit, so
they are summed over the live rows of all segments at query time (a posting list per query term
per segment), and scores are exact Lucene BM25 whatever the segmentation: a commit writes only its
new chunks, a deletion only hides rows, and a merge concatenates postings without re-tokenizing.
bm25s (the reference implementation the tests compare scores with) provides the stop words.

Files of a segment's ``lexical/`` directory, plain ``.npy`` and JSON that load memory-mapped:
``terms.json`` (the sorted stems), ``indptr.npy``, ``rows.npy``, ``tf.npy`` and ``lengths.npy``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

__all__ = ["K1", "B", "LexicalSegment", "LivePostings", "bm25_search", "lexical_text", "stems"]

TERMS_FILE = "terms.json"
# Lucene's BM25 variant and parameters: the configuration behind the published BEIR numbers.
K1, B = 1.2, 0.75

_SPLIT = re.compile(r"(?u)\b\w\w+\b").findall  # bm25s' default splitter
_STOP = frozenset(STOPWORDS_EN)
_STEMMER = Stemmer.Stemmer("english")


def lexical_text(heading: Sequence[str], text: str) -> str:
    """What BM25 indexes for a chunk: its heading path, then its text (titles carry key terms)."""
    return " ".join(heading) + "\n" + text if heading else text


def stems(text: str) -> list[str]:
    """The text's terms in order, as bm25s tokenizes: lowercase, split, stop words out, stemmed."""
    return list(_STEMMER.stemWords([w for w in _SPLIT(text.lower()) if w not in _STOP]))


@dataclass(frozen=True)
class LexicalSegment:
    """One segment's term frequencies; row ``r`` is the segment's ``r``-th chunk."""

    terms: list[str]  # sorted stems; column t of the posting matrix is terms[t]
    indptr: np.ndarray  # (len(terms) + 1,) int64: column t's postings are [indptr[t], indptr[t+1])
    rows: np.ndarray  # int32 row of each posting, ascending within a column
    tf: np.ndarray  # float32 count of the term in that row
    lengths: np.ndarray  # (n,) float32 terms per row

    @cached_property
    def _column(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.terms)}

    def __len__(self) -> int:
        return int(self.lengths.size)

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalSegment:
        """Tokenize ``texts`` (one per row) into a new segment."""
        return cls.of_terms([stems(t) for t in texts])

    @classmethod
    def of_terms(cls, docs: Sequence[Sequence[str]]) -> LexicalSegment:
        """A new segment of already tokenized rows."""
        terms = sorted({s for d in docs for s in d})
        column = {t: i for i, t in enumerate(terms)}
        cols = np.fromiter((column[s] for d in docs for s in d), np.int64)
        rows = np.repeat(np.arange(len(docs), dtype=np.int64), [len(d) for d in docs])
        lengths = np.fromiter((len(d) for d in docs), np.float32, len(docs))
        return cls._from_pairs(terms, cols, rows, np.ones(cols.size, np.float32), lengths)

    @classmethod
    def from_bm25s(cls, directory: Path) -> tuple[LexicalSegment, np.ndarray]:
        """The BM25 files of a store from before segments; returns the segment and its chunk ids.

        Those kept each chunk's token ids and bm25s' vocabulary, so the terms are exact.
        """
        vocab = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
        stem_of = {int(sid): stem for stem, sid in vocab["stem_to_sid"].items()}
        tokens = np.load(directory / "tokens.npy").tolist()
        offsets = np.load(directory / "offsets.npy").tolist()
        ids = np.load(directory / "ids.npy").astype(np.int64)
        docs = [
            [t for t in (stem_of.get(x, "") for x in tokens[offsets[r] : offsets[r + 1]]) if t]
            for r in range(ids.size)
        ]
        order = np.argsort(ids, kind="stable")
        return cls.of_terms([docs[i] for i in order]), ids[order]

    @classmethod
    def _from_pairs(
        cls,
        terms: list[str],
        cols: np.ndarray,
        rows: np.ndarray,
        tf: np.ndarray,
        lengths: np.ndarray,
    ) -> LexicalSegment:
        """Postings from (column, row, count) triples; duplicates are summed."""
        n = max(int(lengths.size), 1)
        keys, inverse = np.unique(cols * n + rows, return_inverse=True)
        counts = np.bincount(inverse, weights=tf, minlength=keys.size).astype(np.float32)
        indptr = np.zeros(len(terms) + 1, np.int64)
        np.cumsum(np.bincount(keys // n, minlength=len(terms)), out=indptr[1:])
        return cls(terms, indptr, (keys % n).astype(np.int32), counts, lengths)

    @classmethod
    def merge(
        cls, parts: Sequence[tuple[LexicalSegment, np.ndarray]], order: np.ndarray
    ) -> LexicalSegment:
        """One segment of the kept rows of each part: ``parts`` holds (segment, rows to keep).

        ``order`` permutes the kept rows, concatenated part after part, into the merged order.
        """
        terms = sorted({t for seg, _ in parts for t in seg.terms})
        vocab = np.asarray(terms)
        rank = np.empty(order.size, np.int64)
        rank[order] = np.arange(order.size)
        cols, rows, tfs, lengths = [], [], [], []
        offset = 0
        for seg, keep in parts:
            new_row = np.full(len(seg), -1, np.int64)
            new_row[keep] = rank[offset : offset + keep.size]
            remap = np.searchsorted(vocab, np.asarray(seg.terms)) if seg.terms else vocab[:0]
            col = np.repeat(np.asarray(remap, np.int64), np.diff(seg.indptr))
            row = new_row[np.asarray(seg.rows, np.int64)]
            live = row >= 0
            cols.append(col[live])
            rows.append(row[live])
            tfs.append(np.asarray(seg.tf)[live])
            lengths.append(np.asarray(seg.lengths)[keep])
            offset += keep.size
        return cls._from_pairs(
            terms,
            np.concatenate(cols) if cols else np.zeros(0, np.int64),
            np.concatenate(rows) if rows else np.zeros(0, np.int64),
            np.concatenate(tfs) if tfs else np.zeros(0, np.float32),
            (np.concatenate(lengths) if lengths else np.zeros(0, np.float32))[order],
        )

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows holding ``term`` and its count in each."""
        col = self._column.get(term)
        if col is None:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        lo, hi = int(self.indptr[col]), int(self.indptr[col + 1])
        return self.rows[lo:hi], self.tf[lo:hi]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / TERMS_FILE).write_text(json.dumps(self.terms), encoding="utf-8")
        for name in ("indptr", "rows", "tf", "lengths"):
            np.save(directory / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, directory: Path, *, mmap: bool = True) -> LexicalSegment:
        """Load a saved segment; with ``mmap`` the arrays stay in the page cache, not the heap."""
        mode: Literal["r"] | None = "r" if mmap else None
        terms = json.loads((directory / TERMS_FILE).read_text(encoding="utf-8"))
        arrays = {n: np.load(directory / f"{n}.npy", mmap_mode=mode) for n in ("indptr", "rows")}
        arrays |= {n: np.load(directory / f"{n}.npy", mmap_mode=mode) for n in ("tf", "lengths")}
        seg = cls(terms, **arrays)
        if (
            seg.indptr.size != len(terms) + 1
            or int(seg.indptr[-1]) != seg.rows.size
            or seg.rows.size != seg.tf.size
        ):
            raise ValueError(f"{directory}: posting arrays disagree ({len(terms)} terms)")
        return seg


@dataclass(frozen=True)
class LivePostings:
    """A segment as one version sees it: ``dead`` marks rows deleted since it was written."""

    segment: LexicalSegment
    ids: np.ndarray  # chunk id of each row
    dead: np.ndarray | None  # bool per row, None when no row is deleted

    def live(self, rows: np.ndarray, tf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The postings ``rows``, ``tf`` of live rows only."""
        if self.dead is None:
            return rows, tf
        keep = ~self.dead[rows]
        return rows[keep], tf[keep]

    @cached_property
    def count(self) -> int:
        return len(self.segment) - (0 if self.dead is None else int(self.dead.sum()))

    @cached_property
    def total_length(self) -> float:
        lengths = np.asarray(self.segment.lengths, np.float64)
        return float(lengths.sum() if self.dead is None else lengths[~self.dead].sum())


def bm25_search(parts: Sequence[LivePostings], query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunk ids and Lucene BM25 scores of the best ``k`` live chunks sharing a term with ``query``.

    Document frequencies, the collection size and the average length count live rows of every
    segment, so the scores equal those of one index over the same chunks. Ties go to the lower
    chunk id.
    """
    terms = sorted(set(stems(query)))
    n_docs = sum(p.count for p in parts)
    if not terms or k <= 0 or n_docs == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    avgdl = sum(p.total_length for p in parts) / n_docs
    found: list[list[tuple[np.ndarray, np.ndarray]]] = []  # per part, per term: live postings
    df = np.zeros(len(terms))
    for p in parts:
        per_term = []
        for t, term in enumerate(terms):
            rows, tf = p.live(*p.segment.postings(term))
            df[t] += rows.size
            per_term.append((rows, tf))
        found.append(per_term)
    idf = np.log(1 + (n_docs - df + 0.5) / (df + 0.5))
    ids, scores = [], []
    for p, per_term in zip(parts, found, strict=True):
        rows = np.concatenate([r for r, _ in per_term]).astype(np.int64)
        if not rows.size:
            continue
        lengths = np.asarray(p.segment.lengths, np.float32)
        contrib = []
        for t, (r, tf) in enumerate(per_term):
            norm = K1 * (1 - B + B * lengths[r] / np.float32(avgdl))
            contrib.append(np.float32(idf[t]) * tf / (tf + norm))
        weights = np.concatenate(contrib)
        if rows.size * 8 < len(p.segment):  # few postings: touch only their rows
            hit, inverse = np.unique(rows, return_inverse=True)
            acc = np.bincount(inverse, weights=weights).astype(np.float32)
        else:  # common terms: one pass over the segment beats sorting millions of postings
            dense = np.bincount(rows, weights=weights, minlength=len(p.segment))
            hit = np.flatnonzero(dense)
            acc = dense[hit].astype(np.float32)
        if hit.size > k:  # the best k, and every row tied with the k-th (ties go by chunk id)
            kth = np.partition(acc, hit.size - k)[hit.size - k]
            keep = acc >= kth
            hit, acc = hit[keep], acc[keep]
        ids.append(np.asarray(p.ids, np.int64)[hit])
        scores.append(acc)
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    all_ids, all_scores = np.concatenate(ids), np.concatenate(scores)
    order = np.lexsort((all_ids, -all_scores))[:k]
    return all_ids[order], all_scores[order].astype(np.float32)
