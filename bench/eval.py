"""Evaluation-loop cost: seconds per configuration per question, and what the cache saves.

On ../shared/data/qa/dev.jsonl with the embedded model (Gemma 3 270M via llama.cpp), against
../shared/data/corpus ingested into a fresh data directory:

1. a cold sweep of 2 templates x 3 temperatures x 2 top-k x 2 retrieval-k (24 configurations);
2. the same sweep rerun unchanged into the same folder (everything is already there: resume);
3. the sweep with one more temperature, into a new folder: only the new configurations generate,
   everything else comes from the cache.

It prints a table and writes JSON (and leaves the runs' report.html next to it).

    .venv/bin/python bench/eval.py [--quick] [--out bench/results/eval.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.dataset import load_dataset  # noqa: E402
from eval.report import write_report  # noqa: E402
from eval.run import run_sweep  # noqa: E402
from eval.sweep import parse_sweep  # noqa: E402
from ingest.embed import load_embedder  # noqa: E402
from ingest.index import VectorIndex  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402
from ingest.settings import ChunkSettings, IngestSettings  # noqa: E402
from service.settings import Settings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def axes(temperatures: list[float]) -> dict[str, list]:
    return {
        "rag.template": ["grounded-qa@1", "grounded-qa@2"],
        "rag.sampling.temperature": temperatures,
        "rag.sampling.top_k": [20, 40],
        "rag.retrieval.k": [3, 5],
        "rag.sampling.max_tokens": [48],
    }


def timed_run(settings: Settings, cases, temperatures: list[float], out: Path) -> dict:
    sweep = parse_sweep({"axes": axes(temperatures), "seed": 7}, settings.rag)
    t = time.perf_counter()
    result = run_sweep(settings, cases, sweep.configs, out, dataset="dev.jsonl")
    seconds = time.perf_counter() - t
    write_report(result.results, out)
    cache = result.results["run"]["cache"]
    pairs = len(sweep.configs) * len(cases)
    return {
        "configs": len(sweep.configs),
        "questions": len(cases),
        "seconds": seconds,
        "seconds_per_config_question": seconds / pairs,
        "computed_rows": result.computed,
        "resumed_rows": result.resumed,
        "cache": cache,
        "winner": result.results.get("winner"),
        "report": str(out / "report.html"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 questions")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "eval.json")
    ap.add_argument("--keep", type=Path, help="keep the data directory and runs here")
    args = ap.parse_args()
    cases = load_dataset(DATA / "qa" / "dev.jsonl")[: 5 if args.quick else None]
    with tempfile.TemporaryDirectory() as tmp:
        home = args.keep or Path(tmp)
        settings = Settings(home=home)
        embedder = load_embedder(settings.embed)
        index = VectorIndex.open(
            settings.index_dir, settings.index, embed_model=embedder.name, dim=embedder.dim
        )
        Ingestor(index, embedder, ChunkSettings(), IngestSettings()).run([DATA / "corpus"])
        index.close()
        runs = home / "eval" / "runs"
        cold = timed_run(settings, cases, [0.0, 0.4, 0.8], runs / "cold")
        resumed = timed_run(settings, cases, [0.0, 0.4, 0.8], runs / "cold")
        added = timed_run(settings, cases, [0.0, 0.4, 0.8, 1.2], runs / "added")
        results = {"cold": cold, "rerun (resume)": resumed, "one more temperature": added}

    print(f"\n{len(cases)} questions; 2 templates x temperatures x 2 top-k x 2 retrieval-k")
    print(
        f"{'run':22s} {'configs':>7s} {'seconds':>8s} {'s/config/q':>10s} {'computed':>8s} "
        f"{'gen hits':>8s} {'gen misses':>10s}"
    )
    for name, r in results.items():
        c = r["cache"]
        print(
            f"{name:22s} {r['configs']:7d} {r['seconds']:8.1f} {r['seconds_per_config_question']:10.3f} "
            f"{r['computed_rows']:8d} {c.get('generation_hits', 0):8d} {c.get('generation_misses', 0):10d}"
        )
    cold_s = cold["seconds_per_config_question"]
    speedup = {
        "rerun": cold["seconds"] / max(resumed["seconds"], 1e-9),
        "one more temperature (per config x question)": cold_s
        / max(added["seconds_per_config_question"], 1e-9),
    }
    for name, v in speedup.items():
        print(f"speedup, {name}: {v:.1f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": results, "speedup": speedup}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
