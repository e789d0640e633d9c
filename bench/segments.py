"""Segment-based versions at scale: commit time against collection size, search against segments.

Issue 15's targets, measured with the real ``Writer`` on synthetic collections (the clustered
384-d vectors of bench/scale.py, fitted on SciFact; chunk texts of 40 Zipf-distributed words from
a 30k-word vocabulary, so BM25 has realistic posting lists), default index settings (``auto``:
exact below 100k vectors, IVF above):

1. Commit time: one commit of 1,000 new chunks (acquire the lock, put, commit) into collections of
   20k and 1M chunks, median of ``--repeats``. Baseline: the same driver run against the
   single-file format of git revision ``--baseline`` (checked out in a temporary worktree), whose
   commit rewrote the whole FAISS file and rebuilt BM25. Targets: under 1 s at 1M, and within 2x
   of the same commit at 20k.
2. Search p50 at 1M with 8 unmerged segments (8 commits of 125k) against one merged segment (after
   ``compact``), single queries, k=10: dense (recall@10 against exact search beside it) and BM25.
   Target: 8 segments within 1.5x of one.

Each store is built and measured in a fresh subprocess (``DRIVER``), the same code for both
formats, so the baseline runs the old code exactly as it was. ``--compare REV`` runs the search
test against git revision REV's code too (say, the one before segments shared a quantizer), in
the same run on the same data, and ``--search-only`` skips the commit test (its rows stay as the
last full run wrote them). Run it alone (about 20 minutes on two cores, 30 GB of /tmp at 1M):

    .venv/bin/python bench/segments.py [--sizes 20000 1000000] [--baseline da7332c] [--quick]
        [--search-only] [--compare bbe0471]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scale import clustered  # noqa: E402
from bench.serve import write_result  # noqa: E402

DIM = 384
DOC_CHUNKS = 1000
VOCAB = 30_000
WORDS_PER_CHUNK = 40

# Run as ``python -c DRIVER job args...`` with PYTHONPATH at the code under test; prints JSON.
DRIVER = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from ingest.index import DocumentRecord, VectorIndex
from ingest.model import Chunk
from ingest.settings import IndexSettings
from ingest.writer import Writer

job, root, data = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
xb = np.load(data / "xb.npy", mmap_mode="r")
words = (data / "words.txt").read_text().split("\n")
lengths = np.load(data / "offsets.npy", mmap_mode="r")
tokens = np.load(data / "tokens.npy", mmap_mode="r")


def text(i):
    return " ".join(words[t] for t in tokens[lengths[i] : lengths[i + 1]])


def doc(name, start, n):
    record = DocumentRecord(doc_id=name, source=name, content_hash="h", size=n, mtime_ns=1,
                            kind="text", title=name)
    chunks = [Chunk(ordinal=j, start=j, end=j + 1, text=text(start + j), page=None, heading=(),
                    n_tokens=40) for j in range(n)]
    return record, chunks, np.asarray(xb[start : start + n], np.float32)


def open_index():
    return VectorIndex.open(root, IndexSettings(), embed_model="synthetic", dim=xb.shape[1])


out = {}
if job == "build":
    n, commits, chunk = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    idx = open_index()
    t = time.perf_counter()
    per = n // commits
    for c in range(commits):
        with Writer.acquire(idx, 600) as w:
            for start in range(c * per, (c + 1) * per, chunk):
                w.put(*doc(f"d{start}", start, min(chunk, (c + 1) * per - start)))
            w.commit()
    out = {"seconds": time.perf_counter() - t, "ntotal": idx.stats()["ntotal"]}
elif job == "commit":
    start, repeats = int(sys.argv[4]), int(sys.argv[5])
    idx = open_index()
    times = []
    for r in range(repeats):
        s = start + r * 1000
        t = time.perf_counter()
        with Writer.acquire(idx, 600) as w:
            w.put(*doc(f"new{s}", s, 1000))
            w.commit()
        times.append(time.perf_counter() - t)
    out = {"seconds": times, "ntotal": idx.stats()["ntotal"], "stats": idx.stats()}
elif job == "search":
    xq = np.load(data / "xq.npy")
    queries = (data / "queries.txt").read_text().split("\n")
    idx = open_index()
    idx.search_ids(xq[:1], 10)
    dense, found = [], []
    for q in xq:
        t = time.perf_counter()
        ids, _ = idx.search_ids(q[None, :], 10)[0]
        dense.append(time.perf_counter() - t)
        found.append(ids)
    lexical = []
    for q in queries:
        t = time.perf_counter()
        idx.search_lexical_ids([q], 10)
        lexical.append(time.perf_counter() - t)
    first = int(idx.snapshot().live_ids()[0])  # chunk ids count up from here in put order
    found = [[i - first for i in ids] for ids in found]
    out = {"dense": dense, "lexical": lexical, "found": found, "stats": idx.stats()}
elif job == "compact":
    from ingest.compact import compact
    idx = open_index()
    t = time.perf_counter()
    merges = compact(idx, lock_timeout_s=600)
    out = {"seconds": time.perf_counter() - t, "merges": merges, "stats": idx.stats()}
print(json.dumps(out))
"""


def synthetic(data: Path, n: int, n_queries: int) -> None:
    """Vectors, texts (as word ids) and queries of an ``n``-chunk collection, as files."""
    xb, xq = clustered(n, n_queries, seed=15)
    np.save(data / "xb.npy", xb.astype(np.float32))
    np.save(data / "xq.npy", xq.astype(np.float32))
    rng = np.random.default_rng(15)
    words = [f"w{i:05d}x" for i in range(VOCAB)]  # distinct stems, no stop words
    (data / "words.txt").write_text("\n".join(words))
    lengths = rng.integers(WORDS_PER_CHUNK // 2, WORDS_PER_CHUNK * 3 // 2, n)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = (rng.zipf(1.3, int(offsets[-1])) - 1) % VOCAB
    np.save(data / "offsets.npy", offsets)
    np.save(data / "tokens.npy", tokens.astype(np.int32))
    qwords = (rng.zipf(1.3, (n_queries, 4)) - 1) % VOCAB
    (data / "queries.txt").write_text("\n".join(" ".join(words[w] for w in q) for q in qwords))


def run(code: Path, job: str, root: Path, data: Path, *args: object) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": str(code),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, job, str(root), str(data), *map(str, args)],
        env=env,
        cwd=code,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(f"{job} under {code} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def worktree(path: Path, revision: str) -> None:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), revision],
        check=True,
        capture_output=True,
    )


def p50(xs: list[float]) -> float:
    return float(np.percentile(xs, 50)) * 1000


def exact_top10(data: Path) -> np.ndarray:
    xb = np.load(data / "xb.npy", mmap_mode="r")
    xq = np.load(data / "xq.npy")
    scores = np.concatenate(
        [xq @ np.asarray(xb[s : s + 100_000]).T for s in range(0, len(xb), 100_000)], axis=1
    )
    return np.argsort(-scores, axis=1)[:, :10]


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    # ``found`` holds rows of xb: chunk ids are assigned in put order (see the search job)
    return float(
        np.mean([len(set(f) & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)])
    )


def searched(result: dict[str, Any], truth: np.ndarray) -> dict[str, Any]:
    """One search job's row: the store's shape, latencies and recall."""
    return {
        "segments": result["stats"]["segments"],
        "structure": result["stats"]["structure"],
        "dense_p50_ms": p50(result["dense"]),
        "lexical_p50_ms": p50(result["lexical"]),
        "recall_at_10": recall(result["found"], truth),
    }


def search_test(
    code: Path, root: Path, data: Path, n: int, truth: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    """Issue 15's search target: ``args.segments`` unmerged segments against their merge."""
    run(code, "build", root, data, n, args.segments, DOC_CHUNKS)
    split = run(code, "search", root, data)
    merged_run = run(code, "compact", root, data)
    merged = run(code, "search", root, data)
    commit_after = run(code, "commit", root, data, n, args.repeats)
    search = {
        "chunks": n,
        "split": searched(split, truth),
        "merged": {**searched(merged, truth), "merge_s": merged_run["seconds"]},
        "commit_after_merge_p50_s": float(np.median(commit_after["seconds"])),
    }
    for kind in ("dense", "lexical"):
        search[f"{kind}_ratio"] = (
            search["split"][f"{kind}_p50_ms"] / search["merged"][f"{kind}_p50_ms"]
        )
    return search


def print_search(search: dict[str, Any], label: str) -> None:
    print(f"\nsearch at {search['chunks']:,d}, single queries, k=10{label}")
    print(f"{'':22s} {'dense p50':>10s} {'recall@10':>10s} {'BM25 p50':>9s}")
    for name in ("split", "merged"):
        r = search[name]
        row = f"{r['segments']} segment(s), {r['structure']}"
        print(
            f"{row:22s} {r['dense_p50_ms']:8.2f}ms {r['recall_at_10']:10.3f} "
            f"{r['lexical_p50_ms']:7.2f}ms"
        )
    print(
        f"ratios: dense {search['dense_ratio']:.2f}x, BM25 {search['lexical_ratio']:.2f}x "
        f"(target <= 1.5x); merging took {search['merged']['merge_s']:.1f} s; a commit after "
        f"it {search['commit_after_merge_p50_s']:.3f} s"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 1_000_000])
    ap.add_argument("--segments", type=int, default=8, help="unmerged segments for the search test")
    ap.add_argument("--repeats", type=int, default=3, help="commits timed per store")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--baseline", default="da7332c", help="git revision of the single-file format")
    ap.add_argument("--quick", action="store_true", help="sizes 2000 and 20000, 50 queries")
    ap.add_argument(
        "--search-only", action="store_true", help="only the search test; keeps --out's commits"
    )
    ap.add_argument("--compare", help="git revision whose search test runs beside this one")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "segments.json")
    args = ap.parse_args()
    sizes = [2_000, 20_000] if args.quick else args.sizes
    n_queries = 50 if args.quick else args.queries
    rows: list[dict[str, Any]] = []
    search: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ragtune-bench-segments-") as tmp:
        base = Path(tmp) / "baseline"
        worktree(base, args.baseline)
        try:
            for n in sizes:
                data = Path(tmp) / f"data-{n}"
                data.mkdir()
                synthetic(data, n + args.repeats * 1000, n_queries)
                for label, code, commits in (
                    () if args.search_only else (("single file", base, 1), ("segments", ROOT, 1))
                ):
                    root = Path(tmp) / f"{label.replace(' ', '-')}-{n}"
                    built = run(code, "build", root, data, n, commits, DOC_CHUNKS)
                    commit = run(code, "commit", root, data, n, args.repeats)
                    rows.append(
                        {
                            "format": label,
                            "chunks": n,
                            "build_s": built["seconds"],
                            "commit_s": commit["seconds"],
                            "commit_p50_s": float(np.median(commit["seconds"])),
                        }
                    )
                    print(
                        f"{label:12s} {n:>9,d} chunks: build {built['seconds']:7.1f} s, "
                        f"1,000-chunk commit p50 {rows[-1]['commit_p50_s']:.3f} s",
                        flush=True,
                    )
                    if code is base:
                        import shutil

                        shutil.rmtree(root)
                if n == max(sizes):
                    truth = exact_top10(data)
                    search = search_test(ROOT, Path(tmp) / f"split-{n}", data, n, truth, args)
                    print_search(search, "")
                    if args.compare:
                        before = Path(tmp) / "compare"
                        worktree(before, args.compare)
                        search["compared"] = {
                            "revision": args.compare,
                            **search_test(before, Path(tmp) / "split-before", data, n, truth, args),
                        }
                        print_search(search["compared"], f" (code of {args.compare})")
        finally:
            for tree in (base, Path(tmp) / "compare"):
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    check=False,
                    capture_output=True,
                )
    if args.search_only:  # the commit rows of the last full run stay as they were
        rows = json.loads(args.out.read_text())["commits"]
        sizes = sorted({r["chunks"] for r in rows})
    by = {(r["format"], r["chunks"]): r for r in rows}
    small, big = min(sizes), max(sizes)
    summary = {
        "commit_at_largest_s": by[("segments", big)]["commit_p50_s"],
        "commit_growth": by[("segments", big)]["commit_p50_s"]
        / by[("segments", small)]["commit_p50_s"],
        "baseline_commit_growth": by[("single file", big)]["commit_p50_s"]
        / by[("single file", small)]["commit_p50_s"],
        "speedup_at_largest": by[("single file", big)]["commit_p50_s"]
        / by[("segments", big)]["commit_p50_s"],
    }
    summary["meets_commit_target"] = (
        summary["commit_at_largest_s"] < 1 and summary["commit_growth"] <= 2
    )
    if search:
        summary["meets_search_target"] = max(search["dense_ratio"], search["lexical_ratio"]) <= 1.5
    print(f"\n{'format':12s} {'chunks':>9s} {'commit p50':>11s} {'build':>8s}")
    for r in rows:
        print(
            f"{r['format']:12s} {r['chunks']:>9,d} {r['commit_p50_s']:10.3f}s {r['build_s']:7.1f}s"
        )
    print(
        f"segments: commit {summary['commit_at_largest_s']:.3f} s at {big:,d}, "
        f"{summary['commit_growth']:.2f}x the {small:,d} one (target < 1 s, <= 2x); "
        f"single file grew {summary['baseline_commit_growth']:.1f}x; "
        f"{summary['speedup_at_largest']:.1f}x faster at {big:,d}"
    )
    write_result(
        args.out,
        {
            "config": {
                "sizes": sizes,
                "segments": args.segments,
                "repeats": args.repeats,
                "queries": n_queries,
                "baseline": args.baseline,
                "compare": args.compare,
                "dim": DIM,
                "words_per_chunk": WORDS_PER_CHUNK,
            },
            "summary": summary,
            "commits": rows,
            "search": search,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
