"""Answer verification without a model: do right answers score as supported and wrong ones not?

For each question of ``qa/dev.jsonl`` and the answerable ones of ``qa2`` (bench/retrieval_quality.py's
index, with its distractors), the serving retrieval gives the passages the model would read. Its
``ground_truth`` stands in for a correct answer: each of its sentences should be supported by
those passages (only questions whose evidence is in them count). Two wrong answers should not
be: another question's ground truth from the same document (same topic, wrong facts: the hard
case) and one from another document. A sentence's score is its best passage's support, as the
service decides "supported"; the table gives the AUC of right against wrong sentences for the
lexical term, the cosine and mixes of the two (``service.verify``), and at the chosen mix the
share of each kind on the right side of candidate ``rag.verify.min_support`` values, per set. "attributed" is the share of right sentences whose
best passage is the one holding the evidence.

    RAGTUNE_EMBED__THREADS=1 .venv/bin/python bench/verify.py [--home /tmp/rq-final]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retrieval_quality import DATA, build_index  # noqa: E402  (bench/ is sys.path[0])

from eval.strings import has_evidence  # noqa: E402
from ingest.search import retrieve  # noqa: E402
from ingest.windows import build_windows  # noqa: E402
from service import verify  # noqa: E402
from service.settings import VerifySettings  # noqa: E402

SETS = {"dev": DATA / "qa" / "dev.jsonl", "qa2": DATA / "qa2" / "qa.jsonl"}
WEIGHTS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 1.0)  # LEXICAL's candidates; 0: cosine only
THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7)  # min_support's candidates, at LEXICAL


def load(path: Path) -> list[dict]:
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [c for c in cases if c.get("evidence")]  # unanswerable ones have none


def auc(pos: list[float], neg: list[float]) -> float:
    """P(a right sentence scores above a wrong one), ties counting half."""
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def wrong_answers(cases: list[dict], i: int) -> dict[str, str]:
    """Ground truths of the next question on the same document and of one on another."""
    ring = cases[i + 1 :] + cases[:i]
    same = next((c for c in ring if c["source"] == cases[i]["source"]), None)
    other = next(c for c in ring if c["source"] != cases[i]["source"])
    return {"other": other["ground_truth"], **({"same": same["ground_truth"]} if same else {})}


def score(answer: str, passages: list[str], embedder) -> tuple[np.ndarray, np.ndarray]:
    """(sentences, passages) lexical share and rescaled cosine of ``answer``'s sentences."""
    sentences = [verify.CITE.sub("", s.text) for s in verify.split_sentences(answer)]
    lexical = verify.lexical_support(sentences, passages)
    return lexical, verify.semantic_support(sentences, passages, embedder)


def best(kept: dict, kind: str, w: float) -> list[float]:
    """Each sentence's best support over its passages with lexical weight ``w``."""
    return [float(np.max(w * lx + (1 - w) * cs)) for lx, cs in kept[kind]]


def accuracy(kept: dict, t: float) -> dict[str, float]:
    """At threshold ``t``: the share of right sentences supported, of wrong ones not."""
    scores = {kind: best(kept, kind, verify.LEXICAL) for kind in kept}
    out = {"right": float(np.mean([s >= t for s in scores["right"]]))}
    out |= {k: float(np.mean([s < t for s in scores[k]])) for k in ("same", "other")}
    return {k: round(v, 3) for k, v in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path("/tmp/ragtune-quality"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "verify.json")
    args = ap.parse_args()
    settings, embedder, index = build_index(args.home)
    options = settings.rag.retrieval
    threshold = VerifySettings().min_support
    rows = []
    for name, path in SETS.items():
        cases = load(path)
        kept = {"right": [], "same": [], "other": []}  # (lexical, cosine) per sentence
        attributed = []
        for i, case in enumerate(cases):
            hits = retrieve(
                embedder, index, case["question"], options.k, options, min_score=options.min_score
            )
            passages = [w.text for w in build_windows(hits, index, options.window_tokens)]
            holding = [j for j, p in enumerate(passages) if has_evidence(p, case["evidence"])]
            if not holding:
                continue  # retrieval missed: no passage can support the right answer
            lex, cos = score(case["ground_truth"], passages, embedder)
            kept["right"] += zip(lex, cos, strict=True)
            top = np.argmax(verify.LEXICAL * lex + (1 - verify.LEXICAL) * cos, axis=1)
            attributed += [int(b) in holding for b in top]
            for kind, text in wrong_answers(cases, i).items():
                kept[kind] += zip(*score(text, passages, embedder), strict=True)

        rows.append(
            {
                "set": name,
                "questions": len(cases),
                "right_sentences": len(kept["right"]),
                "wrong_sentences": {k: len(kept[k]) for k in ("same", "other")},
                "attributed": round(float(np.mean(attributed)), 3),
                "auc": {
                    kind: {
                        f"{w:g}": round(auc(best(kept, "right", w), best(kept, kind, w)), 3)
                        for w in WEIGHTS
                    }
                    for kind in ("same", "other")
                },
                "accuracy": {f"{t:g}": accuracy(kept, t) for t in THRESHOLDS},
            }
        )
    index.close()
    print(f"support = {verify.LEXICAL:g} * lexical + {1 - verify.LEXICAL:g} * cosine "
          f"rescaled [{verify.COS_FLOOR:g}, {verify.COS_CEIL:g}]; min_support {threshold:g}")  # fmt: skip
    print("AUC of right against wrong sentences, by the lexical weight (0: cosine only):")
    print(f"{'set':<4} {'right':>5} {'attrib':>6}  wrong  " + " ".join(f"{w:<6g}" for w in WEIGHTS))
    for row in rows:
        for kind in ("same", "other"):
            aucs = " ".join(f"{row['auc'][kind][f'{w:g}']:<6.3f}" for w in WEIGHTS)
            print(f"{row['set']:<4} {row['right_sentences']:>5} {row['attributed']:>6.3f}  "
                  f"{kind:<5}  {aucs}")  # fmt: skip
    print("share right supported / wrong (same doc) unsupported / wrong (other doc) unsupported:")
    print(f"{'set':<4} " + " ".join(f"{'t=' + format(t, 'g'):<16}" for t in THRESHOLDS))
    for row in rows:
        cells = [row["accuracy"][f"{t:g}"] for t in THRESHOLDS]
        print(f"{row['set']:<4} " + " ".join(
            f"{c['right']:.2f}/{c['same']:.2f}/{c['other']:.2f}  " for c in cells))  # fmt: skip
    body = {
        "formula": {"lexical": verify.LEXICAL, "cos_floor": verify.COS_FLOOR,
                    "cos_ceil": verify.COS_CEIL, "min_support": threshold},
        "rows": rows,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(body, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
