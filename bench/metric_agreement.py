"""Which answer metric ranks answers the way reading them does: agreement with known correctness.

No model is run. Five configurations answer every question of ``qa/dev.jsonl`` and
``qa2/qa.jsonl``, their correctness known by construction or by hand:

- ``truth``: the ground truth itself (all correct);
- ``gemma``: the embedded Gemma 270M's stored answers (``bench/results/decoding.json``, the
  loop-guard column), each labelled correct or not by reading it against the ground truth
  (``bench/data/hand_labels.jsonl``: hand labels, written by a person, not a model);
- ``salad``: a bullet list of the question's terms and the retrieved passages' most frequent
  terms (``- ALiBi:\\n- RoPE:``), the garbage a small model emits (all wrong);
- ``wrong_truth``: the next question's ground truth, fluent and on topic (all wrong);
- ``dont_know``: "I don't know" everywhere (wrong on answerable questions).

Every answer is scored by ``eval.metrics.answer_metrics`` (the code ``eval run`` scores with).
Per set, over the answerable questions: each metric's mean per configuration, the share of
pairs of configurations with different correctness that it orders the right way, Kendall's
tau-b against the correctness order, paired bootstrap CIs for the differences that matter, and
per Gemma answer its agreement with the hand labels (accuracy at the metric's own cut, AUC).

Then the comparison the issue was about, two real models: Qwen2.5-Coder 0.5B's answers (made by
``ragtune eval run`` with ``llm.model_path`` set, stored in ``bench/data/answers-qwen.jsonl``,
hand-labelled the same way) against Gemma's, on the questions both answered: which model each
metric puts first, and the paired difference with its CI. Citation precision is not compared:
Gemma never writes [n] markers.

    .venv/bin/python bench/metric_agreement.py --home /tmp/ragtune-quality
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from eval.dataset import Case, load_dataset  # noqa: E402
from eval.metrics import Observation, answer_metrics  # noqa: E402
from eval.run import serving_rag  # noqa: E402
from eval.stats import paired_bootstrap  # noqa: E402
from eval.strings import content_words  # noqa: E402
from ingest.embed import Embedder, load_embedder  # noqa: E402
from ingest.search import open_index  # noqa: E402
from service import rag  # noqa: E402
from service.settings import load_settings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SETS = {"dev": DATA / "qa" / "dev.jsonl", "qa2": DATA / "qa2" / "qa.jsonl"}
LABELS = ROOT / "bench" / "data" / "hand_labels.jsonl"
STORED = ROOT / "bench" / "results" / "decoding.json"
QWEN = ROOT / "bench" / "data" / "answers-qwen.jsonl"
COLUMN = "+ loop guard"  # the serving cut of the stored raw text
MODELS = ("gemma", "qwen")  # the two real models, in the order the issue ranked them
CONFIGS = ("truth", "gemma", "salad", "wrong_truth", "dont_know")
SHOWN = ("key_facts", "key_fact_recall", "semantic_similarity", "rouge_l", "string_similarity")
PAIRS = (("gemma", "salad"), ("gemma", "wrong_truth"), ("truth", "salad"))
DONT_KNOW = "I don't know based on the provided documents."
_TERM = re.compile(r"[A-Za-z0-9][\w.+#/-]*[A-Za-z0-9+#]")


def salad(question: str, passages: Sequence[str], n: int = 8) -> str:
    """The question's terms, then the passages' most frequent ones, as an empty bullet list."""

    def terms(text: str) -> list[str]:
        return [t for t in _TERM.findall(text) if content_words(t) and len(t) > 2]

    counts = Counter(t for p in passages[:3] for t in terms(p))
    picked: dict[str, str] = {}
    for t in [*terms(question), *(t for t, _ in counts.most_common())]:
        picked.setdefault(t.lower(), t)
    return "\n".join(f"- {t}:" for t in list(picked.values())[:n])


Texts = dict[str, dict[str, str]]  # configuration -> case id -> answer
Scored = dict[str, dict[str, dict[str, float]]]  # configuration -> case id -> metric -> value


def answers(cases: Sequence[Case], stored: dict[str, str], passages: dict[str, list[str]]) -> Texts:
    nxt = {c.id: cases[(i + 1) % len(cases)].ground_truth for i, c in enumerate(cases)}
    return {
        "truth": {c.id: c.ground_truth for c in cases},
        "gemma": {c.id: stored[c.id] for c in cases},
        "salad": {c.id: salad(c.question, passages[c.id]) for c in cases},
        "wrong_truth": nxt,
        "dont_know": {c.id: DONT_KNOW for c in cases},
    }


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Probability a correct answer outscores an incorrect one (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg)) if pos and neg else float("nan")


def order_agreement(means: Sequence[float], truth: Sequence[float]) -> tuple[float, float]:
    """(share of pairs with different correctness ordered right, Kendall's tau-b)."""
    conc = disc = tied_m = tied_t = decided = right = 0
    for i in range(len(means)):
        for j in range(i + 1, len(means)):
            dm, dt = means[i] - means[j], truth[i] - truth[j]
            if dt:
                decided += 1
                right += dm * dt > 0
            if dm * dt > 0:
                conc += 1
            elif dm * dt < 0:
                disc += 1
            else:
                tied_m += dm == 0 and dt != 0
                tied_t += dt == 0 and dm != 0
    denom = ((conc + disc + tied_m) * (conc + disc + tied_t)) ** 0.5
    return right / decided, (conc - disc) / denom if denom else float("nan")


def retrieved(settings: Any, cases: Sequence[Case]) -> tuple[dict[str, list[str]], Embedder]:
    """The passages the serving retrieval returns per case, and the encoder it loaded."""
    embed = settings.embed.model_copy(update={"threads": 1})
    embedder = load_embedder(embed)
    index = open_index(settings, embedder)
    serving = serving_rag(settings)
    try:
        hits = {c.id: rag.retrieve_serving(embedder, index, c.question, serving) for c in cases}
    finally:
        index.close()
    return {cid: [h.text for h in hs] for cid, hs in hits.items()}, embedder


def evaluate_set(cases: list[Case], scored: Scored, labels: dict[str, bool]) -> dict[str, Any]:
    ok = [c for c in cases if not c.unanswerable]
    gemma_correct = sum(labels[c.id] for c in ok) / len(ok)
    correctness = {"truth": 1.0, "gemma": gemma_correct, "salad": 0, "wrong_truth": 0}
    correctness["dont_know"] = 0
    out: dict[str, Any] = {"answerable": len(ok), "correctness": correctness, "metrics": {}}
    for m in SHOWN:
        vals = {k: [scored[k][c.id][m] for c in ok] for k in CONFIGS}
        means = {k: sum(v) / len(v) for k, v in vals.items()}
        share, tau = order_agreement([means[k] for k in CONFIGS], [correctness[k] for k in CONFIGS])
        diffs = {}
        for a, b in PAIRS:
            cmp = paired_bootstrap(vals[a], vals[b])
            diffs[f"{a}-{b}"] = [round(x, 4) for x in (cmp.diff, cmp.ci_low, cmp.ci_high)]
        g = vals["gemma"]
        hand = [labels[c.id] for c in ok]
        cut = 0.5 if m == "key_fact_recall" else None
        acc = None
        if m == "key_facts" or cut is not None:
            acc = sum((v >= (cut or 0.5)) == y for v, y in zip(g, hand, strict=True)) / len(g)
        beaten = [scored["salad"][c.id][m] > scored["gemma"][c.id][m] for c in ok if labels[c.id]]
        out["metrics"][m] = {
            "means": {k: round(v, 4) for k, v in means.items()},
            "pairs_right": round(share, 3),
            "tau_b": round(tau, 3),
            "diff_ci": diffs,
            "hand_auc": round(auc(g, hand), 3),
            "hand_accuracy": None if acc is None else round(acc, 3),
            "salad_beats_correct": f"{sum(beaten)}/{len(beaten)}",
        }
    unans = [c for c in cases if c.unanswerable]
    if unans:
        out["dont_know_unanswerable"] = {
            k: sum(scored[k][c.id]["dont_know_unanswerable"] for c in unans) / len(unans)
            for k in CONFIGS
        }
    return out


def compare_models(
    cases: list[Case], scored: Scored, labels: dict[str, dict[str, bool]]
) -> dict[str, Any]:
    """Gemma against Qwen on the answerable questions both answered: which one each metric favours."""
    ok = [c for c in cases if not c.unanswerable and all(c.id in scored[m] for m in MODELS)]
    if not ok:
        return {"questions": 0}
    hand = {m: [labels[m][c.id] for c in ok] for m in MODELS}
    share = {m: sum(v) / len(v) for m, v in hand.items()}
    out: dict[str, Any] = {"questions": len(ok), "hand_correct": share, "metrics": {}}
    first, second = MODELS
    for metric in SHOWN:
        vals = {m: [scored[m][c.id][metric] for c in ok] for m in MODELS}
        cmp = paired_bootstrap(vals[second], vals[first])
        pooled = [v for m in MODELS for v in vals[m]]
        out["metrics"][metric] = {
            "means": {m: round(sum(v) / len(v), 4) for m, v in vals.items()},
            f"{second}-{first}": [round(x, 4) for x in (cmp.diff, cmp.ci_low, cmp.ci_high)],
            # None where the hand labels tie: there is no order to agree with
            "agrees_with_hand": None
            if share[second] == share[first]
            else (cmp.diff > 0) == (share[second] > share[first]),
            "hand_auc": round(auc(pooled, [y for m in MODELS for y in hand[m]]), 3),
        }
    return out


def models_table(name: str, res: dict[str, Any]) -> str:
    first, second = MODELS
    hand = res["hand_correct"]
    lines = [
        f"\n{name}: {first} vs {second} on {res['questions']} answerable questions; hand-checked "
        f"correct {hand[first]:.2f} vs {hand[second]:.2f}",
        f"{'metric':<20} {first:>8} {second:>8}  {second + '-' + first + ' [95% CI]':<28}"
        f" {'agrees':>6} {'AUC':>5}",
    ]
    for m, r in res["metrics"].items():
        d, lo, hi = r[f"{second}-{first}"]
        lines.append(
            f"{m:<20} {r['means'][first]:>8.3f} {r['means'][second]:>8.3f}  "
            f"{f'{d:+.3f} [{lo:+.3f}, {hi:+.3f}]':<28} {'-' if r['agrees_with_hand'] is None else r['agrees_with_hand']!s:>6} "
            f"{r['hand_auc']:>5.2f}"
        )
    return "\n".join(lines)


def table(name: str, res: dict[str, Any]) -> str:
    c = res["correctness"]
    head = " ".join(f"{k:>11}" for k in CONFIGS)
    lines = [
        f"\n{name}: {res['answerable']} answerable questions; hand-checked correct share: "
        + ", ".join(f"{k} {v:.2f}" for k, v in c.items()),
        f"{'metric':<20} {head} {'pairs ok':>8} {'tau-b':>6} {'AUC':>5} {'acc':>5} {'salad>ok':>9}",
    ]
    for m, r in res["metrics"].items():
        means = " ".join(f"{r['means'][k]:>11.3f}" for k in CONFIGS)
        acc = "-" if r["hand_accuracy"] is None else f"{r['hand_accuracy']:.2f}"
        lines.append(
            f"{m:<20} {means} {r['pairs_right']:>8.2f} {r['tau_b']:>6.2f} "
            f"{r['hand_auc']:>5.2f} {acc:>5} {r['salad_beats_correct']:>9}"
        )
    lines.append("paired differences [95% CI]:")
    for m, r in res["metrics"].items():
        cells = [f"{p} {d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for p, (d, lo, hi) in r["diff_ci"].items()]
        lines.append(f"  {m:<20} " + "  ".join(cells))
    if "dont_know_unanswerable" in res:
        dk = res["dont_know_unanswerable"]
        lines.append("dont_know_unanswerable: " + ", ".join(f"{k} {v:.2f}" for k, v in dk.items()))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="an ingested home (corpus + qa2)")
    ap.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "metric_agreement.json"
    )
    args = ap.parse_args()
    settings = load_settings(home=args.home)
    sets = {name: load_dataset(path) for name, path in SETS.items()}
    every = [c for cs in sets.values() for c in cs]
    stored = {r["id"]: r[COLUMN] for r in json.loads(STORED.read_text())["rows"]}
    qwen = {r["id"]: r["answer"] for r in map(json.loads, QWEN.read_text().splitlines())}
    labels: dict[str, dict[str, bool]] = {m: {} for m in MODELS}
    for row in map(json.loads, LABELS.read_text().splitlines()):
        labels[row["model"]][row["id"]] = bool(row["correct"])
    passages, embedder = retrieved(settings, every)
    results: dict[str, Any] = {"configs": CONFIGS, "sets": {}, "models": {}, "examples": {}}

    def score(cases: Sequence[Case], by_id: dict[str, str]) -> dict[str, dict[str, float]]:
        obs = [Observation(c, by_id[c.id], tuple(passages[c.id])) for c in cases if c.id in by_id]
        rows = answer_metrics(obs, embedder.encode)
        return {o.case.id: r for o, r in zip(obs, rows, strict=True)}

    for name, cases in sets.items():
        texts = answers(cases, stored, passages)
        scored = {k: score(cases, by_id) for k, by_id in texts.items()}
        results["sets"][name] = evaluate_set(cases, scored, labels["gemma"])
        print(table(name, results["sets"][name]))
        scored["qwen"] = score(cases, qwen)
        results["models"][name] = compare_models(cases, scored, labels)
        if results["models"][name]["questions"]:
            print(models_table(name, results["models"][name]))
        results["examples"][name] = {k: texts[k][cases[1].id] for k in CONFIGS}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
