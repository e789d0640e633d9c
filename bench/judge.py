"""A local judge: how often its judgements parse, whether they agree with key facts, what it costs.

No answer is generated here, only judgements. The answers are the stored, hand-labelled ones of
``bench/metric_agreement.py`` (Gemma 270M's and Qwen2.5-Coder 0.5B's answers to the dev
questions, each read against the ground truth by a person), plus two kinds that are wrong by
construction: a bullet list of the question's and passages' terms ("salad", what a small model
emits and what semantic similarity rewarded) and the next question's ground truth ("wrong
truth", fluent and on topic). Each judge is an embedded instruct preset served exactly as
``ragtune eval run --judge local:NAME`` serves it (``eval.judge.serving``: llama_cpp.server on
loopback) and scores through ``eval.metrics.judge_metrics``, the code ``eval run`` uses.

Per judge and output mode (``schema``: the response schema constrains the output, what the local
judge sends; ``json``: plain JSON mode, what a remote judge gets by default):
- parse rate: answer-accuracy scores produced / asked;
- agreement: the share of answers whose judge verdict (answer accuracy >= 0.5) matches the hand
  label, and its AUC, next to key facts' on the same answers; the mean the judge gives each kind
  of answer; Spearman's rho between the judge's score and key-fact recall;
- cost: seconds per answer for answer accuracy, and for each other judge metric on the first
  ``--full`` answers (a judged sweep costs their sum times configurations times questions).

    .venv/bin/python bench/judge.py --home /tmp/rq-final [--judges qwen2.5-coder-0.5b-instruct ...]
        [--questions 12] [--full 4] [--threads 2]

Runs one judge at a time with nothing else on the cores (llama.cpp slows down fifty-fold when
two busy processes share two cores). Results are written after each judge.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metric_agreement import (  # noqa: E402  (bench/ is sys.path[0])
    COLUMN,
    LABELS,
    QWEN,
    SETS,
    STORED,
    auc,
    retrieved,
    salad,
)
from scipy.stats import spearmanr  # noqa: E402

from eval.dataset import Case, load_dataset  # noqa: E402
from eval.judge import JUDGE_METRICS, judge_config, serving  # noqa: E402
from eval.metrics import Observation, judge_metrics  # noqa: E402
from eval.strings import key_fact_recall  # noqa: E402
from service.settings import load_settings  # noqa: E402

KINDS = ("gemma", "qwen", "salad", "wrong_truth")  # hand-labelled, then wrong by construction
MODES = {"schema": True, "json": False}


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rho (ties get average ranks); nan where either side is constant."""
    if len(set(a)) < 2 or len(set(b)) < 2:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def observations(cases: list[Case], passages: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Every answer to judge: its kind, its observation and its hand label (None: wrong by
    construction, so False)."""
    stored = {r["id"]: r[COLUMN] for r in json.loads(STORED.read_text())["rows"]}
    qwen = {r["id"]: r["answer"] for r in map(json.loads, QWEN.read_text().splitlines())}
    labels: dict[tuple[str, str], bool] = {}
    for row in map(json.loads, LABELS.read_text().splitlines()):
        labels[row["model"], row["id"]] = bool(row["correct"])
    out = []
    for i, c in enumerate(cases):
        texts = {
            "gemma": stored.get(c.id),
            "qwen": qwen.get(c.id),
            "salad": salad(c.question, passages[c.id]),
            "wrong_truth": cases[(i + 1) % len(cases)].ground_truth,
        }
        for kind, answer in texts.items():
            if answer is None or (kind in ("gemma", "qwen") and (kind, c.id) not in labels):
                continue
            obs = Observation(c, answer, tuple(passages[c.id]))
            correct = labels.get((kind, c.id), False)
            out.append({"kind": kind, "obs": obs, "correct": correct})
    return out


def judge_one(items: list[dict[str, Any]], judge: Any, embed: Any) -> dict[str, Any]:
    """Answer accuracy for every item (one call of judge_metrics per item, timed)."""
    acc = dataclasses.replace(judge, metrics=("answer_accuracy",))
    scores: list[float | None] = []
    seconds: list[float] = []
    calls = failures = 0
    errors: list[str] = []
    for item in items:
        t = time.perf_counter()
        rows, stats = judge_metrics([item["obs"]], acc, embed)
        seconds.append(time.perf_counter() - t)
        calls += stats.calls
        failures += stats.failures
        errors += stats.errors[:1]
        scores.append(rows[0].get("answer_accuracy"))
    return {"scores": scores, "seconds": seconds, "calls": calls, "failures": failures,
            "errors": errors[:5]}  # fmt: skip


def agreement(items: list[dict[str, Any]], scores: list[float | None]) -> dict[str, Any]:
    """Judge against hand labels and key facts, on the answers it scored."""
    pairs = [(it, s) for it, s in zip(items, scores, strict=True) if s is not None]
    labelled = [(it, s) for it, s in pairs if it["kind"] in ("gemma", "qwen")]
    hand = [it["correct"] for it, _ in labelled]
    judge = [s for _, s in labelled]
    recall = [
        key_fact_recall(it["obs"].answer, it["obs"].case.ground_truth) or 0.0 for it, _ in labelled
    ]
    key_facts = [1.0 if r >= 0.5 else 0.0 for r in recall]
    means = {
        k: round(statistics.fmean(v), 3)
        if (v := [s for it, s in pairs if it["kind"] == k])
        else None
        for k in KINDS
    }
    n = len(labelled)
    return {
        "scored": len(pairs),
        "labelled": n,
        "judge_accuracy": round(sum((s >= 0.5) == y for s, y in zip(judge, hand, strict=True)) / n, 3)
        if n else None,
        "judge_auc": round(auc(judge, hand), 3) if n else None,
        "key_facts_accuracy": round(sum((k >= 0.5) == y for k, y in zip(key_facts, hand, strict=True)) / n, 3)
        if n else None,
        "key_fact_recall_auc": round(auc(recall, hand), 3) if n else None,
        "spearman_vs_key_fact_recall": round(spearman(judge, recall), 3) if n else None,
        "mean_by_kind": means,
    }  # fmt: skip


def full_cost(items: list[dict[str, Any]], judge: Any, embed: Any) -> dict[str, Any]:
    """Seconds per answer and parse failures of each judge metric, on ``items``."""
    out = {}
    for metric in JUDGE_METRICS:
        one = dataclasses.replace(judge, metrics=(metric,))
        t = time.perf_counter()
        rows, stats = judge_metrics([it["obs"] for it in items], one, embed)
        asked = sum(1 for _ in items)
        got = sum(metric in r for r in rows)
        out[metric] = {
            "s_per_answer": round((time.perf_counter() - t) / max(1, asked), 1),
            "calls_per_answer": round(stats.calls / max(1, asked), 1),
            "parsed": f"{got}/{asked}",
            "errors": stats.errors[:3],
        }
        print(f"    {metric:<22} {out[metric]['s_per_answer']:>6.1f} s/answer "
              f"{out[metric]['calls_per_answer']:>4.1f} calls  parsed {got}/{asked}", flush=True)  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="an ingested home (corpus + qa2)")
    ap.add_argument(
        "--judges",
        nargs="+",
        default=["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"],
    )
    ap.add_argument("--questions", type=int, default=12, help="first N dev questions")
    ap.add_argument("--json-items", type=int, default=12, help="answers judged in json mode too")
    ap.add_argument("--full", type=int, default=4, help="answers every judge metric is timed on")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "judge.json")
    args = ap.parse_args()
    settings = load_settings(home=args.home)
    settings = settings.model_copy(
        update={"llm": settings.llm.model_copy(update={"threads": args.threads})}
    )
    cases = [c for c in load_dataset(SETS["dev"]) if not c.unanswerable][: args.questions]
    passages, embedder = retrieved(settings, cases)
    items = observations(cases, passages)
    counts = {k: sum(it["kind"] == k for it in items) for k in KINDS}
    print(f"{len(items)} answers to judge ({counts}) over {len(cases)} dev questions")
    results: dict[str, Any] = {"judges": {}}
    if args.out.exists():  # judges measured by earlier runs stay (each records its own sample)
        results = json.loads(args.out.read_text())
    for name in args.judges:
        judge = judge_config(f"local:{name}", settings.eval)
        t0 = time.perf_counter()
        with serving(judge, settings) as live:
            assert live is not None
            start_s = round(time.perf_counter() - t0, 1)
            row: dict[str, Any] = {
                "questions": len(cases),
                "answers": counts,
                "threads": args.threads,
                "start_s": start_s,
                "modes": {},
            }
            for mode, schema in MODES.items():
                subset = items if schema else items[: args.json_items]
                if not subset:
                    continue
                run = judge_one(
                    subset, dataclasses.replace(live, json_schema=schema), embedder.encode
                )
                asked = len(subset)
                parsed = sum(s is not None for s in run["scores"])
                row["modes"][mode] = {
                    "asked": asked,
                    "parse_rate": round(parsed / asked, 3),
                    "s_per_answer": round(statistics.fmean(run["seconds"]), 1),
                    "calls": run["calls"],
                    "errors": run["errors"],
                    "agreement": agreement(subset, run["scores"]),
                    "scores": [
                        {"id": it["obs"].case.id, "kind": it["kind"], "correct": it["correct"],
                         "judge": s}
                        for it, s in zip(subset, run["scores"], strict=True)
                    ],
                }  # fmt: skip
                m = row["modes"][mode]
                a = m["agreement"]
                print(
                    f"{name} {mode}: parsed {parsed}/{asked}, {m['s_per_answer']} s/answer; "
                    f"vs hand labels accuracy {a['judge_accuracy']} AUC {a['judge_auc']} "
                    f"(key facts {a['key_facts_accuracy']} / {a['key_fact_recall_auc']}); "
                    f"rho vs key-fact recall {a['spearman_vs_key_fact_recall']}; "
                    f"means {a['mean_by_kind']}",
                    flush=True,
                )
            real = [it for it in items if it["kind"] in ("gemma", "qwen")][: args.full]
            row["full"] = full_cost(real, live, embedder.encode)
        results["judges"][name] = row
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
