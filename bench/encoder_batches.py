"""Encoder batching: batch size and how batches share the cores, on the texts ingest embeds.

Embedding is most of ingest time, so this measures the int8 ONNX encoder alone on exactly the
texts ragtune's encoder reads for ../shared/data/bench (the chunks with their title and section
prefix, and the distinct contexts: recorded from a real ``Ingestor`` run whose encoder returns
zeros), under two schedules:

- one team: each batch runs on all ``--threads`` threads in turn (the schedule before this bench);
- side by side: ``--threads`` batches run at once, one thread each (``OnnxEmbedder``'s default).

for each ``batch_tokens`` bound, ``--repeats`` times in alternating order, reporting texts/s
(median) and the ratio against the old default (one team, 16,384 tokens). It also times a
single query, which always runs on all threads, and checks that vectors stay within the int8
encoder's own spread of the fp32 graph (activation scales are per batch, so batch composition
moves them slightly).

    .venv/bin/python bench/encoder_batches.py [--threads 2] [--repeats 3] [--limit 6000]

Run it alone: it times the cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.embed import OnnxEmbedder, default_model_path, load_embedder, onnx_graph  # noqa: E402
from ingest.index import VectorIndex  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402
from ingest.settings import ChunkSettings, EmbedSettings, IndexSettings, IngestSettings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
OLD = ("one team", 16384)
SIZES = (512, 1024, 2048, 4096, 16384)


class Recorder:
    """An encoder that keeps what it is asked to embed and returns zeros (no encoder time)."""

    def __init__(self, inner) -> None:
        self.name, self.dim, self.max_tokens = inner.name, inner.dim, inner.max_tokens
        self.tokenizer = inner.tokenizer
        self.texts: list[str] = []

    def encode(self, texts):
        self.texts.extend(texts)
        return np.zeros((len(texts), self.dim), np.float32)


def ingest_texts() -> list[str]:
    recorder = Recorder(load_embedder(EmbedSettings(threads=1)))
    with tempfile.TemporaryDirectory() as tmp:
        index = VectorIndex.open(
            Path(tmp) / "index", IndexSettings(), embed_model=recorder.name, dim=recorder.dim
        )
        Ingestor(index, recorder, ChunkSettings(), IngestSettings()).run([DATA / "bench"])
        index.close()
    return recorder.texts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=6000, help="texts timed (a spread sample)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "encoder_batches.json")
    args = ap.parse_args()

    texts = ingest_texts()
    step = max(1, len(texts) // args.limit)
    sample = texts[::step][: args.limit]
    settings = EmbedSettings()
    path = default_model_path()
    graph = onnx_graph(path, settings.cache_dir, quantize=True)
    fp32 = load_embedder(EmbedSettings(backend="onnx", threads=args.threads)).encode(sample[:500])
    configs = [(mode, size) for mode in ("one team", "side by side") for size in SIZES]
    encoders = {
        c: OnnxEmbedder(
            settings.model, path, graph, args.threads, c[1], side_by_side=c[0] == "side by side"
        )
        for c in configs
    }
    times: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    cosine: dict[tuple[str, int], float] = {}
    for e in encoders.values():
        e.encode(sample[:64])  # warm-up: allocations, first-run graph work
    for r in range(args.repeats):
        for c in configs if r % 2 == 0 else configs[::-1]:
            t = time.perf_counter()
            vectors = encoders[c].encode(sample)
            times[c].append(time.perf_counter() - t)
            cosine[c] = float((vectors[:500] * fp32).sum(1).min())
    query = encoders[("side by side", 1024)]
    questions = [json.loads(line)["question"] for line in (DATA / "qa" / "dev.jsonl").open()]
    latency = []
    for _ in range(5):
        for q in questions:
            t = time.perf_counter()
            query.encode([q])
            latency.append((time.perf_counter() - t) * 1000)

    base = len(sample) / statistics.median(times[OLD])
    rows = []
    print(f"\n{len(sample):,} of {len(texts):,} ingest texts, {args.threads} threads")
    print(f"{'schedule':13s} {'batch tokens':>12s} {'texts/s':>8s} {'x old':>6s} {'min cos':>8s}")
    for c in configs:
        rate = len(sample) / statistics.median(times[c])
        rows.append(
            {
                "schedule": c[0],
                "batch_tokens": c[1],
                "texts_per_s": round(rate, 1),
                "vs_old": round(rate / base, 3),
                "min_cosine_fp32": round(cosine[c], 4),
                "seconds": [round(t, 2) for t in times[c]],
            }
        )
        print(f"{c[0]:13s} {c[1]:12d} {rate:8.1f} {rate / base:6.2f} {cosine[c]:8.4f}")
    p50 = statistics.median(latency)
    print(f"single query: p50 {p50:.2f} ms ({len(latency)} questions)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "texts": len(sample),
                "ingest_texts": len(texts),
                "threads": args.threads,
                "baseline": {"schedule": OLD[0], "batch_tokens": OLD[1]},
                "rows": rows,
                "query_ms_p50": round(p50, 2),
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
