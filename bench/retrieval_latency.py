"""Retrieval latency at ~40k chunks, context windows included: the issue 10 target is p50 <= 15 ms.

The index is bench/retrieval_quality.py's (the question documents with the Node.js and Gemma
distractors, ~25.6k chunks) plus the SciFact corpus (5,183 abstracts) ingested beside it, which
brings it to ~40k chunks of real text. Each question of qa/dev.jsonl and qa2 (all 81, the
unanswerable ones too) is asked ``--repeats`` times through the serving path
(``service.rag.retrieve_serving`` + ``ingest.windows.build_windows``, default settings except the
mode), and each stage is timed apart: encoding the question, searching (FAISS, BM25, fusion, the
``min_score`` floor, reading the rows) and building the windows. The first pass warms the caches
and is not counted. One process, the encoder's threads as configured (default: one per core).

    .venv/bin/python bench/retrieval_latency.py [--home /tmp/ragtune-40k] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retrieval_quality import DATA, DATASETS, SOURCES, build_index  # noqa: E402

from bench.results_file import write_results  # noqa: E402
from eval.dataset import load_dataset  # noqa: E402
from ingest import search  # noqa: E402
from ingest.windows import build_windows  # noqa: E402
from service.settings import RagSettings  # noqa: E402

SCIFACT = DATA / "scifact" / "corpus.jsonl"
MODES = ("dense", "bm25", "hybrid")


class _Timed:
    """The embedder with the time of its last ``encode`` kept apart from the search's."""

    def __init__(self, inner: object) -> None:
        self.inner, self.seconds = inner, 0.0

    def encode(self, texts: list[str]) -> np.ndarray:
        t = time.perf_counter()
        out = self.inner.encode(texts)  # type: ignore[attr-defined]
        self.seconds += time.perf_counter() - t
        return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path("/tmp/ragtune-40k"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "retrieval_latency.json"
    )
    args = ap.parse_args()
    settings, embedder, index = build_index(args.home, [*SOURCES, SCIFACT])
    questions = [c.question for path in DATASETS for c in load_dataset(path)]
    chunks = index.stats()["chunks"]
    print(f"{chunks} chunks; {len(questions)} questions x {args.repeats} (+1 warm-up pass)")
    print(f"{'mode':<7} {'total p50':>9} {'p95':>7} {'encode':>7} {'search':>7} {'windows':>7}  ms")
    rows = []
    for mode in MODES:
        serving = RagSettings(retrieval=settings.rag.retrieval.model_copy(update={"mode": mode}))
        options = serving.retrieval
        stage: dict[str, list[float]] = {"total": [], "encode": [], "search": [], "windows": []}
        for rep in range(args.repeats + 1):
            for q in questions:
                timed = _Timed(embedder)
                t0 = time.perf_counter()
                hits = search.retrieve(
                    timed, index, q, options.k, options, min_score=options.min_score
                )
                t1 = time.perf_counter()
                build_windows(hits, index, options.window_tokens)
                t2 = time.perf_counter()
                if rep == 0:
                    continue
                stage["total"].append((t2 - t0) * 1000)
                stage["encode"].append(timed.seconds * 1000)
                stage["search"].append((t1 - t0 - timed.seconds) * 1000)
                stage["windows"].append((t2 - t1) * 1000)
        row = {
            "mode": mode,
            "p50_ms": round(statistics.median(stage["total"]), 2),
            "p95_ms": round(pct(stage["total"], 95), 2),
            **{
                f"{s}_p50_ms": round(statistics.median(stage[s]), 2)
                for s in ("encode", "search", "windows")
            },
        }
        rows.append(row)
        print(
            f"{mode:<7} {row['p50_ms']:>9.2f} {row['p95_ms']:>7.2f} {row['encode_p50_ms']:>7.2f} "
            f"{row['search_p50_ms']:>7.2f} {row['windows_p50_ms']:>7.2f}"
        )
    body = {
        "chunks": chunks,
        "documents": len(index.documents()),
        "questions": len(questions),
        "repeats": args.repeats,
        "window_tokens": settings.rag.retrieval.window_tokens,
        "k": settings.rag.retrieval.k,
        "target_p50_ms": 15,
        "rows": rows,
    }
    index.close()
    write_results(args.out, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
