"""Contextual chunks for less: the title and section path encoded once per section, not per chunk.

``chunk.context = "title+heading"`` prefixes every chunk with its document's title and section
path before encoding, which is what lifted held-out hit@5 (bench/context.py), and also what cost
ingest its lead over LangChain (2.74x -> 2.03x in bench/ingest.py, issue 10's floor is 2.5x): the
encoder reads the prefix again for every chunk of a section. This measures the alternative of
encoding the prefix once per distinct section and adding its vector to the chunk's own:
``normalize(v(text) + w * v(prefix))``. BM25 keeps reading the prefixed text (free).

On the bench index (bench/retrieval_quality.py's: dev's and qa2's documents with the Node.js
distractors, built with title+heading prefixes), for the answerable questions of qa/dev.jsonl and
qa2: hit@5 and MRR@10, dense and hybrid (serving RRF), for the prefixed vectors the index holds,
the text alone, and the sum at several weights, each against the prefixed vectors by a paired
bootstrap over both sets; and the encoder seconds each way of building the vectors costs.

    .venv/bin/python bench/context_vector.py [--home /tmp/rq-final] [--weights 0.25 0.5 0.75 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from context import SETS, answerable, norm  # noqa: E402  (bench/ is sys.path[0])

from bench.results_file import write_results  # noqa: E402
from eval.stats import paired_bootstrap  # noqa: E402
from ingest.context import contextual_text  # noqa: E402
from ingest.embed import load_embedder  # noqa: E402
from ingest.model import Chunk  # noqa: E402
from ingest.search import open_index, rrf  # noqa: E402
from service.settings import Settings  # noqa: E402

K, DEPTH = 5, 100


def rank_of(texts: list[str], evidence: list[str]) -> int | None:
    return next((r for r, t in enumerate(texts, 1) if any(e in norm(t) for e in evidence)), None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path("/tmp/rq-final"))
    ap.add_argument("--weights", nargs="+", type=float, default=[0.25, 0.5, 0.75, 1.0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "context_vector.json")
    args = ap.parse_args()
    settings = Settings(home=args.home)
    embedder = load_embedder(settings.embed)
    index = open_index(settings, embedder)

    def count(text: str) -> int:  # as the pipeline counts the prefix (ingest/pipeline.py)
        return len(embedder.tokenizer.encode(text, add_special_tokens=False).ids)

    ids: list[int] = []
    texts: list[str] = []
    full: list[str] = []
    prefixes: list[str] = []
    for doc in index.documents():
        for h in index.chunks(doc.doc_id):
            chunk = Chunk(0, h.start, h.end, h.text, h.page, h.heading, h.n_tokens)
            f = contextual_text("title+heading", doc.title, chunk, count)
            ids.append(h.chunk_id)
            texts.append(h.text)
            full.append(f)
            prefixes.append(f[: len(f) - len(h.text)].rstrip("\n"))
    unique = sorted(set(prefixes) - {""})
    print(f"{len(ids)} chunks, {len(unique)} distinct prefixes")
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    v_full = embedder.encode(full)
    seconds["prefixed chunks"] = time.perf_counter() - t
    t = time.perf_counter()
    v_text = embedder.encode(texts)
    seconds["chunk text"] = time.perf_counter() - t
    t = time.perf_counter()
    v_unique = embedder.encode(unique) if unique else np.zeros((0, v_text.shape[1]))
    seconds["distinct prefixes"] = time.perf_counter() - t
    where = {p: i for i, p in enumerate(unique)}
    v_prefix = np.stack(
        [v_unique[where[p]] if p else np.zeros(v_text.shape[1], np.float32) for p in prefixes]
    )
    stored = index.vectors(ids)
    agree = float(np.mean(np.sum(stored * v_full, axis=1)))
    print(f"cosine of re-encoded prefixed chunks to the index's vectors: {agree:.4f}")

    def unit(m: np.ndarray) -> np.ndarray:
        return m / np.linalg.norm(m, axis=1, keepdims=True).clip(1e-12)

    variants: dict[str, np.ndarray] = {"prefixed (default)": stored, "text only": unit(v_text)}
    for w in args.weights:
        variants[f"text + {w:g} x prefix"] = unit(v_text + w * v_prefix)
    questions = {name: answerable(qa) for name, (qa, _) in SETS.items()}
    options = settings.rag.retrieval
    text_of = dict(zip(ids, texts, strict=True))
    ids_arr = np.asarray(ids)
    rows: list[dict[str, Any]] = []
    per_q: dict[tuple[str, str], list[int]] = {}
    print(
        f"{'vectors':<22} {'search':<7}"
        + "".join(f" {s + ' hit@5':>10} {'MRR':>6}" for s in SETS)
        + f" {'hit@5 vs prefixed [95% CI]':>28}"
    )
    for name, vecs in variants.items():
        for search in ("dense", "hybrid"):
            row: dict[str, Any] = {"vectors": name, "search": search}
            hits_all: list[int] = []
            for set_name, qs in questions.items():
                qv = embedder.encode([q["question"] for q in qs])
                lexical = index.search_lexical_ids([q["question"] for q in qs], DEPTH)
                hits, rr = [], 0.0
                for q, v, lex in zip(qs, qv, lexical, strict=True):
                    sims = vecs @ v
                    top = np.argsort(-sims)[:DEPTH]
                    dense = [int(i) for i in ids_arr[top]]
                    if search == "hybrid":
                        w = (options.dense_weight, 1.0 - options.dense_weight)
                        fused = rrf([dense, lex[0]], w, options.rrf_k)
                        ranked = sorted(fused, key=lambda i: (-fused[i], i))
                    else:
                        ranked = dense
                    rank = rank_of(
                        [text_of[i] for i in ranked[:10]], [norm(e) for e in q["evidence"]]
                    )
                    hits.append(int(rank is not None and rank <= K))
                    rr += 1 / rank if rank else 0.0
                row[set_name] = {
                    "hit@5": round(sum(hits) / len(hits), 3),
                    "mrr@10": round(rr / len(qs), 3),
                }
                hits_all += hits
            per_q[name, search] = hits_all
            base = per_q["prefixed (default)", search]
            c = paired_bootstrap(hits_all, base)
            row["vs_prefixed"] = f"{c.diff:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
            rows.append(row)
            cells = "".join(f" {row[s]['hit@5']:>10.3f} {row[s]['mrr@10']:>6.3f}" for s in SETS)
            print(f"{name:<22} {search:<7}{cells} {row['vs_prefixed']:>28}", flush=True)
    cost = {k: round(v, 1) for k, v in seconds.items()}
    summed = seconds["chunk text"] + seconds["distinct prefixes"]
    print(
        f"encoder seconds: prefixed {cost['prefixed chunks']} s; text {cost['chunk text']} s + "
        f"distinct prefixes {cost['distinct prefixes']} s = {summed:.1f} s "
        f"({summed / seconds['prefixed chunks']:.2f}x)"
    )
    index.close()
    out = {
        "index": str(args.home),
        "chunks": len(ids),
        "distinct_prefixes": len(unique),
        "reencoded_cosine": round(agree, 4),
        "encoder_seconds": cost,
        "sum_vs_prefixed_cost": round(summed / seconds["prefixed chunks"], 3),
        "rows": rows,
    }
    write_results(args.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
