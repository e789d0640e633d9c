"""The eval cache: retrieval results and model outputs keyed by their inputs, in SQLite.

A rerun, or a sweep that grows by one axis value, pays only for what changed. Generations are
keyed by the exact prompt and every sampling parameter including the seed; with a fixed seed our
backends are deterministic even at temperature > 0, so serving a cached answer is what a fresh
call would have returned. The latency and token counts stored are the original, uncached
measurements, so reports of a cached rerun still show what the model costs.

The cache plugs into ``service.rag`` from outside: ``CachedIndex`` is an ``IndexReader`` for one
question and ``CachingLLM`` stands in for the model, so ``plan_answer`` and ``generate`` run
unchanged. Searches are cached as ranked chunk ids; rows are always read from the store.
``RowStore`` is the other half of "pay only for what changed": a run's finished rows, so a killed
run resumes without even looking up the cache for what it already scored.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from eval.dataset import Case
from eval.sweep import Config
from ingest.embed import Embedder
from ingest.index import DocumentRecord, Hit, IndexReader, QuarantineRecord, Ranked
from service.llm.base import LLM, Completion, Delta, Prompt, SamplingParams

_SCHEMA = """
CREATE TABLE IF NOT EXISTS retrieval (
    index_version INTEGER NOT NULL, question TEXT NOT NULL, k INTEGER NOT NULL,
    min_score REAL NOT NULL, hits TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (index_version, question, k, min_score));
CREATE TABLE IF NOT EXISTS generation (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, seed INTEGER, answer TEXT NOT NULL,
    finish_reason TEXT NOT NULL, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, latency_s REAL NOT NULL, created REAL NOT NULL);
"""


@dataclass
class CacheStats:
    """Hits and misses since the cache was opened (one run)."""

    retrieval_hits: int = 0
    retrieval_misses: int = 0
    generation_hits: int = 0
    generation_misses: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def generation_key(model: str, prompt: Prompt, params: SamplingParams) -> str:
    """sha256 over everything that decides a generation: model, rendered prompt, sampling."""
    blob = json.dumps(
        {
            "model": model,
            "text": prompt.text,
            "messages": [dict(m) for m in prompt.messages] if prompt.messages else None,
            "params": asdict(params),
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class EvalCache:
    """``HOME/eval/cache.sqlite``: one connection, committed after every write (crash-safe).

    The eval answers questions from several threads at once: one lock serializes the
    connection and the counters (SQLite work is microseconds beside a generation).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.stats = CacheStats()
        self._turns = Turns()  # one search per key at a time (see retrieval)

    def get_retrieval(
        self, index_version: int, question: str, k: int, min_score: float
    ) -> Ranked | None:
        """The cached (chunk ids, scores) of one search, best first; None if never run."""
        with self._lock:
            row = self._db.execute(
                "SELECT hits FROM retrieval WHERE index_version=? AND question=? AND k=? "
                "AND min_score=?",
                (index_version, question, k, min_score),
            ).fetchone()
            if row is None:
                self.stats.retrieval_misses += 1
                return None
            self.stats.retrieval_hits += 1
        stored = json.loads(row[0])
        if isinstance(stored, list):  # written before ids were cached: whole rows, in order
            return [h["chunk_id"] for h in stored], [h["score"] for h in stored]
        return list(stored["ids"]), list(stored["scores"])

    def retrieval(
        self, index_version: int, question: str, k: int, min_score: float, run: Callable[[], Ranked]
    ) -> Ranked:
        """The cached search, else ``run()``'s, stored. Two threads asking the same search at
        once (a question under two configurations, in question order) run it once: the second
        waits and hits the cache, as it would one after the other."""
        args = (index_version, question, k, min_score)
        with self._turns.of(args):
            ranked = self.get_retrieval(*args)
            if ranked is None:
                ranked = run()
                self.put_retrieval(*args, ranked)
        return ranked

    def put_retrieval(
        self, index_version: int, question: str, k: int, min_score: float, ranked: Ranked
    ) -> None:
        ids, scores = ranked
        blob = json.dumps({"ids": list(ids), "scores": list(scores)})
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO retrieval VALUES (?, ?, ?, ?, ?, ?)",
                (index_version, question, k, min_score, blob, time.time()),
            )

    def get_generation(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT answer, finish_reason, prompt_tokens, completion_tokens, latency_s "
                "FROM generation WHERE key=?",
                (key,),
            ).fetchone()
            if row is None:
                self.stats.generation_misses += 1
                return None
            self.stats.generation_hits += 1
        answer, finish, p_tok, c_tok, latency = row
        return Completion(answer, finish, p_tok, c_tok, {"latency": latency}, cached=True)

    def put_generation(
        self, key: str, model: str, seed: int | None, out: Completion, latency_s: float
    ) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO generation VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    model,
                    seed,
                    out.text,
                    out.finish_reason,
                    out.prompt_tokens,
                    out.completion_tokens,
                    latency_s,
                    time.time(),
                ),
            )

    def close(self) -> None:
        self._db.close()


NO_FLOOR = -2.0


class Turns:
    """One lock per key: the same work asked for twice at once runs once, the second caller
    waiting for the first (and then finding its result in the cache)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, threading.Lock] = {}

    def of(self, key: Hashable) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


class CachedIndex(IndexReader):
    """An ``IndexReader`` for answering one question: its searches cached, its rows read live.

    Dense and BM25 searches are cached separately by their inputs (fusion, MMR and ``min_score``
    apply afterwards), so every fusion weight reuses the same two searches. Only ranked chunk
    ids are cached; ``hits()`` reads the rows from the store, so a cached retrieval returns what
    an uncached one would (tests/eval/test_cache_contract.py holds it to that). The dense key is
    the question's text: the query vector is its embedding under the run's embedder.
    """

    def __init__(
        self,
        index: IndexReader,
        cache: EvalCache,
        question: str,
        min_score: float | None,
        tag: str = "",
    ) -> None:
        self._index, self._cache = index, cache
        # No floor is keyed below any cosine (the key column is NOT NULL).
        self._question = question
        self._min_score = NO_FLOOR if min_score is None else min_score
        self._tag = tag  # which index: re-chunked copies number their versions on their own

    @property
    def version(self) -> int:
        return self._index.version

    def search_ids(self, queries: np.ndarray, k: int) -> list[Ranked]:
        if len(queries) != 1:
            raise ValueError(f"a CachedIndex searches its one question, got {len(queries)}")
        # Dense keys keep their original form so caches written before BM25 stay valid.
        return [self._cached(self._question, k, lambda: self._index.search_ids(queries, k)[0])]

    def search_lexical_ids(self, queries: list[str], k: int) -> list[Ranked]:
        return [self._cached(f"bm25\x00{q}", k, partial(self._lexical, q, k)) for q in queries]

    def _lexical(self, query: str, k: int) -> Ranked:
        return self._index.search_lexical_ids([query], k)[0]

    def _cached(self, key: str, k: int, run: Callable[[], Ranked]) -> Ranked:
        if self._tag:
            key = f"{self._tag}\x00{key}"
        return self._cache.retrieval(self._index.version, key, k, self._min_score, run)

    # Reads go to the store: rows are never cached, so they cannot go stale.
    def hits(self, ids: list[int], scores: list[float]) -> list[Hit]:
        return self._index.hits(ids, scores)

    def vectors(self, ids: list[int]) -> np.ndarray:
        return self._index.vectors(ids)

    def document(self, source: str) -> DocumentRecord | None:
        return self._index.document(source)

    def documents(self, prefix: str = "") -> list[DocumentRecord]:
        return self._index.documents(prefix)

    def chunks(self, doc_id: str) -> list[Hit]:
        return self._index.chunks(doc_id)

    def around(self, chunk_id: int, before: int, after: int) -> list[Hit]:
        return self._index.around(chunk_id, before, after)

    def quarantined(self) -> list[QuarantineRecord]:
        return self._index.quarantined()


class MemoEmbedder:
    """The embedder with an in-memory memo: each call is encoded once per run, not per config.

    The memo is keyed by the whole call, not by text: the int8 encoder's vector for a text moves
    with the batch it is encoded in (its activations are quantized per batch; up to 0.02 per
    component), so reusing a text's vector from another call would make a verification verdict
    depend on which question happened to encode a passage first. Keyed by call, every result is
    what an unmemoized encoder returns for that call, as the service computes it, in any order
    and from any thread.
    """

    def __init__(self, embedder: Embedder) -> None:
        self._inner = embedder
        self.name, self.dim = embedder.name, embedder.dim
        self.max_tokens, self.tokenizer = embedder.max_tokens, embedder.tokenizer
        self._memo: dict[tuple[str, ...], np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        key = tuple(texts)
        if not key:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._memo.get(key)
        if vectors is None:  # two threads may both encode a call: same input, same vectors
            vectors = self._memo[key] = self._inner.encode(list(key))
        return vectors.copy()


class CachingLLM:
    """The model behind the generation cache; ``timings['latency']`` is always the uncached time."""

    def __init__(self, llm: LLM, cache: EvalCache) -> None:
        self._llm, self._cache = llm, cache
        self.name, self.style, self.context_window = llm.name, llm.style, llm.context_window
        self.parallel = llm.parallel
        self._turns = Turns()  # one generation per key at a time

    def count_tokens(self, text: str) -> int:
        return self._llm.count_tokens(text)

    def complete(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Completion:
        key = generation_key(self.name, prompt, params)
        # Two questions asking the same prompt at once: the second waits and is served the
        # first's answer from the cache, as it would be one after the other.
        with self._turns.of(key):
            return self._complete(key, prompt, params, cancel)

    def _complete(
        self, key: str, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None
    ) -> Completion:
        hit = self._cache.get_generation(key)
        if hit is not None:
            return hit
        t = time.perf_counter()
        out = self._llm.complete(prompt, params, cancel)
        latency = time.perf_counter() - t
        out.text = out.text.strip()  # what rag.generate keeps; stored the same way
        if out.finish_reason in ("stop", "length"):  # a cancelled answer is not the answer
            self._cache.put_generation(key, self.name, params.seed, out, latency)
        out.timings = {**out.timings, "latency": latency}
        return out

    def stream(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Iterator[Delta]:
        out = self.complete(prompt, params, cancel)
        yield Delta(out.text, out.finish_reason, out.prompt_tokens, out.completion_tokens)

    def ready(self) -> bool:
        return self._llm.ready()

    def close(self) -> None:
        """The wrapped model belongs to whoever built it."""


class RowStore:
    """``rows.jsonl``: one JSON row per finished (config, case); the resume point of a run.

    Rows from another model or index version, or whose question changed, are stale: dropped on
    open so they are recomputed rather than compared with fresh ones.
    """

    def __init__(self, path: Path, model: str, index_version: int, cases: Sequence[Case]) -> None:
        self.path = path
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        questions = {c.id: c.question for c in cases}
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # the half-written last line of a killed run
                    continue
                fresh = row.get("model") == model and row.get("index_version") == index_version
                if fresh and questions.get(row.get("case")) == row.get("question"):
                    self.rows[row["config"], row["case"]] = row
        self.resumed = len(self.rows)
        tmp = path.with_suffix(".tmp")  # rewrite without the stale or broken lines
        tmp.write_text("".join(json.dumps(r) + "\n" for r in self.rows.values()), "utf-8")
        tmp.replace(path)

    def done(self, config: Config, case: Case) -> bool:
        return (config.id, case.id) in self.rows

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                self.rows[row["config"], row["case"]] = row

    def of(self, config: Config, cases: Sequence[Case] | None = None) -> list[dict[str, Any]]:
        ids = [c.id for c in cases] if cases is not None else None
        if ids is None:
            return [r for (cid, _), r in self.rows.items() if cid == config.id]
        return [self.rows[config.id, i] for i in ids if (config.id, i) in self.rows]
