"""Continuous batching on the embedded path: the in-process engine against llama-server's slots.

Issue 14 asks which of the two embedded engines should serve by default, by measurement. Both
run the same GGUF with the same threads behind the same ``ragtune serve`` (so retrieval, prompt,
template and verification are identical), driven by the official ``openai`` client, streaming,
temperature 0, fixed seed, on the same data directory:

- ``in-process``: llama-cpp-python, one generation at a time, prompts evaluated in 64-token
  blocks with whole blocks of the previous prompt kept (the deterministic prefix reuse);
- ``server``: llama-server with ``--parallel`` slots, continuous batching, the prompt cache off
  (the default: answers must not depend on what ran before);
- ``server+cache``: the same with llama-server's prompt cache on (``cache_prompt``).

Per engine and number of concurrent clients (1, 2, 4, 8, 16; the in-process engine at 1 and 4,
since it queues everything past one), the same questions at every level (the first of dev and
qa2), so levels compare the same work: aggregate completion tokens/s, requests/s, TTFT p50/p95,
latency. The ratio is against the in-process engine with one client, today's path, run in the same
script. llama-server's RAM prompt cache is off (``--cache-ram 0``) so that a level cannot replay
an earlier level's prompts; a slot still keeps the last prompt it ran (the shared prefix).

Determinism: each level's answers are compared with the same engine's answers with one client.
At temperature 0 they should be identical; llama.cpp's CPU kernels are not batch-invariant (a
sequence decoded beside others, or a prompt resumed from a cache, rounds differently), so with
slots they can differ.

    .venv/bin/python bench/batching.py [--home DIR] [--per-level 16] [--max-tokens 48]

Stop everything else first: llama.cpp slows down ~50x when another busy process shares the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from openai import OpenAI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serve import DATA, SEED, build_home, pct, serve_process, service_once, write_result  # noqa: E402
from ingest.embed import load_embedder  # noqa: E402
from service.settings import Settings  # noqa: E402

ENGINES: dict[str, dict[str, str]] = {
    "in-process": {"RAGTUNE_LLM__ENGINE": "in-process"},
    "server": {"RAGTUNE_LLM__ENGINE": "server"},
    "server+cache": {
        "RAGTUNE_LLM__ENGINE": "server",
        "RAGTUNE_LLM__EXTRA_BODY": json.dumps({"cache_prompt": True}),
        "RAGTUNE_LLM__SERVER_ARGS": json.dumps(["--cache-ram", "0"]),
    },
}
LEVELS = {"in-process": (1, 4), "server": (1, 2, 4, 8, 16), "server+cache": (1, 2, 4, 8, 16)}


def all_questions() -> list[str]:
    files = [DATA / "qa" / "dev.jsonl", *sorted((DATA / "qa2").glob("*.jsonl"))]
    qs = []
    for f in files:
        qs += [json.loads(line)["question"] for line in f.read_text().splitlines() if line.strip()]
    return list(dict.fromkeys(qs))


def env_for(engine: str, threads: int, parallel: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGTUNE_")}
    env.update(
        PYTHONPATH=str(ROOT),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS=str(threads),
        RAGTUNE_LLM__THREADS=str(threads),
        RAGTUNE_LLM__PARALLEL=str(parallel),
        RAGTUNE_LLM__QUEUE_SIZE="64",
        RAGTUNE_LLM__QUEUE_TIMEOUT_S="900",
        RAGTUNE_LLM__TOTAL_TIMEOUT_S="900",
        RAGTUNE_LLM__FIRST_TOKEN_TIMEOUT_S="900",
        RAGTUNE_SERVICE__RATE_LIMIT_PER_MINUTE="0",
        **ENGINES[engine],
    )
    return env


def level(client: OpenAI, qs: list[str], clients: int, max_tokens: int) -> dict[str, Any]:
    errors: list[str] = []

    def one(q: str) -> dict[str, Any] | None:
        try:
            return service_once(client, "ragtune", q, max_tokens)
        except Exception as e:  # counted; the level goes on
            errors.append(f"{type(e).__name__}: {e}")
            return None

    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        rows = list(pool.map(one, qs))
    wall = time.perf_counter() - t
    done = [r for r in rows if r is not None]
    ttft = [r["ttft"] * 1000 for r in done]
    return {
        "clients": clients,
        "requests": len(qs),
        "errors": len(errors),
        "error_samples": errors[:3],
        "seconds": wall,
        "tokens_per_s": sum(r["tokens"] for r in done) / wall,
        "requests_per_s": len(done) / wall,
        "ttft_p50_ms": pct(ttft, 50),
        "ttft_p95_ms": pct(ttft, 95),
        "latency_p50_ms": pct([r["total"] * 1000 for r in done], 50),
        "prompt_tokens_mean": sum(r["prompt_tokens"] for r in done) / max(1, len(done)),
        "answers": [r["text"] if r else None for r in rows],
    }


def run_engine(
    engine: str, home: Path, qs: list[str], args: argparse.Namespace, log_dir: Path
) -> dict[str, Any]:
    env = env_for(engine, args.threads, args.parallel)
    proc, base = serve_process(home, env, log_dir / f"{engine}.log")
    try:
        client = OpenAI(base_url=f"{base}/v1", api_key="bench", max_retries=0, timeout=900)
        service_once(client, "ragtune", "What is this collection about?", 8)  # warm
        levels = []
        for n in LEVELS[engine]:
            levels.append(level(client, qs[: args.per_level], n, args.max_tokens))
            row = levels[-1]
            alone = levels[0]["answers"]
            row["identical_to_one_client"] = sum(
                a == b and a is not None for a, b in zip(alone, row["answers"], strict=True)
            )
            print(
                f"  {engine:<13} {n:>2} clients: {row['tokens_per_s']:6.2f} tok/s "
                f"{row['requests_per_s']:.3f} req/s  TTFT p50 {row['ttft_p50_ms']:7.0f} "
                f"p95 {row['ttft_p95_ms']:7.0f} ms  errors {row['errors']}  "
                f"same as 1 client {row['identical_to_one_client']}/{len(alone)}",
                flush=True,
            )
        return {"levels": levels}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, help="a data directory to serve (default: build one)")
    ap.add_argument("--per-level", type=int, default=16, help="distinct questions per level")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=4, help="llama-server slots")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "batching.json")
    args = ap.parse_args()
    for key in [k for k in os.environ if k.startswith("RAGTUNE_")]:
        del os.environ[key]
    engines = args.engines.split(",")
    qs = all_questions()
    with tempfile.TemporaryDirectory(prefix="ragtune-batching-") as tmp:
        home = args.home
        if home is None:
            settings = Settings(home=Path(tmp) / "home")
            build_home(settings, load_embedder(settings.embed))
            home = settings.home
        results = {e: run_engine(e, home, qs, args, Path(tmp)) for e in engines}
    base = results.get("in-process", {}).get("levels", [{}])[0].get("tokens_per_s")
    print(
        f"\n{'engine':<13} {'clients':>7} {'tok/s':>7} {'vs 1 in-proc':>12} {'TTFT p95 ms':>11} "
        f"{'same answers':>12}"
    )
    for e, r in results.items():
        for row in r["levels"]:
            ratio = row["tokens_per_s"] / base if base else float("nan")
            row["ratio_vs_inprocess_1"] = ratio
            print(
                f"{e:<13} {row['clients']:>7} {row['tokens_per_s']:>7.2f} {ratio:>11.2f}x "
                f"{row['ttft_p95_ms']:>11.0f} {row['identical_to_one_client']:>9}/{row['requests']}"
            )
    write_result(
        args.out,
        {
            "config": {k: str(v) for k, v in vars(args).items()} | {"seed": SEED},
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
