"""The Ray ingest engine against the local one on the same files, same machine, fresh stores.

1. local: ``Ingestor`` with default settings (one conversion process, the encoder in-process)
   into a fresh data directory.
2. Ray: ``connect(num_cpus=2)`` (a local Ray, timed on its own: the startup overhead), then
   ``RayIngestor`` with the same settings into another fresh data directory (Ray Data reads,
   conversion tasks, one encoder actor, this process commits).
3. identity: same documents, chunk ids and texts in both stores; the largest vector deviation
   and the smallest cosine between the two vectors of each chunk id.

The headline is ray/local run time (target <= 1.3x); with startup is reported beside it.

    .venv/bin/python bench/ray_ingest.py [--limit N] [--out bench/results/ray_ingest.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.embed import load_embedder  # noqa: E402
from ingest.index import VectorIndex  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402
from ingest.ray_engine import RayIngestor, connect, import_ray  # noqa: E402
from ingest.settings import ChunkSettings, EmbedSettings, IndexSettings, IngestSettings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def store(root: Path, embedder: Any) -> VectorIndex:
    return VectorIndex.open(root, IndexSettings(), embed_model=embedder.name, dim=embedder.dim)


def contents(index: VectorIndex) -> tuple[dict[str, Any], dict[int, np.ndarray]]:
    docs, vectors = {}, {}
    for d in index.documents():
        hits = index.chunks(d.doc_id)
        docs[d.source] = (d.doc_id, d.title, d.n_chunks, [(h.chunk_id, h.text) for h in hits])
        ids = [h.chunk_id for h in hits]
        vectors.update(zip(ids, index.vectors(ids), strict=True))
    return docs, vectors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA / "bench")
    ap.add_argument("--limit", type=int, help="only the first N files (sorted)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ray_ingest.json")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ray-ingest-bench-"))
    try:
        files = sorted(p for p in args.data.rglob("*") if p.is_file())
        if args.limit:
            files = files[: args.limit]
        embed = EmbedSettings()
        embedder = load_embedder(embed)
        settings = IngestSettings()

        local_index = store(work / "local" / "index", embedder)
        started = time.perf_counter()
        local = Ingestor(local_index, embedder, ChunkSettings(), settings).run(files)
        local_s = time.perf_counter() - started

        started = time.perf_counter()
        assert connect(num_cpus=2)
        startup_s = time.perf_counter() - started
        try:
            ray_index = store(work / "ray" / "index", embedder)
            started = time.perf_counter()
            ray = RayIngestor(ray_index, embedder, ChunkSettings(), settings, embed).run(files)
            ray_s = time.perf_counter() - started
        finally:
            import_ray().shutdown()

        (local_docs, local_vecs), (ray_docs, ray_vecs) = contents(local_index), contents(ray_index)
        ids = sorted(local_vecs)
        same_ids = ray_vecs.keys() == local_vecs.keys()
        a = np.stack([local_vecs[i] for i in ids])
        b = np.stack([ray_vecs[i] for i in ids]) if same_ids else a * np.nan
        identity = {
            "same_documents_chunk_ids_texts": ray_docs == local_docs,
            "max_abs_vector_diff": float(np.abs(a - b).max()),
            "min_cosine": float((a * b).sum(axis=1).min()),
        }
        local_index.close()
        ray_index.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = [
        ("local", local_s, local.chunks, 0.0),
        ("ray (2 local CPUs)", ray_s, ray.chunks, startup_s),
    ]
    print(f"{len(files)} files from {args.data}, {os.cpu_count()} CPUs")
    print(f"{'engine':<20} {'seconds':>8} {'chunks':>7} {'chunks/s':>9} {'startup s':>10}")
    for name, secs, chunks, start in rows:
        print(f"{name:<20} {secs:>8.1f} {chunks:>7} {chunks / secs:>9.1f} {start:>10.1f}")
    ratio, with_start = ray_s / local_s, (ray_s + startup_s) / local_s
    print(f"ray/local: {ratio:.2f}x (with Ray's startup: {with_start:.2f}x; target <= 1.3x)")
    print(f"identity: {identity}")
    result = {
        "data": str(args.data),
        "files": len(files),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "local": {"seconds": round(local_s, 2), "chunks": local.chunks, **_counts(local)},
        "ray": {
            "seconds": round(ray_s, 2),
            "startup_seconds": round(startup_s, 2),
            "chunks": ray.chunks,
            **_counts(ray),
        },
        "ratio_ray_over_local": round(ratio, 3),
        "ratio_with_startup": round(with_start, 3),
        "identity": identity,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def _counts(summary: Any) -> dict[str, int]:
    return {k: getattr(summary, k) for k in ("added", "quarantined", "skipped")}


if __name__ == "__main__":
    main()
