"""Dense, BM25 and hybrid retrieval over one index, with metadata filters and optional MMR.

Fusion is deliberately simple and measured (bench/beir.py): reciprocal-rank fusion needs no
score calibration, and a min-max blend of the two score lists is offered beside it. Both take
``dense_weight`` (BM25 gets ``1 - dense_weight``). ``min_score`` always means cosine similarity
to the question, whatever the mode ranks by, so the "don't know" threshold keeps one meaning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ingest.index import Hit, IndexReader, Ranked, VectorIndex
from ingest.settings import IndexSettings, RetrievalSettings

if TYPE_CHECKING:
    from ingest.embed import Embedder

__all__ = [
    "Filters",
    "blend",
    "check_filters",
    "matches",
    "mmr",
    "open_index",
    "retrieve",
    "rrf",
    "with_overrides",
]

Filters = Mapping[str, str | Sequence[str]]
FILTER_KEYS = ("source", "doc_id", "kind")
OVERFETCH = 8  # filtered searches fetch this many times the depth before filtering
DEEPEN = 4  # grouped by document: how much deeper each new search goes while documents lack


class _Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class StoreConfig(Protocol):
    """Where the store lives and how it is built (``service.settings.Settings`` has both)."""

    @property
    def index_dir(self) -> Path: ...

    index: IndexSettings


def open_index(
    cfg: StoreConfig, embedder: Embedder | None, identity: tuple[str, int] | None = None
) -> VectorIndex:
    """The configured store; ``identity`` (model, dim) stands in for an encoder not loaded."""
    if identity is None:
        if embedder is None:
            raise ValueError("open_index needs an embedder or the store's recorded identity")
        identity = (embedder.name, embedder.dim)
    model, dim = identity
    return VectorIndex.open(cfg.index_dir, cfg.index, embed_model=model, dim=dim)


# --- fusion math ---------------------------------------------------------------------------


def rrf(rankings: Sequence[Sequence[int]], weights: Sequence[float], k0: int) -> dict[int, float]:
    """Reciprocal-rank fusion: sum over rankings of weight / (k0 + rank), ranks from 1."""
    fused: dict[int, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + w / (k0 + rank)
    return fused


def _minmax(scores: Sequence[float]) -> list[float]:
    lo, hi = min(scores), max(scores)
    if hi == lo:
        return [1.0] * len(scores)
    return [(s - lo) / (hi - lo) for s in scores]


def blend(
    scored: Sequence[Sequence[tuple[int, float]]], weights: Sequence[float]
) -> dict[int, float]:
    """Weighted sum of min-max normalized scores; an item missing from a list scores 0 there."""
    fused: dict[int, float] = {}
    for items, w in zip(scored, weights, strict=True):
        if not items:
            continue
        for (item, _), norm in zip(items, _minmax([s for _, s in items]), strict=True):
            fused[item] = fused.get(item, 0.0) + w * norm
    return fused


def mmr(
    query: np.ndarray, vectors: np.ndarray, relevance: Sequence[float], k: int, lam: float
) -> list[int]:
    """Maximal marginal relevance: positions of ``k`` rows trading relevance for novelty.

    ``relevance`` is normalized to 0..1 so the trade-off means the same in every mode; novelty is
    one minus the highest cosine to anything already picked.
    """
    n = len(relevance)
    if n == 0 or k <= 0:
        return []
    rel = np.asarray(_minmax(list(relevance)), np.float32)
    sims = vectors @ vectors.T
    picked: list[int] = []
    redundancy = np.zeros(n, np.float32)
    available = np.ones(n, bool)
    for _ in range(min(k, n)):
        gain = lam * rel - (1 - lam) * redundancy
        gain[~available] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, sims[best])
    return picked


def with_overrides(base: RetrievalSettings, **overrides: object) -> RetrievalSettings:
    """``base`` with the non-None ``overrides`` (a request's or a flag's), validated."""
    update = {k: v for k, v in overrides.items() if v is not None}
    return RetrievalSettings.model_validate({**base.model_dump(), **update}) if update else base


# --- filters -------------------------------------------------------------------------------


def check_filters(filters: Filters | None) -> None:
    unknown = sorted(set(filters or {}) - set(FILTER_KEYS))
    if unknown:
        raise ValueError(f"unknown filter {', '.join(unknown)} (use {', '.join(FILTER_KEYS)})")


def matches(hit: Hit, filters: Filters, index: IndexReader) -> bool:
    """Whether ``hit`` passes every filter: source (path or folder prefix), doc_id, kind."""
    for key, wanted in filters.items():
        values = [wanted] if isinstance(wanted, str) else list(wanted)
        if key == "source":
            ok = any(hit.source == v or hit.source.startswith(v.rstrip("/") + "/") for v in values)
        elif key == "doc_id":
            ok = hit.doc_id in values
        else:
            record = index.document(hit.source)
            ok = record is not None and record.kind in values
        if not ok:
            return False
    return True


# --- retrieval -----------------------------------------------------------------------------


def retrieve(
    embedder: _Encoder,
    index: IndexReader,
    query: str,
    k: int,
    options: RetrievalSettings,
    *,
    filters: Filters | None = None,
    min_score: float | None = None,
) -> list[Hit]:
    """Best-first chunks for ``query`` in ``options.mode``; scores are that mode's ranking score.

    Works on chunk ids until the end: only the chunks that are returned (or, with filters or
    grouping by document, the candidates being filtered or grouped) are read from SQLite. Grouped
    by document, each document's best chunk stands for it, and the search deepens until ``k``
    documents are found or nothing more matches.
    """
    check_filters(filters)
    by_document = options.group_by == "document"
    deep = options.mode != "dense" or options.mmr or by_document
    depth = max(options.candidates, k) if deep else k
    need_vector = options.mode != "bm25" or min_score is not None or options.mmr
    qvec = embedder.encode([query]) if need_vector else None
    while True:
        found = _candidates(index, qvec, query, depth, options, filters)
        ids, scores = found.ranked
        rows = found.rows
        if qvec is not None and min_score is not None and ids:
            need = len(ids) if options.mmr or by_document else k
            ids, scores = _floor(index, qvec[0], (ids, scores), found.dense, min_score, need, k)
        if not by_document:
            break
        rows = rows or {h.chunk_id: h for h in index.hits(ids, scores)}
        ids, scores = _best_per_document((ids, scores), rows)
        if len(ids) >= k or found.exhausted:
            break
        depth *= DEEPEN
    if not ids:
        return []
    if options.mmr and qvec is not None:
        vecs = index.vectors(ids)
        ok = ~np.isnan(vecs).any(axis=1)
        ids, scores = _keep(
            (ids, scores), {i for i, good in zip(ids, ok.tolist(), strict=True) if good}
        )
        order = mmr(qvec[0], vecs[ok], scores, k, options.mmr_lambda)
        ids, scores = [ids[j] for j in order], [scores[j] for j in order]
    ids, scores = ids[:k], scores[:k]
    if rows:
        return [replace(rows[i], score=sc) for i, sc in zip(ids, scores, strict=True) if i in rows]
    return index.hits(ids, scores)


@dataclass
class _Found:
    """One search's fused ranking, with what the later steps need from it."""

    ranked: Ranked
    dense: Ranked  # the dense side's own ranking (cosines), empty in bm25 mode
    rows: dict[int, Hit]  # candidates already read (with filters), by chunk id
    exhausted: bool  # every side returned fewer than asked: searching deeper finds nothing new


def _candidates(
    index: IndexReader,
    qvec: np.ndarray | None,
    query: str,
    depth: int,
    options: RetrievalSettings,
    filters: Filters | None,
) -> _Found:
    fetch = depth * OVERFETCH if filters else depth
    lists: list[Ranked] = []
    if options.mode != "bm25":
        assert qvec is not None
        lists.append(index.search_ids(qvec, fetch)[0])
    if options.mode != "dense":
        lists.append(index.search_lexical_ids([query], fetch)[0])
    exhausted = all(len(ids) < fetch for ids, _ in lists)
    rows: dict[int, Hit] = {}
    if filters:
        for ids, scores in lists:
            rows.update((h.chunk_id, h) for h in index.hits(ids, scores))
        allowed = {i for i, h in rows.items() if matches(h, filters, index)}
        lists = [_keep(ranked, allowed) for ranked in lists]
    lists = [(ids[:depth], scores[:depth]) for ids, scores in lists]
    ranked = _fuse(lists[0], lists[1], options) if options.mode == "hybrid" else lists[0]
    dense = lists[0] if options.mode != "bm25" else ([], [])
    return _Found(ranked, dense, rows, exhausted)


def _floor(
    index: IndexReader,
    qvec: np.ndarray,
    ranked: Ranked,
    dense: Ranked,
    min_score: float,
    need: int,
    k: int,
) -> Ranked:
    """``ranked`` without chunks under ``min_score`` cosine, checked best first in slices.

    Only the first ``need`` survivors matter, so checking stops once they are found.
    """
    ids, scores = ranked
    keep: set[int] = set()
    for start in range(0, len(ids), 4 * k):
        part = ids[start : start + 4 * k]
        cosines = _cosines(index, qvec, part, dense)
        keep |= {i for i, c in zip(part, cosines.tolist(), strict=True) if c >= min_score}
        if len(keep) >= need:
            ids, scores = ids[: start + len(part)], scores[: start + len(part)]
            break
    return _keep((ids, scores), keep)


def _best_per_document(ranked: Ranked, rows: Mapping[int, Hit]) -> Ranked:
    """The first (best) chunk of each document, in rank order; ids without a row are dropped."""
    seen: set[str] = set()
    out: list[tuple[int, float]] = []
    for i, sc in zip(*ranked, strict=True):
        hit = rows.get(i)
        if hit is not None and hit.doc_id not in seen:
            seen.add(hit.doc_id)
            out.append((i, sc))
    return [i for i, _ in out], [sc for _, sc in out]


def _keep(ranked: Ranked, allowed: set[int]) -> Ranked:
    ids, scores = ranked
    pairs = [(i, sc) for i, sc in zip(ids, scores, strict=True) if i in allowed]
    return [i for i, _ in pairs], [sc for _, sc in pairs]


def _fuse(dense: Ranked, lexical: Ranked, options: RetrievalSettings) -> Ranked:
    weights = (options.dense_weight, 1.0 - options.dense_weight)
    if options.fusion == "rrf":
        fused = rrf([dense[0], lexical[0]], weights, options.rrf_k)
    else:
        fused = blend([list(zip(*dense, strict=True)), list(zip(*lexical, strict=True))], weights)
    order = sorted(fused, key=lambda i: (-fused[i], i))
    return order, [fused[i] for i in order]


def _cosines(index: IndexReader, qvec: np.ndarray, ids: list[int], dense: Ranked) -> np.ndarray:
    """Cosine of each id to the query: from the dense search where it ranked, else its vector."""
    known = dict(zip(*dense, strict=True))
    missing = [i for i in ids if i not in known]
    if missing:
        vecs = index.vectors(missing)
        for i, v in zip(missing, vecs @ qvec, strict=True):
            known[i] = float(v) if np.isfinite(v) else -1.0
    return np.array([known[i] for i in ids], np.float32)
