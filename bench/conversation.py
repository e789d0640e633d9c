"""Follow-up questions: hit rate@5 of what retrieval searches for, per way of condensing.

On eval/data/dialogues.jsonl (two-turn dialogues over ../shared/data/corpus; the second turn is
an elliptical follow-up such as "And the trailer?"), the follow-up's evidence is looked for in
the top 5 chunks retrieved (the hit test of ``eval retrieval``) for:

- ``none``: the follow-up alone (what the service did before conversations);
- ``concat``: the earlier question and the follow-up (``rag.conversation.condense = "concat"``);
- ``llm``: the packaged Gemma 3 270M (a base model: the completion rewrite prompt) rewriting the
  follow-up as a standalone question, with concat where the rewrite is rejected; its latency
  per rewrite is reported, and how many rewrites were used;
- ``llm:<name>``: the same with an instruct GGUF in chat style (``--chat-model``), if given.

The index is bench/retrieval_quality.py's (the dev corpus among ~25k distractor chunks), the
retrieval the serving default. Models run with one thread (``--threads``).

    OMP_NUM_THREADS=1 .venv/bin/python bench/conversation.py [--home /tmp/rq-final]
        [--chat-model ~/.cache/ragtune/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retrieval_quality import DATA, build_index  # noqa: E402  (bench/ is sys.path[0])

from eval.dataset import Case, load_dataset  # noqa: E402
from eval.metrics import Observation, retrieval_metrics  # noqa: E402
from service import conversation, rag  # noqa: E402
from service.llm.base import LLM, Completion, Prompt, SamplingParams  # noqa: E402
from service.llm.settings import LLMSettings  # noqa: E402
from service.settings import ConversationSettings, RagSettings  # noqa: E402

DIALOGUES = ROOT / "eval" / "data" / "dialogues.jsonl"
K = 5


class ChatGGUF:
    """An instruct GGUF in chat style (llama.cpp applies the file's chat template), bench only."""

    style = "chat"
    parallel = 1

    def __init__(self, path: Path, threads: int) -> None:
        from llama_cpp import Llama

        self.name = path.stem
        self.context_window = 4096
        self._llama = Llama(
            model_path=str(path), n_ctx=4096, n_threads=threads, n_threads_batch=threads,
            verbose=False,
        )  # fmt: skip

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode(), add_bos=False, special=False))

    def complete(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Completion:
        out: Any = self._llama.create_chat_completion(
            messages=list(prompt.messages or ()),  # type: ignore[arg-type]
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_k=params.top_k or 1,
            stop=list(params.stop),
            seed=0,
        )
        choice = out["choices"][0]
        return Completion(choice["message"]["content"] or "", choice["finish_reason"] or "stop")


def hit(case: Case, hits: list[Any]) -> tuple[float, float]:
    scores = retrieval_metrics(Observation(case, "", tuple(h.text for h in hits)), K)
    return scores["hit_rate"], scores["mrr"]


def run(
    name: str, cases: list[Case], llm: LLM, settings: ConversationSettings, search: Any
) -> dict[str, Any]:
    hits = mrr = 0.0
    seconds, used, fallbacks, per_case = [], 0, Counter[str](), []
    for case in cases:
        history = conversation.turns_of({"role": r, "content": c} for r, c in case.history)
        c = conversation.condense(case.question, history, llm, settings)
        h, m = hit(case, search(c.query))
        hits, mrr = hits + h, mrr + m
        if settings.condense == "llm":
            seconds.append(c.seconds)
            used += c.method == "llm"
            fallbacks.update([c.fallback] if c.fallback else [])
        per_case.append(
            {"id": case.id, "query": c.query, "method": c.method, "fallback": c.fallback,
             "rewrite": c.rewrite, "hit": h, "seconds": round(c.seconds, 3)}
        )  # fmt: skip
    row: dict[str, Any] = {
        "condense": name,
        "cases": len(cases),
        "hit_at_5": round(hits / len(cases), 3),
        "mrr_at_5": round(mrr / len(cases), 3),
    }
    if seconds:
        row |= {
            "rewrites_used": used,
            "fallbacks": dict(fallbacks),
            "latency_p50_s": round(statistics.median(seconds), 3),
            "latency_max_s": round(max(seconds), 3),
        }
    row["per_case"] = per_case
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path("/tmp/rq-final"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chat-model", type=Path, help="an instruct GGUF to try in chat style")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "conversation.json")
    args = ap.parse_args()
    from service.llm.factory import load_llm

    _, embedder, index = build_index(args.home)
    corpus = {str(p) for p in (DATA / "corpus").iterdir()}
    indexed = {d.source for d in index.documents()}
    missing = sorted(corpus - indexed)
    if missing:
        raise SystemExit(f"the dev corpus is not in the index under {args.home}: {missing}")
    cases = load_dataset(DIALOGUES)
    serving = RagSettings()  # the serving default retrieval

    def search(query: str) -> list[Any]:
        return rag.retrieve_serving(embedder, index, query, serving)

    gemma = load_llm(LLMSettings(threads=args.threads))
    base = ConversationSettings()
    runs: list[tuple[str, LLM, ConversationSettings]] = [
        ("none", gemma, base.model_copy(update={"condense": "none"})),
        ("concat", gemma, base.model_copy(update={"condense": "concat"})),
        (f"llm:{gemma.name}", gemma, base.model_copy(update={"condense": "llm"})),
    ]
    if args.chat_model:
        chat = ChatGGUF(args.chat_model, args.threads)
        runs.append((f"llm:{chat.name}", chat, base.model_copy(update={"condense": "llm"})))
    rows = []
    print(f"{len(cases)} dialogues; hit@{K} of the follow-up's evidence, serving retrieval")
    print(f"{'condense':<42} {'hit@5':>6} {'MRR@5':>6} {'used':>5} {'p50 s':>6} {'max s':>6}")
    for name, llm, conv in runs:
        t = time.perf_counter()
        row = run(name, cases, llm, conv, search)
        row["seconds"] = round(time.perf_counter() - t, 1)
        rows.append(row)
        used = f"{row['rewrites_used']}/{len(cases)}" if "rewrites_used" in row else "-"
        p50 = f"{row['latency_p50_s']:.2f}" if "latency_p50_s" in row else "-"
        mx = f"{row['latency_max_s']:.2f}" if "latency_max_s" in row else "-"
        print(
            f"{name:<42} {row['hit_at_5']:>6.3f} {row['mrr_at_5']:>6.3f} {used:>5} {p50:>6} {mx:>6}"
        )
        if row.get("fallbacks"):
            print(f"{'':<42} fallbacks: {row['fallbacks']}")
    body = {
        "dataset": str(DIALOGUES.relative_to(ROOT)),
        "index": {"home": str(args.home), "version": index.version,
                  "chunks": index.stats()["chunks"]},
        "retrieval": serving.retrieval.model_dump(),
        "conversation": base.model_dump(),
        "k": K,
        "threads": args.threads,
        "rows": rows,
    }  # fmt: skip
    index.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
