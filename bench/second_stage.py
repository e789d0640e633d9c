"""Cheap second stages over the hybrid top candidates: which reordering beats first-stage hybrid?

Issue 10 asks for second stages over the top 50-100 since no cross-encoder ships in a package
here: field-weighted BM25 (title and heading), rescoring hits by their window, document-level
aggregation, and query likelihood with the embedded LLM if it is fast enough. Each reorders the
serving retrieval's candidates (hybrid RRF, default settings, ``--depth`` deep) by reciprocal-rank
fusion of the first-stage rank with the stage's own ranking, and is scored by hit@5 and MRR@5 on
qa/dev.jsonl and the answerable qa2 questions (the same hit test as ``ragtune eval retrieval``),
with a paired bootstrap over both sets together against the first stage. What is fused:

- ``field``: BM25 over each chunk's document title and heading path alone (bm25s, the serving
  tokenizer's settings), as a third list beside the first-stage rank.
- ``window``: the chunk's own cosine plus ``lam`` times the best cosine of its neighbours
  (the chunks its context window is built from), from the stored vectors: no encoding.
- ``window mean``: the cosine of the mean vector of the chunk and its neighbours.
- ``document``: a document's summed RRF weight over the candidates, given to each of its chunks.
- ``llm``: log p(question | passage) under the embedded Gemma, over the top ``--llm-top``
  candidates only (``--llm``; slow: it evaluates one prompt per candidate).

The index is bench/retrieval_quality.py's (the question documents plus the Node.js and Gemma
distractors), built or brought up to date under ``--home``.

    .venv/bin/python bench/second_stage.py [--home /tmp/ragtune-quality] [--depth 100] [--llm]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_file import write_results  # noqa: E402
from bench.retrieval_quality import DATASETS, build_index  # noqa: E402
from eval.dataset import Case, load_dataset  # noqa: E402
from eval.retrieval import dataset_label, is_answerable  # noqa: E402
from eval.stats import paired_bootstrap  # noqa: E402
from eval.strings import has_evidence  # noqa: E402
from ingest.index import IndexReader  # noqa: E402
from ingest.search import retrieve  # noqa: E402
from ingest.settings import RetrievalSettings  # noqa: E402

K = 5
RRF_K = 60


@dataclass
class Candidates:
    """One question's first-stage candidates and the features the stages rank them by."""

    case: Case
    ids: list[int]
    docs: list[str]
    ok: list[bool]  # holds the evidence
    own: np.ndarray  # cosine to the question
    nb_max: np.ndarray  # best cosine among the chunk's neighbours
    win_mean: np.ndarray  # cosine of the mean vector of chunk + neighbours
    field: np.ndarray = field(default_factory=lambda: np.zeros(0))
    llm: np.ndarray | None = None


def _ranks(score: np.ndarray) -> np.ndarray:
    order = np.argsort(-score, kind="stable")
    ranks = np.empty(len(order), int)
    ranks[order] = np.arange(len(order))
    return ranks


def fuse(*ranks: np.ndarray, weights: Sequence[float] | None = None) -> list[int]:
    """Positions ordered by reciprocal-rank fusion of 0-based rank arrays (ties: first stage)."""
    weights = weights or [1.0] * len(ranks)
    total = sum(w / (RRF_K + 1 + r) for r, w in zip(ranks, weights, strict=True))
    return list(np.argsort(-np.asarray(total), kind="stable"))


def _doc_weight(c: Candidates) -> np.ndarray:
    per_doc: dict[str, float] = {}
    for rank, doc in enumerate(c.docs):
        per_doc[doc] = per_doc.get(doc, 0.0) + 1 / (RRF_K + 1 + rank)
    return np.array([per_doc[d] for d in c.docs])


Stage = Callable[[Candidates], list[int]]


def stages(with_llm: bool) -> dict[str, Stage]:
    first = lambda c: np.arange(len(c.ids))  # noqa: E731
    out: dict[str, Stage] = {"first stage (hybrid rrf)": lambda c: list(range(len(c.ids)))}
    for w in (0.25, 0.5):
        out[f"field bm25 w{w}"] = lambda c, w=w: fuse(first(c), _ranks(c.field), weights=[1, w])
    for lam in (0.2, 0.35, 0.5):
        out[f"window lam{lam}"] = lambda c, lam=lam: fuse(first(c), _ranks(c.own + lam * c.nb_max))
    out["window mean"] = lambda c: fuse(first(c), _ranks(c.win_mean))
    for w in (0.5, 1.0):
        out[f"document w{w}"] = lambda c, w=w: fuse(
            first(c), _ranks(_doc_weight(c)), weights=[1, w]
        )
    if with_llm:
        out["llm likelihood"] = lambda c: _llm_order(c)
    return out


def _llm_order(c: Candidates) -> list[int]:
    assert c.llm is not None
    top = len(c.llm)
    head = fuse(np.arange(top), _ranks(c.llm))
    return head + list(range(top, len(c.ids)))


def collect(
    index: IndexReader, embedder: object, cases: list[Case], depth: int
) -> list[Candidates]:
    out = []
    for case in cases:
        q = embedder.encode([case.question])[0]  # type: ignore[attr-defined]
        hits = retrieve(embedder, index, case.question, depth, RetrievalSettings())  # type: ignore[arg-type]
        ids = [h.chunk_id for h in hits]
        own = index.vectors(ids) @ q if ids else np.zeros(0)
        nb_max, win_mean = [], []
        for h in hits:
            rows = index.around(h.chunk_id, 1, 1)
            vecs = index.vectors([r.chunk_id for r in rows])
            cos = vecs @ q
            nb = [
                float(x)
                for r, x in zip(rows, cos, strict=True)
                if r.chunk_id != h.chunk_id and np.isfinite(x)
            ]
            nb_max.append(max(nb, default=0.0))
            mean = np.nanmean(vecs, axis=0)
            win_mean.append(float(mean @ q / (np.linalg.norm(mean) + 1e-9)))
        out.append(
            Candidates(
                case,
                ids,
                [h.doc_id for h in hits],
                [has_evidence(h.text, case.evidence) for h in hits],
                own,
                np.array(nb_max),
                np.array(win_mean),
            )
        )
    return out


class FieldBM25:
    """BM25 over every chunk's title + heading path: the "field" a field-weighted BM25 boosts."""

    def __init__(self, index: IndexReader) -> None:
        texts, self.row = [], {}
        for doc in index.documents():
            for h in index.chunks(doc.doc_id):
                self.row[h.chunk_id] = len(texts)
                texts.append(f"{doc.title or ''} {' '.join(h.heading)}")
        self.tok = bm25s.tokenization.Tokenizer(stemmer=Stemmer.Stemmer("english"), stopwords="en")
        self.bm25 = bm25s.BM25(k1=1.2, b=0.75)
        self.bm25.index(
            self.tok.tokenize(texts, return_as="tuple", show_progress=False), show_progress=False
        )

    def scores(self, question: str, ids: list[int]) -> np.ndarray:
        q = self.tok.tokenize([question], update_vocab=False, return_as="ids", show_progress=False)[
            0
        ]
        if not q:
            return np.zeros(len(ids))
        all_scores = self.bm25.get_scores(q)
        return np.array([all_scores[self.row[i]] for i in ids])


def llm_likelihood(cands: list[Candidates], index: IndexReader, top: int, threads: int) -> float:
    """Fill ``c.llm`` with log p(question | passage) for the top candidates; seconds per candidate."""
    from llama_cpp import Llama

    from service.llm.presets import BASE_PRESET, model_file, preset

    llm = Llama(
        str(model_file(preset(BASE_PRESET))),
        n_ctx=512,
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=True,
        verbose=False,
    )
    n, t0 = 0, time.perf_counter()
    for c in cands:
        scores = []
        for hit in index.hits(c.ids[:top], [0.0] * min(top, len(c.ids))):
            ctx = llm.tokenize(f"Passage: {hit.text}\nA question this passage answers:".encode())
            qtok = llm.tokenize(f" {c.case.question}".encode(), add_bos=False)
            llm.reset()
            llm.eval(ctx + qtok)
            logits = np.asarray(llm.scores[len(ctx) - 1 : len(ctx) + len(qtok) - 1], np.float64)
            logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
            scores.append(float(logp[np.arange(len(qtok)), qtok].mean()))
            n += 1
        c.llm = np.array(scores)
    return (time.perf_counter() - t0) / max(n, 1)


def score(cands: list[Candidates], stage: Stage) -> tuple[np.ndarray, np.ndarray]:
    hits, rr = [], []
    for c in cands:
        ok = [c.ok[j] for j in stage(c)][:K]
        first = next((j for j, o in enumerate(ok) if o), None)
        hits.append(float(first is not None))
        rr.append(0.0 if first is None else 1 / (first + 1))
    return np.array(hits), np.array(rr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path("/tmp/ragtune-quality"))
    ap.add_argument("--depth", type=int, default=100, help="first-stage candidates reordered")
    ap.add_argument("--llm", action="store_true", help="also measure LLM query likelihood")
    ap.add_argument("--llm-top", type=int, default=20, help="candidates the LLM scores")
    ap.add_argument(
        "--llm-cases", type=int, default=0, help="time the LLM on this many questions only (0: all)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "second_stage.json")
    args = ap.parse_args()
    _, embedder, index = build_index(args.home)
    sets = {}
    t0 = time.perf_counter()
    for path in DATASETS:
        cases = [c for c in load_dataset(path) if is_answerable(c)]
        sets[dataset_label(path)] = collect(index, embedder, cases, args.depth)
    per_query_ms = (time.perf_counter() - t0) / sum(map(len, sets.values())) * 1000
    fields = FieldBM25(index)
    for cands in sets.values():
        for c in cands:
            c.field = fields.scores(c.case.question, c.ids)
    llm_s = None
    if args.llm:
        every = [c for cs in sets.values() for c in cs]
        llm_s = llm_likelihood(every[: args.llm_cases or None], index, args.llm_top, args.threads)
        if args.llm_cases:  # a timing run: the quality rows would mix scored and unscored cases
            args.llm = False
    labels = list(sets)
    base = {
        name: score(cands, stages(False)["first stage (hybrid rrf)"])
        for name, cands in sets.items()
    }
    rows = []
    head = "  ".join(f"{lab + ' hit@5':>16} {'MRR':>5}" for lab in labels)
    print(f"{'stage':<26} {head}  combined hit@5 diff [95% CI]")
    for name, stage in stages(args.llm).items():
        got = {lab: score(cands, stage) for lab, cands in sets.items()}
        cmp = paired_bootstrap(
            np.concatenate([got[lab][0] for lab in labels]),
            np.concatenate([base[lab][0] for lab in labels]),
        )
        cells = "  ".join(
            f"{got[lab][0].mean():>16.3f} {got[lab][1].mean():>5.3f}" for lab in labels
        )
        verdict = "better" if cmp.better else "worse" if cmp.worse else "within noise"
        print(
            f"{name:<26} {cells}  {cmp.diff:+.3f} [{cmp.ci_low:+.3f}, {cmp.ci_high:+.3f}] {verdict}"
        )
        rows.append(
            {
                "stage": name,
                **{f"{lab} hit@5": round(float(got[lab][0].mean()), 4) for lab in labels},
                **{f"{lab} mrr@5": round(float(got[lab][1].mean()), 4) for lab in labels},
                "combined": cmp.as_dict(),
                "verdict": verdict,
            }
        )
    print(f"features per question (retrieve {args.depth} + neighbours): {per_query_ms:.1f} ms")
    if llm_s is not None:
        print(f"llm likelihood: {llm_s * 1000:.0f} ms per candidate at {args.threads} threads")
    body = {
        "index": {"version": index.version, "chunks": index.stats()["chunks"]},
        "depth": args.depth,
        "k": K,
        "features_ms_per_question": round(per_query_ms, 1),
        "llm": None
        if llm_s is None
        else {"top": args.llm_top, "threads": args.threads, "s_per_candidate": round(llm_s, 4)},
        "rows": rows,
    }
    index.close()
    write_results(args.out, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
