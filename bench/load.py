"""What a restart costs: open time and resident memory of a large store, memory-mapped or read.

Builds a store of ``--n`` synthetic unit vectors (with short texts, so BM25 has content) through
the real Writer commit path, then opens it in fresh child processes with ``mmap`` on and off and
reports open time, RSS growth, and one query's latency. Memory-mapped files live in the shared
page cache: a restart neither reads the index into the heap nor holds a second copy while
verifying it (checksums are streamed), and several processes serving the same version share it.

    .venv/bin/python bench/load.py [--n 300000] [--kind flat|auto]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.index import DocumentRecord, VectorIndex  # noqa: E402
from ingest.model import Chunk  # noqa: E402
from ingest.settings import IndexSettings  # noqa: E402
from ingest.writer import Writer  # noqa: E402

DIM = 384
PER_DOC = 1000
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "omicron",
    "sigma",
]

CHILD = """
import json, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[4])
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
from ingest.index import VectorIndex
from ingest.settings import IndexSettings
before = rss()
t = time.perf_counter()
idx = VectorIndex.open(Path(sys.argv[1]), IndexSettings(kind=sys.argv[5], mmap=sys.argv[3] == "1"),
                       embed_model="bench", dim=int(sys.argv[2]))
opened = time.perf_counter() - t
after_open = rss()
q = np.random.default_rng(1).standard_normal((1, int(sys.argv[2]))).astype("float32")
t = time.perf_counter()
idx.search(q / np.linalg.norm(q), 10)
first = time.perf_counter() - t
print(json.dumps({"open_s": opened, "rss_open_mb": (after_open - before) / 2**20,
                  "first_query_ms": first * 1000, "rss_after_query_mb": (rss() - before) / 2**20,
                  "stats": idx.stats()}))
"""


def build(root: Path, n: int, kind: str) -> float:
    idx = VectorIndex.open(root, IndexSettings(kind=kind), embed_model="bench", dim=DIM)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    with Writer.acquire(idx, timeout=5) as w:
        for d in range(0, n, PER_DOC):
            m = min(PER_DOC, n - d)
            v = rng.standard_normal((m, DIM)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            text = [" ".join(rng.choice(WORDS, 8)) for _ in range(m)]
            chunks = [Chunk(i, 0, 1, text[i], None, (), 8) for i in range(m)]
            doc = DocumentRecord(f"d{d}", f"/bench/d{d}.md", "h", 1, 1, "markdown", None)
            w.put(doc, chunks, v)
        w.commit()
    idx.close()
    return time.perf_counter() - t


def child(root: Path, mmap: bool, kind: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(DIM), "1" if mmap else "0", str(ROOT), kind],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--kind", default="flat", choices=("flat", "auto"))
    ap.add_argument("--home", type=Path, default=Path("/tmp/ragtune-load"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load.json")
    args = ap.parse_args()
    root = args.home / f"{args.kind}-{args.n}"
    build_s = None
    if not (root / "docstore.sqlite").exists():
        build_s = build(root, args.n, args.kind)
    files = sum(p.stat().st_size for p in (root / "versions").rglob("*") if p.is_file())
    rows = {}
    print(f"{args.n} vectors ({args.kind}), version files {files / 2**20:.0f} MB on disk")
    print(f"{'load':<10} {'open s':>7} {'RSS MB':>7} {'1st query ms':>13} {'RSS after':>10}")
    for mmap in (False, True):
        r = child(root, mmap, args.kind)
        name = "mmap" if mmap else "read"
        rows[name] = {k: round(v, 3) for k, v in r.items() if k != "stats"}
        rows[name]["structure"] = r["stats"]["structure"]
        print(
            f"{name:<10} {r['open_s']:>7.2f} {r['rss_open_mb']:>7.0f} "
            f"{r['first_query_ms']:>13.1f} {r['rss_after_query_mb']:>10.0f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "n": args.n,
                "kind": args.kind,
                "dim": DIM,
                "files_mb": round(files / 2**20, 1),
                "build_s": build_s,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
