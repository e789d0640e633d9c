"""Retrieval hit rate@k and MRR on ../shared/data/qa/dev.jsonl, swept over chunking settings.

The corpus the questions are about is indexed together with ../shared/data/bench as distractors
(3.7 MB of Node.js docs and a heavy HTML page). Documents are converted once; each configuration
re-chunks and re-embeds them and searches exactly (inner product over normalized vectors, what the
flat FAISS index computes). A hit is a top-k chunk that contains one of the question's ``evidence``
strings after whitespace normalization.

    .venv/bin/python bench/retrieval.py                        # the default sweep
    .venv/bin/python bench/retrieval.py --sizes 128 192 --overlaps 0 32 --backends onnx-int8 onnx
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.chunk import chunk_document  # noqa: E402
from ingest.context import contextual_text  # noqa: E402
from ingest.convert import convert_file  # noqa: E402
from ingest.embed import load_embedder  # noqa: E402
from ingest.scan import scan  # noqa: E402
from ingest.settings import EmbedSettings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def norm(s: str) -> str:
    return " ".join(s.split())


def load_questions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def score(texts: list[str], vectors: np.ndarray, qvecs: np.ndarray, questions: list[dict], k: int):
    sims = qvecs @ vectors.T
    hits, rr, misses = 0, 0.0, []
    for i, q in enumerate(questions):
        top = np.argsort(-sims[i])[: max(k, 10)]
        evidence = [norm(e) for e in q["evidence"]]
        rank = next(
            (r for r, j in enumerate(top, 1) if any(e in norm(texts[j]) for e in evidence)), None
        )
        if rank is not None and rank <= k:
            hits += 1
        else:
            misses.append(q["id"])
        if rank is not None:
            rr += 1.0 / rank
    return hits / len(questions), rr / len(questions), misses


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 192, 254])
    ap.add_argument("--overlaps", type=int, nargs="+", default=[0, 32])
    ap.add_argument("--heading-context", choices=["on", "off", "both"], default="both")
    ap.add_argument("--backends", nargs="+", default=["onnx-int8"])
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--no-distractors", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "retrieval.json")
    args = ap.parse_args()

    roots = [DATA / "corpus"] + ([] if args.no_distractors else [DATA / "bench"])
    entries, _ = scan(roots)
    t = time.perf_counter()
    docs = [convert_file(e.path) for e in entries]
    print(f"converted {len(docs)} documents in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    questions = load_questions(DATA / "qa" / "dev.jsonl")
    contexts = {"on": [True], "off": [False], "both": [True, False]}[args.heading_context]

    rows = []
    for backend in args.backends:
        embedder = load_embedder(EmbedSettings(backend=backend))
        qvecs = embedder.encode([q["question"] for q in questions])
        for size, overlap, ctx in itertools.product(args.sizes, args.overlaps, contexts):
            t = time.perf_counter()
            chunks = [
                c
                for d in docs
                for c in chunk_document(d, embedder.tokenizer, size=size, overlap=overlap)
            ]
            mode = "heading" if ctx else "none"
            vectors = embedder.encode([contextual_text(mode, None, c) for c in chunks])
            seconds = time.perf_counter() - t
            hit, mrr, misses = score([c.text for c in chunks], vectors, qvecs, questions, args.k)
            row = {
                "backend": backend,
                "size": size,
                "overlap": overlap,
                "heading_context": ctx,
                "chunks": len(chunks),
                "tokens": sum(c.n_tokens for c in chunks),
                f"hit@{args.k}": round(hit, 3),
                "mrr": round(mrr, 3),
                "seconds": round(seconds, 1),
                "misses": misses,
            }
            rows.append(row)
            print(
                f"{backend:10s} size {size:3d} overlap {overlap:2d} headings {'on ' if ctx else 'off'}"
                f"  chunks {len(chunks):5d}  hit@{args.k} {hit:.3f}  mrr {mrr:.3f}  {seconds:6.1f} s"
                f"  misses {' '.join(misses)}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"k": args.k, "questions": len(questions), "rows": rows}, indent=2)
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
