"""Which FAISS index for large collections: exact vs IVF-Flat, IVF-SQ8 and HNSW at 100k and 1M.

The store keeps L2-normalized 384-d MiniLM vectors searched by inner product. Exact search
(``IndexIDMap2(IndexFlatIP)``, what ``ingest/index.py`` builds) reads every vector per query, so its
latency grows linearly with the collection; this bench measures where that stops being acceptable
and which approximate index replaces it. Target (issue): recall@10 >= 0.95 at single-query p50
<= 5 ms on this machine at 1M vectors.

Per size, data set and index: build time (train + add; IVF k-means runs once per size on
``--train-per-list`` x nlist vectors and is counted in both IVF builds), index memory (bytes of
``faiss.serialize_index``, what a version on disk holds and about what it takes in RAM; the RSS
growth over the build is reported beside it), single-query latency p50/p95 (one query per call,
``--queries`` of them or as many as ``--single-budget-s`` allows), batched latency (``--batch``
queries per call, reported per query), recall@10 against the exact top 10, and the time to remove
100 ids. HNSW cannot remove ids (FAISS raises "remove_ids not implemented"), and the store must
delete and replace chunks when documents change, so HNSW is measured for comparison only; the
recommendation prefers an index that supports removal.

Data. Uniform random unit vectors have no structure and make every approximate index look bad;
real sentence embeddings are clustered and anisotropic. The synthetic set is a seeded mixture:
``v = normalize(a*m + wt*topic + wd*doc + wn*noise)`` where ``m`` is one shared direction (MiniLM
vectors have a common mean, norm ~0.33), 2*sqrt(N) topics, N/6 "documents" (the chunks of one
document sit together) each under one topic, and every component is a Gaussian shaped by a power-law
spectrum (i^-alpha) in a random basis, so variance concentrates in a few dozen directions as in
real embeddings. Queries are fresh draws (not base members) with more noise, ``wq``, as questions
sit further from their passages than chunks from each other. The parameters were fitted on SciFact
(27k chunks of ~45 words, 809 claims, the project's onnx-int8 MiniLM): there IVF recall@10 at
nlist 659 and nprobe 1/2/4/8/16/32 was .51/.64/.74/.81/.88/.92, the synthetic set at the same N
gives .52/.66/.75/.82/.89/.94 (query top-1 cosine .62 vs .69, top-1 minus top-10 gap .12 vs .14,
participation-ratio dimension 61 vs 81). ``--real`` embeds SciFact (~90 s) and measures it beside
a synthetic set of the same size, which re-checks that fit. The uniform case runs at
``--uniform-size`` only, labelled as the worst case.

Threads are set with faiss.omp_set_num_threads; a single query uses one thread in FAISS anyway.
Other processes on the machine add noise: the load average before and after is recorded.

    .venv/bin/python bench/scale.py                          # 100k and 1M, ~20 min on 2 cores
    .venv/bin/python bench/scale.py --sizes 20000 --queries 100 --uniform-size 0   # smoke test
    .venv/bin/python bench/scale.py --sizes 100000 --real --skip-hnsw-above 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"

DIM, K = 384, 10
TARGET_RECALL, TARGET_P50_MS = 0.95, 5.0
# Fitted against SciFact, see the module docstring.
GEN = {"alpha": 0.42, "a": 0.5, "wt": 0.6, "wd": 0.6, "wn": 0.75, "wq": 1.05, "per_doc": 6}
BLOCK = 65536  # rows drawn per step; fixed so the data does not depend on memory settings


# --- data -----------------------------------------------------------------------------------


def normalize(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, nq: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Topic/document mixture with an anisotropic spectrum and a shared mean (see docstring)."""
    g = GEN
    s_rng, b_rng, q_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    spectrum = (np.arange(DIM) + 1.0) ** -g["alpha"]
    spectrum /= np.linalg.norm(spectrum)  # a shaped Gaussian then has expected squared norm 1
    rotation, _ = np.linalg.qr(s_rng.standard_normal((DIM, DIM)))
    basis = (spectrum[:, None] * rotation).astype(np.float32)
    mean = normalize(s_rng.standard_normal((1, DIM)))[0]
    n_docs, n_topics = max(1, n // g["per_doc"]), max(1, int(2 * math.sqrt(n)))
    topics = s_rng.standard_normal((n_topics, DIM), dtype=np.float32) @ basis
    doc_topic = s_rng.integers(0, n_topics, n_docs)
    docs = s_rng.standard_normal((n_docs, DIM), dtype=np.float32) @ basis

    def draw(rng: np.random.Generator, count: int, noise: float) -> np.ndarray:
        out = np.empty((count, DIM), dtype=np.float32)
        for lo in range(0, count, BLOCK):
            hi = min(count, lo + BLOCK)
            d = rng.integers(0, n_docs, hi - lo)
            e = rng.standard_normal((hi - lo, DIM), dtype=np.float32) @ basis
            v = g["a"] * mean + g["wt"] * topics[doc_topic[d]] + g["wd"] * docs[d] + noise * e
            out[lo:hi] = normalize(v)
        return out

    return draw(b_rng, n, g["wn"]), draw(q_rng, nq, g["wq"])


def uniform(n: int, nq: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform on the sphere: no structure at all, the worst case for approximate search."""
    rng = np.random.default_rng(seed)
    xb = np.empty((n, DIM), dtype=np.float32)
    for lo in range(0, n, BLOCK):
        xb[lo : lo + BLOCK] = normalize(rng.standard_normal((min(BLOCK, n - lo), DIM)))
    return xb, normalize(rng.standard_normal((nq, DIM)))


def scifact(nq: int) -> tuple[np.ndarray, np.ndarray]:
    """SciFact abstracts (title + text) cut into 45-word windows (~64 tokens), and its claims."""
    from ingest.embed import load_embedder
    from ingest.settings import EmbedSettings

    def rows(name: str) -> Iterator[dict[str, Any]]:
        lines = (SCIFACT / name).read_text().splitlines()
        return (json.loads(line) for line in lines if line.strip())

    pieces = []
    for doc in rows("corpus.jsonl"):
        words = f"{doc['title']} {doc['text']}".split()
        pieces += [" ".join(words[i : i + 45]) for i in range(0, len(words), 45)]
    claims = [q["text"] for q in rows("queries-train.jsonl")][:nq]
    embedder = load_embedder(EmbedSettings())
    t = time.perf_counter()
    xb, xq = embedder.encode(pieces), embedder.encode(claims)
    print(f"embedded {len(pieces)} SciFact chunks in {time.perf_counter() - t:.0f} s", flush=True)
    return xb, xq


# --- indexes --------------------------------------------------------------------------------


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def nlist_for(n: int) -> int:
    """A power of two near 4*sqrt(N): 1024 at 100k, 4096 at 1M."""
    return 2 ** round(math.log2(4 * math.sqrt(n)))


def ivf_quantizer(xb: np.ndarray, nlist: int, per_list: int, seed: int) -> tuple[Any, float]:
    """Coarse k-means as ``IndexIVF.train`` runs it (10 iterations, inner-product assignment),
    on ``per_list`` x nlist vectors; FAISS alone samples up to 256 per list, i.e. all of 1M."""
    rng = np.random.default_rng(seed)
    sample = xb[np.sort(rng.choice(len(xb), min(len(xb), per_list * nlist), replace=False))]
    quantizer = faiss.IndexFlatIP(DIM)
    clustering = faiss.Clustering(DIM, nlist)
    clustering.niter, clustering.seed = 10, seed
    t = time.perf_counter()
    clustering.train(sample, quantizer)
    return quantizer, time.perf_counter() - t


def build(kind: str, xb: np.ndarray, nlist: int | None, ctx: dict[str, Any]) -> tuple[Any, float]:
    """The index of ``kind`` holding ``xb`` (ids 0..N-1) and its build time in seconds."""
    ids = np.arange(len(xb), dtype=np.int64)
    t = time.perf_counter()
    if kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))  # as ingest/index.py stores it
        index.add_with_ids(xb, ids)
    elif kind == "hnsw32":
        index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ctx["ef_construction"]
        index.add(xb)
    else:
        quantizer, kmeans_s = ctx["quantizers"][nlist]
        quantizer = faiss.clone_index(quantizer)  # the Python wrapper keeps it alive
        if kind == "ivf-flat":
            index = faiss.IndexIVFFlat(quantizer, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            sq8 = faiss.ScalarQuantizer.QT_8bit
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, DIM, nlist, sq8, faiss.METRIC_INNER_PRODUCT
            )
            index.train(xb[: nlist * ctx["per_list"]])  # the SQ ranges; coarse is trained
        index.add_with_ids(xb, ids)  # ids directly, as ingest/index.py does for IVF
        t -= kmeans_s  # the shared k-means counts in every IVF build
    return index, time.perf_counter() - t


def set_param(index: Any, kind: str, value: int | None) -> None:
    if kind.startswith("ivf"):
        index.nprobe = value
    elif kind == "hnsw32":
        index.hnsw.efSearch = value


def single(index: Any, xq: np.ndarray, budget_s: float) -> list[float]:
    """Milliseconds per one-query call; stops after ``budget_s`` once 50 queries are done."""
    for i in range(min(10, len(xq))):  # warm caches and OpenMP threads
        index.search(xq[i : i + 1], K)
    out: list[float] = []
    start = time.perf_counter()
    for i in range(len(xq)):
        t = time.perf_counter()
        index.search(xq[i : i + 1], K)
        out.append((time.perf_counter() - t) * 1000)
        if len(out) >= 50 and time.perf_counter() - start > budget_s:
            break
    return out


def batched(index: Any, xq: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Scores and ids of every query, and milliseconds per query when sent ``batch`` at a time."""
    index.search(xq[: min(8, len(xq))], K)
    scores, ids, total = [], [], 0.0
    for lo in range(0, len(xq), batch):
        t = time.perf_counter()
        s, i = index.search(xq[lo : lo + batch], K)
        total += time.perf_counter() - t
        scores.append(s)
        ids.append(i)
    return np.vstack(scores), np.vstack(ids), total * 1000 / len(xq)


def remove_cost(index: Any, n: int, seed: int) -> float | None:
    """Milliseconds to remove 100 ids, or None when the index cannot remove (HNSW)."""
    gone = np.random.default_rng(seed).choice(n, 100, replace=False).astype(np.int64)
    t = time.perf_counter()
    try:
        index.remove_ids(faiss.IDSelectorBatch(gone.size, faiss.swig_ptr(gone)))
    except RuntimeError:
        return None
    return (time.perf_counter() - t) * 1000


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth, strict=True)]))


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(xs, p))


# --- one data set ---------------------------------------------------------------------------


def measure(
    data: str, xb: np.ndarray, xq: np.ndarray, args: argparse.Namespace, emit: Callable
) -> dict[str, Any]:
    """All candidates on one data set; ``emit`` prints and collects each row."""
    n = len(xb)
    nlists = sorted({nl or nlist_for(n) for nl in args.nlist})
    ctx: dict[str, Any] = {
        "per_list": args.train_per_list,
        "ef_construction": args.ef_construction,
        "quantizers": {},
    }
    builds: list[tuple[str, int | None]] = [("flat", None)]
    builds += [(kind, nl) for nl in nlists for kind in ("ivf-flat", "ivf-sq8")]
    if n <= args.skip_hnsw_above:
        builds.append(("hnsw32", None))
    truth = None
    info: dict[str, Any] = {"data": data, "n": n, "queries": len(xq), "kmeans_s": {}}
    for kind, nlist in builds:
        if nlist is not None and nlist not in ctx["quantizers"]:
            ctx["quantizers"][nlist] = ivf_quantizer(xb, nlist, args.train_per_list, args.seed)
            info["kmeans_s"][nlist] = ctx["quantizers"][nlist][1]
        if kind == "flat":
            values: list[int | None] = [None]
        elif kind == "hnsw32":
            values = list(args.ef_search)
        else:  # beyond a quarter of the lists IVF is no cheaper than flat
            values = [p for p in args.nprobe if p <= max(1, nlist // 4)]
        rss = rss_mb()
        index, build_s = build(kind, xb, nlist, ctx)
        rss_delta = rss_mb() - rss
        t = time.perf_counter()
        index_mb = faiss.serialize_index(index).nbytes / 2**20
        serialize_s = time.perf_counter() - t
        rows = []
        for value in values:
            set_param(index, kind, value)
            lat = single(index, xq, args.single_budget_s)
            scores, ids, batch_ms = batched(index, xq, args.batch)
            if truth is None:  # flat runs first: its answers are the exact top 10
                truth = ids
                info["query_top1_cos_p50"] = float(np.median(scores[:, 0]))
                info["query_top10_cos_p50"] = float(np.median(scores[:, K - 1]))
            name = "ef" if kind == "hnsw32" else "nprobe"
            rows.append(
                {
                    "data": data,
                    "n": n,
                    "index": kind,
                    "param": None if value is None else f"{name}={value}",
                    "nlist": nlist,
                    "build_s": build_s,
                    "index_mb": index_mb,
                    "rss_delta_mb": rss_delta,
                    "serialize_s": serialize_s,
                    "single_n": len(lat),
                    "p50_ms": pct(lat, 50),
                    "p95_ms": pct(lat, 95),
                    "batch_ms_per_query": batch_ms,
                    f"recall@{K}": recall(ids, truth),
                }
            )
        removed = remove_cost(index, n, args.seed)  # last: it changes the index
        del index
        for row in rows:
            emit({**row, "remove_100_ms": removed})
    return info


# --- report ---------------------------------------------------------------------------------


def ok(row: dict[str, Any]) -> bool:
    return row[f"recall@{K}"] >= TARGET_RECALL and row["p50_ms"] <= TARGET_P50_MS


def recommend(rows: list[dict[str, Any]], sets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per data set: exact while it meets the latency target, else the fastest config meeting both
    targets among those that can remove ids (the store deletes and replaces chunks)."""
    out = []
    for s in sets:
        mine = [r for r in rows if r["data"] == s["data"] and r["n"] == s["n"]]
        flat = next(r for r in mine if r["index"] == "flat")
        approx = [r for r in mine if r["index"] != "flat" and r["remove_100_ms"] is not None]
        meets = [r for r in approx if ok(r)]
        rec: dict[str, Any] = {"data": s["data"], "n": s["n"], "flat_p50_ms": flat["p50_ms"]}
        if meets:
            rec["fastest_approx"] = pick(min(meets, key=lambda r: (r["p50_ms"], r["index_mb"])))
            rec["smallest_approx"] = pick(min(meets, key=lambda r: (r["index_mb"], r["p50_ms"])))
        if ok(flat):
            rec["choice"], rec["meets_target"] = pick(flat), True
        elif meets:
            rec["choice"], rec["meets_target"] = rec["fastest_approx"], True
        else:  # the best reached: highest recall within the latency target
            fast = [r for r in approx if r["p50_ms"] <= TARGET_P50_MS] or approx
            rec["choice"] = pick(max(fast, key=lambda r: r[f"recall@{K}"]))
            rec["meets_target"] = False
        any_kind = [r for r in mine if ok(r) and r["index"] != "flat"]
        if any_kind:  # HNSW included: what giving up removal would buy
            rec["fastest_approx_any_kind"] = pick(min(any_kind, key=lambda r: r["p50_ms"]))
        # Flat reads every vector: its latency is linear in N, so this is where it passes 5 ms.
        rec["flat_reaches_5ms_at_n"] = int(TARGET_P50_MS / (flat["p50_ms"] / s["n"]))
        out.append(rec)
    return out


def pick(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("index", "param", "nlist", "p50_ms", "p95_ms", f"recall@{K}", "index_mb", "build_s")
    return {k: r[k] for k in keys}


def describe(c: dict[str, Any]) -> str:
    name = c["index"] + (f" nlist={c['nlist']}" if c["nlist"] else "") + f" {c['param'] or ''}"
    return (
        f"{name.strip()} (recall {c[f'recall@{K}']:.3f}, p50 {c['p50_ms']:.2f} ms, "
        f"{c['index_mb']:.0f} MB, build {c['build_s']:.0f} s)"
    )


def print_row(r: dict[str, Any]) -> None:
    mark = "*" if ok(r) else " "
    print(
        f"{r['data']:9s} {r['n']:8d} {r['index']:8s} {r['nlist'] or '-':>5} {r['param'] or '-':11s}"
        f" {r['build_s']:8.1f}"
        f" {r['index_mb']:8.0f} {r['p50_ms']:8.3f} {r['p95_ms']:8.3f} {r['batch_ms_per_query']:9.3f}"
        f" {r[f'recall@{K}']:9.3f} {mark}",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated synthetic sizes")
    ap.add_argument("--queries", type=int, default=512, help="queries per data set")
    ap.add_argument("--batch", type=int, default=256, help="queries per call, batched")
    ap.add_argument(
        "--nlist",
        type=int,
        nargs="+",
        default=[0, 256],
        help="IVF lists; 0 = a power of two near 4*sqrt(N); 256 is the store's default",
    )
    ap.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256, 512])
    ap.add_argument("--ef-search", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--ef-construction", type=int, default=40)
    ap.add_argument("--skip-hnsw-above", type=int, default=10**7, help="no HNSW beyond this N")
    ap.add_argument("--train-per-list", type=int, default=64, help="k-means sample per IVF list")
    ap.add_argument("--single-budget-s", type=float, default=15.0, help="per config, >= 50 queries")
    ap.add_argument("--uniform-size", type=int, default=100000, help="worst case; 0 skips it")
    ap.add_argument("--real", action="store_true", help="also SciFact, embedded (~90 s)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    args = ap.parse_args()
    faiss.omp_set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    started, load_before = time.perf_counter(), os.getloadavg()
    print(
        f"{os.cpu_count()} cores, faiss {faiss.__version__} with {args.threads} threads, "
        f"load average {load_before[0]:.2f}; * = recall@{K} >= {TARGET_RECALL} and "
        f"p50 <= {TARGET_P50_MS} ms; index MB = serialized size"
    )
    print(
        f"{'data':9s} {'N':>8s} {'index':8s} {'nlist':>5s} {'param':11s} {'build s':>8s}"
        f" {'index MB':>8s}"
        f" {'p50 ms':>8s} {'p95 ms':>8s} {'batch ms/q':>9s} {'recall@10':>9s}"
    )
    rows: list[dict[str, Any]] = []

    def emit(row: dict[str, Any]) -> None:
        rows.append(row)
        print_row(row)

    jobs: list[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]] = []
    if args.real:
        jobs.append(("scifact", lambda: scifact(args.queries)))
    for n in sizes:
        jobs.append(("clustered", lambda n=n: clustered(n, args.queries, args.seed)))
        if n == args.uniform_size:
            jobs.append(("uniform", lambda n=n: uniform(n, args.queries, args.seed)))
    if args.uniform_size and args.uniform_size not in sizes:
        jobs.append(("uniform", lambda: uniform(args.uniform_size, args.queries, args.seed)))
    sets = []
    for data, make in jobs:
        xb, xq = make()
        sets.append(measure(data, xb, xq, args, emit))
        if data == "scifact":  # the generator at the same N, to check its fit on real data
            sets.append(measure("clustered", *clustered(len(xb), len(xq), args.seed), args, emit))
        del xb, xq
    recs = recommend(rows, sets)
    print(f"\nHNSW cannot remove ids (remove_ids raises in FAISS {faiss.__version__})")
    for r in recs:
        verdict = "" if r["meets_target"] else " -- best reached, target missed"
        print(f"{r['data']:9s} {r['n']:8d}: use {describe(r['choice'])}{verdict}")
        if "fastest_approx" in r:
            print(f"{'':19s}fastest approximate with removal: {describe(r['fastest_approx'])}")
        if "fastest_approx_any_kind" in r:
            print(
                f"{'':19s}fastest approximate of any kind: {describe(r['fastest_approx_any_kind'])}"
            )
        print(
            f"{'':19s}flat p50 {r['flat_p50_ms']:.2f} ms, linear in N: passes {TARGET_P50_MS:g} ms "
            f"near N={r['flat_reaches_5ms_at_n']:,}"
        )
    payload = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "faiss": faiss.__version__,
            "threads": args.threads,
            "load_avg_before": load_before,
            "load_avg_after": os.getloadavg(),
        },
        "params": {
            **{k: v for k, v in vars(args).items() if k != "out"},
            "k": K,
            "generator": GEN,
            "target": {"recall@10": TARGET_RECALL, "p50_ms": TARGET_P50_MS},
            "hnsw": {"M": 32},
            "memory": "index_mb: len(faiss.serialize_index); rss_delta_mb: VmRSS growth over build",
        },
        "data_sets": sets,
        "rows": rows,
        "recommendation": recs,
        "seconds": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"took {payload['seconds']:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
