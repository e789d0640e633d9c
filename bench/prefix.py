"""The in-process engine's prefix cache: time to first token with a warm prefix against a cold one.

Issue 14 asks to show that the stable prompt prefix (instruction and few-shot examples) is reused
across requests. The in-process engine keeps whole 64-token blocks of the previous prompt that a
fresh evaluation would compute identically, and reports them as
``usage.prompt_tokens_details.cached_tokens``. Every dev and qa2 question's prompt is planned first
(retrieval, windows, template: no encoder running while the model is timed), then each is asked
at temperature 0 for 8 tokens three ways:

- ``cold``: after an unrelated prompt, so nothing of it is cached;
- ``after another question``: right after the previous question's prompt, as serving one
  question after another does: what is shared is the template's stable prefix;
- ``same prompt again``: right after itself, as a sweep in question order asks it under the next
  configuration (only the tail after the last whole block is evaluated).

Per template: the median and p95 TTFT, the mean cached tokens against the prompt's tokens, and
whether the answer is the cold one (it must be: the cache keeps only what a fresh evaluation
computes). ``grounded-qa@2`` chooses its examples per question, so its prefix is shorter: the
layout comparison the issue asks for (fixed examples before the passages against chosen ones).

    .venv/bin/python bench/prefix.py --home /tmp/ragtune-quality [--limit N]

Run it alone: llama.cpp slows down ~50x when another busy process shares the cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serve import pct, write_result  # noqa: E402
from service import rag  # noqa: E402
from service.llm.base import Completion, Prompt  # noqa: E402
from service.llm.llamacpp import LlamaCppLLM  # noqa: E402
from service.settings import load_settings  # noqa: E402
from service.state import build_state, close_state  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
WAYS = ("cold", "after another question", "same prompt again")


def questions(limit: int) -> list[str]:
    """The first ``limit // 2`` questions of dev and of qa2 (all of both with 0)."""
    out = []
    for path in (DATA / "qa" / "dev.jsonl", DATA / "qa2" / "qa.jsonl"):
        lines = [json.loads(line)["question"] for line in path.read_text().splitlines() if line]
        out += lines[: limit // 2 or None]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, required=True, help="an ingested home (corpus + qa2)")
    ap.add_argument("--limit", type=int, default=12, help="questions (81 in all)")
    ap.add_argument("--templates", default="default,grounded-qa@2")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "prefix.json")
    args = ap.parse_args()
    settings = load_settings(home=args.home)
    state = build_state(settings)
    llm = state.llm
    assert isinstance(llm, LlamaCppLLM), "this bench measures the in-process engine"
    results: dict[str, Any] = {}
    try:
        for name in args.templates.split(","):
            rag_settings = settings.rag
            if name != "default":
                rag_settings = rag_settings.model_copy(update={"template": name})
            serving, version = state.serving.effective(rag_settings)
            params = rag.sampling_params(serving, temperature=0, seed=0)
            params = dataclasses.replace(params, max_tokens=8)
            prompts = []
            for q in questions(args.limit):
                plan = state.plan(q, serving, params=params, serving_version=version)
                if plan.grounded:
                    prompts.append(plan.prompt)
            unrelated = Prompt(text="Zebras graze on the savanna at dawn.")
            if prompts[0].messages is not None:
                unrelated = Prompt(messages=({"role": "user", "content": unrelated.text or ""},))

            runs: dict[str, list[Completion]] = {w: [] for w in WAYS}
            for p in prompts:
                llm.complete(unrelated, params)
                runs["cold"].append(llm.complete(p, params))
            for p in prompts:  # each after the previous question (the first after the last)
                runs["after another question"].append(llm.complete(p, params))
            for p in prompts:
                llm.complete(p, params)
                runs["same prompt again"].append(llm.complete(p, params))
            rows = {}
            for way, done in runs.items():
                ttft = [1000 * c.timings.get("first_token", c.timings["total"]) for c in done]
                rows[way] = {
                    "ttft_p50_ms": statistics.median(ttft),
                    "ttft_p95_ms": pct(ttft, 95),
                    "cached_tokens_mean": statistics.mean(c.cached_tokens or 0 for c in done),
                    "prompt_tokens_mean": statistics.mean(c.prompt_tokens for c in done),
                    "same_answer_as_cold": sum(
                        c.text == cold.text for c, cold in zip(done, runs["cold"], strict=True)
                    ),
                    "prompts": len(done),
                }
            results[name] = rows
    finally:
        close_state(state)
    print(f"{llm.name}, {settings.llm.threads or 'auto'} threads, temperature 0, 8 tokens")
    head = f"{'template':<16} {'prefix':<24} {'TTFT p50':>9} {'p95':>7} {'cached/prompt':>14} same"
    print(head)
    for template, rows in results.items():
        cold_p50 = rows["cold"]["ttft_p50_ms"]
        for way, r in rows.items():
            r["ttft_p50_vs_cold"] = r["ttft_p50_ms"] / cold_p50
            print(
                f"{template:<16} {way:<24} {r['ttft_p50_ms']:8.0f}ms {r['ttft_p95_ms']:6.0f}ms "
                f"{r['cached_tokens_mean']:6.0f}/{r['prompt_tokens_mean']:<6.0f} "
                f"{r['same_answer_as_cold']}/{r['prompts']}"
            )
    config = {"model": llm.name, "threads": settings.llm.threads, "limit": args.limit}
    write_result(args.out, {"config": config, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
