"""Dense vs BM25 vs hybrid retrieval on a BEIR dataset (SciFact), through the real pipeline.

The corpus.jsonl is ingested by ``ragtune``'s own Ingestor (chunked, embedded, BM25-indexed, with
the ``_id`` kept as the document id); queries go through ``ingest.search.retrieve``, the function
the API and ``ragtune search`` use. Chunks are ranked, then documents by their best chunk (BEIR
judges documents). nDCG@10 and MRR@10 come from the ranking a served query gets (fusion over
``candidates`` hits per side), recall@100 from a deeper pass, all against the qrels. Latency is
one ``retrieve(k=10)`` call per query including its embedding, single-threaded.

Tune on the training split only: the defaults in ``RetrievalSettings`` were chosen from this
script's train output; the test split is kept apart on purpose.

    .venv/bin/python bench/beir.py --data ../shared/data/scifact --split train
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.stats import paired_bootstrap  # noqa: E402
from ingest.embed import Embedder, load_embedder  # noqa: E402
from ingest.index import VectorIndex  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402
from ingest.search import retrieve  # noqa: E402
from ingest.settings import (  # noqa: E402
    ChunkSettings,
    EmbedSettings,
    IndexSettings,
    IngestSettings,
    RetrievalSettings,
)

DOC_DEPTH = 100  # documents ranked per query (recall@100)
CHUNK_DEPTH = 400  # chunks fetched to fill DOC_DEPTH documents


def load_split(data: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    qrels: dict[str, dict[str, int]] = {}
    for line in (data / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
        qid, did, rel = line.split("\t")
        if int(rel) > 0:
            qrels.setdefault(qid, {})[did] = int(rel)
    queries = {}
    for line in (data / f"queries-{split}.jsonl").read_text().splitlines():
        q = json.loads(line)
        if q["_id"] in qrels:
            queries[q["_id"]] = q["text"]
    return queries, qrels


def ndcg_at(ranked: Sequence[str], rels: dict[str, int], k: int) -> float:
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rels.values(), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: Sequence[str], rels: dict[str, int], k: int) -> float:
    return len(set(ranked[:k]) & set(rels)) / len(rels)


def mrr_at(ranked: Sequence[str], rels: dict[str, int], k: int) -> float:
    return next((1.0 / (i + 1) for i, d in enumerate(ranked[:k]) if d in rels), 0.0)


class Memo:
    """Precomputed query vectors, so the quality pass embeds each query once for every mode."""

    def __init__(self, embedder: Embedder, texts: list[str]) -> None:
        self._vecs = dict(zip(texts, embedder.encode(texts), strict=True))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vecs[t] for t in texts])


def doc_ranking(hits: list, depth: int) -> list[str]:
    return list(dict.fromkeys(h.doc_id for h in hits))[:depth]


def ingest(
    data: Path, home: Path, embedder: Embedder, chunk: ChunkSettings
) -> tuple[VectorIndex, dict]:
    index = VectorIndex.open(
        home / "index", IndexSettings(), embed_model=embedder.name, dim=embedder.dim
    )
    ingest_settings = IngestSettings(workers=1, commit_every=100_000, commit_interval_s=3600)
    t = time.perf_counter()
    summary = Ingestor(index, embedder, chunk, ingest_settings).run([data / "corpus.jsonl"])
    stats = index.stats()
    info = {
        "seconds": round(time.perf_counter() - t, 1),
        "added": summary.added,
        "unchanged": summary.unchanged,
        "documents": stats["documents"],
        "chunks": stats["chunks"],
        "chunk_size": chunk.size,
    }
    return index, info


def configs(weights: list[float]) -> list[tuple[str, RetrievalSettings]]:
    out = [("dense", RetrievalSettings(mode="dense")), ("bm25", RetrievalSettings(mode="bm25"))]
    for fusion in ("rrf", "blend"):
        for w in weights:
            opts = RetrievalSettings(mode="hybrid", fusion=fusion, dense_weight=w)
            out.append((f"hybrid {fusion} w={w:g}", opts))
    return out


def evaluate(
    index: VectorIndex,
    encoder: Memo,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    opts: RetrievalSettings,
) -> tuple[dict[str, float], list[float]]:
    # The top 10 is ranked exactly as a served query ranks it (fusion over `candidates` hits per
    # side: a blend's normalization depends on that depth); recall@100 needs a deeper pass.
    deep = opts.model_copy(update={"candidates": CHUNK_DEPTH})
    scores: dict[str, list[float]] = {"ndcg@10": [], "recall@100": [], "mrr@10": []}
    for qid, text in queries.items():
        top = doc_ranking(retrieve(encoder, index, text, opts.candidates, opts), 10)
        ranked = doc_ranking(retrieve(encoder, index, text, CHUNK_DEPTH, deep), DOC_DEPTH)
        scores["ndcg@10"].append(ndcg_at(top, qrels[qid], 10))
        scores["recall@100"].append(recall_at(ranked, qrels[qid], DOC_DEPTH))
        scores["mrr@10"].append(mrr_at(top, qrels[qid], 10))
    return {k: round(float(np.mean(v)), 4) for k, v in scores.items()}, scores["ndcg@10"]


def latency(
    index: VectorIndex, embedder: Embedder, texts: list[str], opts: RetrievalSettings
) -> dict[str, float]:
    times = []
    for text in texts:
        t = time.perf_counter()
        retrieve(embedder, index, text, 10, opts)
        times.append((time.perf_counter() - t) * 1000)
    return {
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p95_ms": round(float(np.percentile(times, 95)), 2),
    }


def compare_pairs(rows: list[dict], best: str, per_query: dict[str, list[float]]) -> list[dict]:
    """Paired bootstrap over queries (as ``eval run`` does): which differences are beyond noise."""
    hybrid = [r for r in rows if r["mode"] == "hybrid"]
    best_of = {
        f: max((r for r in hybrid if r["fusion"] == f), key=lambda r: r["ndcg@10"])["config"]
        for f in ("rrf", "blend")
    }
    default = RetrievalSettings()
    default_name = f"hybrid {default.fusion} w={default.dense_weight:g}"
    pairs = [(best, "dense"), (best, "bm25"), (best_of["blend"], best_of["rrf"])]
    if default_name in per_query and default_name != best:
        pairs += [(default_name, "dense"), (default_name, "bm25")]
    out = []
    for a, b in pairs:
        c = paired_bootstrap(per_query[a], per_query[b])
        significant = c.better or c.worse
        out.append(
            {
                "a": a,
                "b": b,
                "diff": round(c.diff, 4),
                "ci95": [round(c.ci_low, 4), round(c.ci_high, 4)],
                "significant": significant,
            }
        )
        verdict = "beyond noise" if significant else "within noise"
        print(f"{a} vs {b}: nDCG@10 {c.diff:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}] {verdict}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    ap.add_argument("--split", default="train")
    ap.add_argument(
        "--home", type=Path, default=Path("/tmp/ragtune-beir"), help="index location (reused)"
    )
    ap.add_argument("--chunk-size", type=int, default=ChunkSettings().size)
    ap.add_argument(
        "--backend",
        default=EmbedSettings().backend,
        choices=("onnx-int8", "onnx", "torch"),
        help="encoder backend (int8 is the default; the others check it keeps quality)",
    )
    ap.add_argument("--weights", default="0.3,0.4,0.5,0.6,0.7", help="hybrid dense weights")
    ap.add_argument("--latency-queries", type=int, default=300)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "beir.json")
    args = ap.parse_args()

    embedder = load_embedder(EmbedSettings(backend=args.backend))
    chunk = ChunkSettings(size=args.chunk_size)
    suffix = "" if args.backend == EmbedSettings().backend else f"-{args.backend}"
    home = args.home / f"chunk{args.chunk_size}{suffix}"
    index, ingest_info = ingest(args.data, home, embedder, chunk)
    queries, qrels = load_split(args.data, args.split)
    encoder = Memo(embedder, list(queries.values()))
    weights = [float(w) for w in args.weights.split(",")]
    lat_texts = list(queries.values())[: args.latency_queries]

    rows = []
    per_query: dict[str, list[float]] = {}
    print(
        f"{args.data.name} {args.split}: {len(queries)} queries, {ingest_info['documents']} "
        f"documents, {ingest_info['chunks']} chunks of <= {args.chunk_size} tokens "
        f"(ingest {ingest_info['seconds']} s); {os.cpu_count()} cores"
    )
    print(f"{'config':<22} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7} {'p50 ms':>7} {'p95 ms':>7}")
    for name, opts in configs(weights):
        quality, per_query[name] = evaluate(index, encoder, queries, qrels, opts)
        lat = latency(index, embedder, lat_texts, opts)
        row = {
            "config": name,
            **opts.model_dump(include={"mode", "fusion", "dense_weight"}),
            **quality,
            **lat,
        }
        rows.append(row)
        print(
            f"{name:<22} {quality['ndcg@10']:>8.4f} {quality['recall@100']:>7.4f} "
            f"{quality['mrr@10']:>7.4f} {lat['p50_ms']:>7.2f} {lat['p95_ms']:>7.2f}",
            flush=True,
        )
    index.close()

    best = max((r for r in rows if r["mode"] == "hybrid"), key=lambda r: r["ndcg@10"])
    parts = {r["mode"]: r["ndcg@10"] for r in rows if r["mode"] != "hybrid"}
    margin = round(best["ndcg@10"] - max(parts.values()), 4)
    print(
        f"best hybrid: {best['config']} nDCG@10 {best['ndcg@10']:.4f}, "
        f"+{margin:.4f} over the better part ({max(parts, key=parts.__getitem__)})"
    )
    comparisons = compare_pairs(rows, best["config"], per_query)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "dataset": args.data.name,
                "split": args.split,
                "queries": len(queries),
                "ingest": ingest_info,
                "doc_depth": DOC_DEPTH,
                "chunk_depth": CHUNK_DEPTH,
                "cpu_count": os.cpu_count(),
                "backend": args.backend,
                "rows": rows,
                "best_hybrid": best["config"],
                "margin_over_best_part": margin,
                "comparisons": comparisons,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
