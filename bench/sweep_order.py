"""A cold sweep in question order against the configuration-by-configuration order of before.

Issue 14's target: a cold sweep (3 temperatures x 2 top-k here, retrieval k 3 and 5, over the dev
questions) at least 2x faster than the sequential one on the same configurations, with identical
rows at temperature 0. Both runs use the embedded default (the packaged model in-process, one
generation at a time) on the same data directory, each with an empty eval cache:

- ``config``: every question under one configuration, then the next (the order before);
- ``question``: one question under every configuration, then the next. Consecutive prompts then
  share all but what the configurations change, and the in-process model keeps whole 64-token
  blocks of the previous prompt (exactly what a fresh evaluation computes, so no row changes).

Printed and written: seconds, seconds per configuration per question, the speed-up, and how many
rows are identical (answer, passages, metrics; all of them and those at temperature 0).

    .venv/bin/python bench/sweep_order.py [--questions 10] [--home DIR]

Run it alone: llama.cpp slows down ~50x when another busy process shares the cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serve import write_result  # noqa: E402
from eval.dataset import load_dataset  # noqa: E402
from eval.run import run_sweep  # noqa: E402
from eval.sweep import parse_sweep  # noqa: E402
from ingest.embed import load_embedder  # noqa: E402
from ingest.index import VectorIndex  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402
from service.settings import Settings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
AXES = {
    "rag.sampling.temperature": [0.0, 0.4, 0.8],
    "rag.retrieval.k": [3, 5],
    "rag.sampling.max_tokens": [48],
}


# Not compared: the wall-clock latency, and whether the answer came from the eval cache (two
# configurations that build the same prompt, say k 3 and 5 when only 3 passages pass the floor,
# share one generation: whichever is asked first generates it).
VOLATILE = {"latency_s", "cached"}


def rows(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """rows.jsonl by (config, case), without the ``VOLATILE`` fields."""
    lines = (out / "rows.jsonl").read_text().splitlines()
    parsed = [json.loads(line) for line in lines]
    return {
        (r["config"], r["case"]): {k: v for k, v in r.items() if k not in VOLATILE} for r in parsed
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=10, help="dev questions (21 in all)")
    ap.add_argument("--home", type=Path, help="a data directory to use (default: ingest one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sweep_order.json")
    args = ap.parse_args()
    cases = load_dataset(DATA / "qa" / "dev.jsonl")[: args.questions]
    with tempfile.TemporaryDirectory(prefix="ragtune-sweep-order-") as tmp:
        home = args.home or Path(tmp) / "home"
        settings = Settings(home=home)
        settings = settings.model_copy(
            update={"llm": settings.llm.model_copy(update={"threads": args.threads})}
        )
        if args.home is None:
            embedder = load_embedder(settings.embed)
            index = VectorIndex.open(
                settings.index_dir, settings.index, embed_model=embedder.name, dim=embedder.dim
            )
            Ingestor(index, embedder, settings.chunk, settings.ingest).run([DATA / "corpus"])
            index.close()
        sweep = parse_sweep({"axes": AXES, "seed": 7}, settings.rag)
        runs: dict[str, Any] = {}
        kept: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for order in ("config", "question"):
            for f in home.glob("eval/cache.sqlite*"):
                f.unlink()
            out = Path(tmp) / f"run-{order}"
            t = time.perf_counter()
            result = run_sweep(settings, cases, sweep.configs, out, order=order)  # type: ignore[arg-type]
            seconds = time.perf_counter() - t
            kept[order] = rows(out)
            runs[order] = {
                "seconds": seconds,
                "seconds_per_config_question": seconds / (len(sweep.configs) * len(cases)),
                "computed": result.computed,
                "model": result.results["run"]["model"],
                "backend": result.results["run"]["backend"],
            }
            print(f"  {order:<8} {seconds:7.1f} s", flush=True)
    a, b = kept["config"], kept["question"]
    same = [k for k in a if a[k] == b.get(k)]
    differing = [  # what differs in each differing row: (config order's, question order's)
        {
            "config": config,
            "case": case,
            "temperature": a[config, case]["sampling"]["temperature"],
            "fields": {
                f: [a[config, case].get(f), b.get((config, case), {}).get(f)]
                for f in dict.fromkeys([*a[config, case], *b.get((config, case), {})])
                if a[config, case].get(f) != b.get((config, case), {}).get(f)
            },
        }
        for config, case in a
        if (config, case) not in same
    ]
    at_zero = [k for k in a if a[k]["sampling"]["temperature"] == 0]
    summary = {
        "configs": len(sweep.configs),
        "questions": len(cases),
        "speedup": runs["config"]["seconds"] / runs["question"]["seconds"],
        "identical_rows": len(same),
        "rows": len(a),
        "identical_rows_at_temperature_0": sum(k in same for k in at_zero),
        "rows_at_temperature_0": len(at_zero),
        "meets_target": None,
    }
    summary["meets_target"] = summary["speedup"] >= 2 and (
        summary["identical_rows_at_temperature_0"] == summary["rows_at_temperature_0"]
    )
    print(
        f"\n{summary['configs']} configurations x {summary['questions']} questions, "
        f"{runs['question']['model']} ({runs['question']['backend']})"
    )
    print(f"{'order':<10} {'seconds':>8} {'s/config/q':>10}")
    for order, r in runs.items():
        print(f"{order:<10} {r['seconds']:8.1f} {r['seconds_per_config_question']:10.3f}")
    print(
        f"speed-up {summary['speedup']:.2f}x (target 2x); identical rows "
        f"{summary['identical_rows']}/{summary['rows']}, at temperature 0 "
        f"{summary['identical_rows_at_temperature_0']}/{summary['rows_at_temperature_0']}"
    )
    write_result(
        args.out,
        {"axes": AXES, "runs": runs, "summary": summary, "differing_rows": differing},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
