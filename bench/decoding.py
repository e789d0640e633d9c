"""What the loop guard and the first-word stop rule change in real answers, and what they cost.

Every question of ``qa/dev.jsonl`` and ``qa2/qa.jsonl`` is answered once by the embedded Gemma
through the serving plan (retrieval, windows, template) at temperature 0, generating without
stop sequences. The same raw text is then cut three ways, offline, since neither rule changes
how a token is sampled: as llama.cpp's own stops would cut it (the old behaviour), with stops
after the first word (``StopScanner``), and with the loop guard on top (``AnswerText``).
Reported per rule: empty answers, answers the guard shortened, and the key-fact rate (at least
half of the ground truth's content words in the answer: ``eval.strings.key_fact``, the eval
metric ``key_facts``) over the answerable questions.

    .venv/bin/python bench/decoding.py --home /tmp/ragtune-quality [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.strings import key_fact  # noqa: E402  (the one definition, shared with eval)
from service import rag  # noqa: E402
from service.llm.llamacpp import LlamaCppLLM, sampling_kwargs  # noqa: E402
from service.llm.stops import AnswerText, StopScanner  # noqa: E402
from service.settings import load_settings  # noqa: E402
from service.state import build_state, close_state  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def old_cut(text: str, stops: tuple[str, ...]) -> str:
    """llama.cpp's rule: the first occurrence of any stop, wherever it is."""
    cuts = [i for s in stops if s and (i := text.find(s)) >= 0]
    return text[: min(cuts)] if cuts else text


def apply(kind: type[StopScanner] | type[AnswerText], text: str, stops: tuple[str, ...]) -> str:
    cutter = kind(stops)
    return cutter.feed(text) + cutter.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="an ingested home (corpus + qa2)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "decoding.json")
    args = ap.parse_args()
    settings = load_settings(home=args.home)
    cases = []
    for path in (DATA / "qa" / "dev.jsonl", DATA / "qa2" / "qa.jsonl"):
        lines = path.read_text().splitlines()
        cases += [json.loads(line) | {"set": path.parent.name} for line in lines if line.strip()]
    cases = cases[: args.limit or None]
    state = build_state(settings)
    llm = state.llm
    assert isinstance(llm, LlamaCppLLM), "this bench measures the embedded backend"
    serving, _ = state.serving.effective(settings.rag)
    rules = {
        "old: stops anywhere": None,
        "stops after first word": StopScanner,
        "+ loop guard": AnswerText,
    }
    results: dict[str, dict[str, int]] = {
        r: {"empty": 0, "shortened": 0, "key_facts": 0} for r in rules
    }
    answerable = 0
    rows = []
    try:
        for case in cases:
            params = rag.sampling_params(serving, temperature=0, seed=0)
            plan = rag.plan_answer(
                question=case["question"],
                embedder=state.embedder,
                index=state.index,
                llm=llm,
                registry=state.registry,
                rag=serving,
                params=params,
                fence_key=state.fence_key,
            )
            if not plan.grounded:
                continue
            stops = plan.params.stop
            tokens = llm._bos + llm._tokens(plan.prompt.text or "")  # as the backend sends them
            llm._keep_cache(tokens)
            kwargs = {**sampling_kwargs(plan.params), "stop": [], "seed": 0}
            raw = llm._llama.create_completion(tokens, **kwargs)["choices"][0]["text"]
            cut = {
                name: (old_cut(raw, stops) if kind is None else apply(kind, raw, stops)).strip()
                for name, kind in rules.items()
            }
            has_truth = bool(case.get("evidence"))
            answerable += has_truth
            for name, text in cut.items():
                results[name]["empty"] += not text
                results[name]["shortened"] += len(text) < len(cut["stops after first word"])
                results[name]["key_facts"] += has_truth and key_fact(text, case["ground_truth"])
            rows.append({"id": case["id"], "set": case["set"], **cut})
    finally:
        close_state(state)
    print(f"{len(rows)} grounded answers ({answerable} answerable), embedded Gemma, temperature 0")
    print(f"{'rule':<24} {'empty':>6} {'shortened':>10} {'key-fact rate':>14}")
    for name, r in results.items():
        rate = r["key_facts"] / answerable if answerable else 0.0
        r["key_fact_rate"] = round(rate, 3)  # type: ignore[assignment]
        print(f"{name:<24} {r['empty']:>6} {r['shortened']:>10} {rate:>14.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
