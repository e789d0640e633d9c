"""What the model reads: evidence inside the top-5 passages, chunks alone against context windows.

A question's evidence often straddles two 64-token chunks, or the chunk that ranks holds only the
half of the sentence that matched. This measures, on ``qa/dev.jsonl`` and the answerable
questions of ``qa2`` with the bench distractors in the same index (bench/retrieval_quality.py's),
how often the top 5 passages the model is given contain the evidence
(``eval.strings.has_evidence``), for each window budget, and what the passages cost in the
answering model's tokens. Retrieval itself is the serving
default and the same for every budget: only what is read around each hit changes.

    .venv/bin/python bench/windows.py [--home /tmp/ragtune-quality] [--budgets 0,96,160,256]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retrieval_quality import DATA, build_index  # noqa: E402  (bench/ is sys.path[0])

from eval.strings import has_evidence  # noqa: E402
from ingest.search import retrieve  # noqa: E402
from ingest.windows import build_windows  # noqa: E402

K = 5


def load(path: Path) -> list[dict]:
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [c for c in cases if c.get("evidence")]  # unanswerable ones have none


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path("/tmp/ragtune-quality"))
    ap.add_argument("--budgets", default="0,96,160,256")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "windows.json")
    args = ap.parse_args()
    from llama_cpp import Llama

    from service.llm.llamacpp import default_model_path

    vocab = Llama(model_path=str(default_model_path()), vocab_only=True, verbose=False)

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode(), add_bos=False, special=False))

    settings, embedder, index = build_index(args.home)
    sets = {"dev": load(DATA / "qa" / "dev.jsonl"), "qa2": load(DATA / "qa2" / "qa.jsonl")}
    options = settings.rag.retrieval
    hits_of = {
        name: [retrieve(embedder, index, c["question"], K, options, min_score=options.min_score)
               for c in cases]
        for name, cases in sets.items()
    }  # fmt: skip
    budgets = [int(b) for b in args.budgets.split(",")]
    rows = []
    print(f"{index.stats()['chunks']} chunks; top {K} passages, serving retrieval ({options.mode})")
    print(
        f"{'budget':>6} {'set':>4} {'evidence in passages':>21} {'tokens/passage':>15} {'ms/q':>6}"
    )
    for budget in budgets:
        for name, cases in sets.items():
            found, tokens, seconds = 0, [], 0.0
            for case, hits in zip(cases, hits_of[name], strict=True):
                t = time.perf_counter()
                windows = build_windows(hits, index, budget)
                seconds += time.perf_counter() - t
                found += any(has_evidence(w.text, case["evidence"]) for w in windows)
                tokens += [count(w.text) for w in windows]
            row = {
                "budget": budget,
                "set": name,
                "questions": len(cases),
                "evidence_at_5": round(found / len(cases), 3),
                "tokens_per_passage": round(statistics.mean(tokens), 1) if tokens else 0.0,
                "window_ms": round(1000 * seconds / len(cases), 2),
            }
            rows.append(row)
            print(
                f"{budget:>6} {name:>4} {row['evidence_at_5']:>21.3f} "
                f"{row['tokens_per_passage']:>15.1f} {row['window_ms']:>6.2f}"
            )
    index.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"k": K, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
