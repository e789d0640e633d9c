"""BM25 over chunk text, one immutable snapshot per index version (the only bm25s importer).

bm25s precomputes every (term, chunk) score into a sparse matrix, which makes a query a few
vector additions, but the scores depend on collection statistics (document frequencies, average
length), so any change means a new matrix. A commit therefore rebuilds the matrix from token ids
kept with each version; only the text of new chunks is tokenized. Rebuilding is about 12 µs per
chunk on this machine (1M chunks: ~12 s), the same order as rewriting the FAISS file, and it keeps
BM25 and FAISS in the same version directory, switched by the same SQLite transaction.

Files of a snapshot, all plain ``.npy`` / JSON that load memory-mapped:
``bm25/`` (bm25s' own save format), ``tokens.npy`` + ``offsets.npy`` (each chunk's token ids),
``ids.npy`` (the chunk id of each BM25 row) and ``tokenizer.json`` (bm25s' vocabulary).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import bm25s
import numpy as np
import Stemmer
from bm25s.tokenization import Tokenizer

__all__ = ["LexicalIndex", "lexical_text"]

BM25_DIR = "bm25"
TOKENIZER_FILE = "tokenizer.json"
# Lucene's BM25 variant and parameters: the configuration behind the published BEIR numbers.
K1, B = 1.2, 0.75

# bm25s reports "empty query" and similar at INFO/WARNING; a query is allowed to miss.
logging.getLogger("bm25s").setLevel(logging.ERROR)


def lexical_text(heading: Sequence[str], text: str) -> str:
    """What BM25 indexes for a chunk: its heading path, then its text (titles carry key terms)."""
    return " ".join(heading) + "\n" + text if heading else text


def _tokenizer() -> Tokenizer:
    return Tokenizer(stemmer=Stemmer.Stemmer("english"), stopwords="en")


def _copy_vocab(source: Tokenizer) -> Tokenizer:
    """A tokenizer with its own copy of ``source``'s vocabulary (the stemmer is stateless)."""
    tokenizer = _tokenizer()
    tokenizer.word_to_stem = dict(source.word_to_stem)
    tokenizer.stem_to_sid = dict(source.stem_to_sid)
    tokenizer.word_to_id = dict(source.word_to_id)
    return tokenizer


class LexicalIndex:
    """An immutable BM25 snapshot; ``updated`` returns a new one, so readers never see a change."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        tokens: np.ndarray,
        offsets: np.ndarray,
        ids: np.ndarray,
        bm25: bm25s.BM25 | None,
    ) -> None:
        self._tokenizer = tokenizer
        self._tokens = tokens
        self._offsets = offsets
        self._ids = ids
        self._bm25 = bm25
        # The empty-text token; a query made only of it (or of unknown words) matches nothing.
        self._empty_id = tokenizer.word_to_id.get("")
        self._stopwords = frozenset(tokenizer.stopwords or ())

    @classmethod
    def empty(cls) -> LexicalIndex:
        return cls(
            _tokenizer(),
            np.zeros(0, np.int32),
            np.zeros(1, np.int64),
            np.zeros(0, np.int64),
            None,
        )

    def __len__(self) -> int:
        return int(self._ids.size)

    def vocabulary_entries(self) -> int:
        """Entries in the tokenizer's dictionaries (a query must never add to them)."""
        t = self._tokenizer
        return len(t.word_to_stem) + len(t.stem_to_sid) + len(t.word_to_id)

    @property
    def ids(self) -> np.ndarray:
        """Chunk id of each indexed row (for consistency checks against FAISS)."""
        return self._ids

    # --- building ------------------------------------------------------------------------

    def updated(self, removes: np.ndarray, adds: Sequence[tuple[int, str]]) -> LexicalIndex:
        """A new snapshot without the chunk ids in ``removes`` and with ``adds`` (id, text)."""
        keep = ~np.isin(self._ids, removes) if removes.size else np.ones(len(self), bool)
        starts, ends = self._offsets[:-1][keep], self._offsets[1:][keep]
        old = [
            self._tokens[s:e].tolist() for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
        ]
        tokenizer = _copy_vocab(self._tokenizer)  # readers keep using the current vocabulary
        new = tokenizer.tokenize(
            [text for _, text in adds], update_vocab=True, show_progress=False, return_as="ids"
        )
        docs: list[list[int]] = old + [list(map(int, d)) for d in new]
        ids = np.concatenate(
            [self._ids[keep], np.fromiter((i for i, _ in adds), np.int64, len(adds))]
        )
        lengths = np.fromiter((len(d) for d in docs), np.int64, len(docs))
        offsets = np.zeros(len(docs) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens = np.fromiter((t for d in docs for t in d), np.int32, int(offsets[-1]))
        bm25 = None
        if docs:
            bm25 = bm25s.BM25(k1=K1, b=B, method="lucene")
            vocab = dict(tokenizer.get_vocab_dict())
            bm25.index((docs, vocab), show_progress=False, create_empty_token=False)
        return LexicalIndex(tokenizer, tokens, offsets, ids, bm25)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "tokens.npy", self._tokens)
        np.save(directory / "offsets.npy", self._offsets)
        np.save(directory / "ids.npy", self._ids)
        self._tokenizer.save_vocab(str(directory), TOKENIZER_FILE)
        if self._bm25 is not None:
            self._bm25.save(str(directory / BM25_DIR))

    @classmethod
    def load(cls, directory: Path, *, mmap: bool = True) -> LexicalIndex:
        """Load a saved snapshot; with ``mmap`` the arrays stay in the page cache, not the heap."""
        mode: Literal["r"] | None = "r" if mmap else None
        tokenizer = _tokenizer()
        tokenizer.load_vocab(str(directory), TOKENIZER_FILE)
        tokens = np.load(directory / "tokens.npy", mmap_mode=mode)
        offsets = np.load(directory / "offsets.npy", mmap_mode=mode)
        ids = np.load(directory / "ids.npy", mmap_mode=mode)
        bm25 = None
        if (directory / BM25_DIR).is_dir():
            bm25 = bm25s.BM25.load(str(directory / BM25_DIR), mmap=mmap, show_progress=False)
        if offsets.size != ids.size + 1 or int(offsets[-1]) != tokens.size:
            raise ValueError(f"{directory}: token arrays disagree ({ids.size} ids)")
        return cls(tokenizer, tokens, offsets, ids, bm25)

    # --- searching -----------------------------------------------------------------------

    def query_ids(self, query: str) -> list[int]:
        """Vocabulary ids of the query's terms, tokenized as the chunks were.

        Read-only on purpose: bm25s' own ``tokenize`` records every new word it stems, even with
        ``update_vocab=False``, so a long-running server would grow a dict with every query.
        """
        t = self._tokenizer
        stop = self._stopwords
        out: set[int] = set()
        for word in t.splitter(query.lower()):
            known = t.word_to_id.get(word)
            if known is None and word not in stop:
                known = t.stem_to_sid.get(t.stemmer(word))
            if known is not None and known != self._empty_id:
                out.add(int(known))
        return sorted(out)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Chunk ids and BM25 scores of the best ``k`` chunks sharing a term with ``query``."""
        terms = self.query_ids(query)
        if self._bm25 is None or not terms or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores = self._bm25.get_scores_from_ids(terms)
        matched = np.flatnonzero(scores > 0)
        if matched.size > k:
            part = np.argpartition(-scores[matched], k - 1)[:k]
            matched = matched[part]
        order = matched[np.argsort(-scores[matched], kind="stable")]
        return np.asarray(self._ids[order], np.int64), scores[order].astype(np.float32)
