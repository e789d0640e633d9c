"""Honest comparison: each configuration against the baseline on the same questions.

A mean that is 0.02 higher on twenty questions is usually noise. Every metric gets the mean
paired difference (candidate minus baseline, question by question) and a paired bootstrap 95%
confidence interval; a configuration is ``better`` only when that interval excludes zero in the
metric's good direction, and only such a configuration can win. The results files (results.json,
results.csv, summary.md) are assembled here from the rows, so every number in them comes from
the same place.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

RESAMPLES = 2000
BOOTSTRAP_SEED = 20240601  # fixed: the same rows always give the same intervals
# Below this many paired questions nothing is called better or worse: a percentile bootstrap
# on n pairs excludes 0 whenever all n differences share a sign, which pure noise does with
# probability 1/2^n per direction (1 in 4 for two questions); at 5 it is 3%, near nominal.
MIN_PAIRS = 5


@dataclass(frozen=True)
class Comparison:
    """Candidate vs baseline on one metric over the questions both have a value for."""

    n: int
    mean: float
    baseline_mean: float
    diff: float
    ci_low: float
    ci_high: float
    better: bool
    worse: bool

    def as_dict(self) -> dict[str, Any]:
        return {k: _finite(v) for k, v in asdict(self).items()}


def _finite(v: Any) -> Any:
    """JSON has no NaN: missing values are written as null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def paired_bootstrap(
    candidate: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    higher_is_better: bool = True,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> Comparison:
    """Mean paired difference with a percentile bootstrap CI over resampled questions.

    Questions, not answers, are resampled: the pairs stay together, so question difficulty (the
    largest source of variance) cancels out of the difference.
    """
    a = np.asarray(candidate, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired samples must have the same length")
    n = len(a)
    if n == 0:
        nan = float("nan")
        return Comparison(0, nan, nan, nan, nan, nan, False, False)
    d = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    means = d[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = (float(x) for x in np.percentile(means, [tail, 100 - tail]))
    diff = float(d.mean())
    if np.all(d == d[0]):  # no spread: the interval is the point, exactly (no rounding noise)
        low = high = diff
    enough = n >= MIN_PAIRS
    up, down = enough and low > 0, enough and high < 0
    return Comparison(
        n=n,
        mean=float(a.mean()),
        baseline_mean=float(b.mean()),
        diff=diff,
        ci_low=low,
        ci_high=high,
        better=up if higher_is_better else down,
        worse=down if higher_is_better else up,
    )


def by_case(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, float]:
    """Case id -> value of ``metric`` for the rows of one configuration (missing values left out)."""
    out = {}
    for r in rows:
        v = r["metrics"].get(metric)
        if v is not None and math.isfinite(v):
            out[r["case"]] = float(v)
    return out


def compare(
    rows: Sequence[Mapping[str, Any]],
    baseline_rows: Sequence[Mapping[str, Any]],
    metric: str,
    *,
    higher_is_better: bool = True,
) -> Comparison:
    """``rows`` (one configuration) against ``baseline_rows`` on the questions both have."""
    mine, base = by_case(rows, metric), by_case(baseline_rows, metric)
    common = [c for c in mine if c in base]
    return paired_bootstrap(
        [mine[c] for c in common], [base[c] for c in common], higher_is_better=higher_is_better
    )


def mean_metrics(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, float]:
    """Per-metric mean over the rows that have it; metrics no row has are left out."""
    out = {}
    for name in names:
        values = list(by_case(rows, name).values())
        if values:
            out[name] = float(np.mean(values))
    return out


def latency_p50(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """Median seconds per answer over the rows where the model was actually asked."""
    values = [r["latency_s"] for r in rows if r.get("called")]
    return float(np.median(values)) if values else None


def tokens_mean(rows: Sequence[Mapping[str, Any]]) -> float | None:
    values = [r["completion_tokens"] for r in rows if r.get("called")]
    return float(np.mean(values)) if values else None


def pick_winner(
    configs: Sequence[Mapping[str, Any]],
    primary: str,
    *,
    higher_is_better: bool = True,
    n_questions: int | None = None,
) -> str:
    """The best configuration on ``primary`` among those significantly better than the baseline.

    Without one the baseline stays: changing what serves needs evidence, not a lucky mean.
    With ``n_questions``, only configurations evaluated on every question may win (halving's
    early exits were judged on a subset).
    """
    baseline = next(c for c in configs if c["baseline"])
    sign = 1.0 if higher_is_better else -1.0
    best, best_key = baseline["id"], -math.inf
    for c in configs:
        cmp = c["vs_baseline"].get(primary)
        if c["baseline"] or cmp is None or not cmp["better"]:
            continue
        if n_questions is not None and c["questions"] < n_questions:
            continue
        key = sign * c["metrics"][primary]
        if key > best_key:
            best, best_key = c["id"], key
    return str(best)


# --- results files ------------------------------------------------------------------------------


def build_results(
    *,
    configs: Sequence[Any],
    rows_of: Callable[[Any], list[dict[str, Any]]],
    metrics: Mapping[str, Any],
    n_questions: int,
    run: dict[str, Any],
) -> dict[str, Any]:
    """results.json's content: run facts, metric catalogue, per-config summaries, winner, rows.

    ``configs`` are ``eval.sweep.Config``; ``metrics`` is ``eval.metrics.METRICS``, the catalogue
    that says which way each metric is good.
    """
    catalogue = metrics
    rows = [r for c in configs for r in rows_of(c)]
    seen = {name for r in rows for name in r["metrics"]}
    names = [n for n in catalogue if n in seen] + sorted(seen - set(catalogue))
    higher = {n: catalogue[n].higher_is_better if n in catalogue else True for n in names}
    base = next(c for c in configs if c.baseline)
    base_rows = rows_of(base)
    summaries = []
    for c in configs:
        mine = rows_of(c)
        summaries.append(
            {
                "id": c.id,
                "baseline": c.baseline,
                "label": c.label(),
                **c.params,
                "questions": len(mine),
                "metrics": mean_metrics(mine, names),
                "vs_baseline": {
                    n: compare(mine, base_rows, n, higher_is_better=higher[n]).as_dict()
                    for n in names
                },
                "eliminated": len(mine) < n_questions,
                "latency_p50": latency_p50(mine),
                "tokens_mean": tokens_mean(mine),
            }
        )
    primary = run["primary_metric"]
    winner = pick_winner(
        summaries, primary, higher_is_better=higher.get(primary, True), n_questions=n_questions
    )
    return {
        "run": {**run, "baseline": base.id},
        "metrics": {
            n: {
                "description": catalogue[n].description if n in catalogue else "",
                "higher_is_better": higher[n],
                "needs_judge": bool(catalogue[n].needs_judge) if n in catalogue else False,
            }
            for n in names
        },
        "configs": summaries,
        "winner": winner,
        "rows": rows,
    }


ROW_COLUMNS = (
    "config", "baseline", "case", "question", "template", "temperature", "top_p", "top_k",
    "max_tokens", "seed", "retrieval_k", "min_score", "model", "index_version", "sources",
    "answer", "finish_reason", "cited", "called", "cached", "latency_s", "prompt_tokens",
    "completion_tokens",
)  # fmt: skip


def csv_rows(results: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """One flat row per config × case: parameters, answer, measurements, one column per metric."""
    names = list(results["metrics"])
    out = []
    for r in results["rows"]:
        flat = {k: r["params"][k] if k in r["params"] else r.get(k) for k in ROW_COLUMNS}
        flat["sources"] = ";".join(p["source"] for p in r["passages"])
        flat["cited"] = ";".join(str(n) for n in r["cited"])
        flat.update({n: r["metrics"].get(n) for n in names})
        out.append(flat)
    return [*ROW_COLUMNS, *names], out


def _fmt(v: float | None, digits: int = 3, *, signed: bool = False) -> str:
    return "–" if v is None else f"{v:{'+' if signed else ''}.{digits}f}"


def _ci(v: Mapping[str, Any]) -> str:
    lo, hi = _fmt(v.get("ci_low"), signed=True), _fmt(v.get("ci_high"), signed=True)
    return f"{_fmt(v.get('diff'), signed=True)} [{lo}, {hi}]"


def summary_markdown(results: Mapping[str, Any]) -> str:
    """summary.md: the decision first, then one line per configuration."""
    run, configs, primary = results["run"], results["configs"], results["run"]["primary_metric"]
    by_id = {c["id"]: c for c in configs}
    winner, base = by_id[results["winner"]], by_id[run["baseline"]]
    lines = [
        f"# Evaluation of {run.get('dataset') or 'the dataset'}",
        "",
        f"{run['cases']} questions, model `{run['model']}`, index v{run['index_version']}, "
        f"primary metric `{primary}`.",
        "",
    ]
    if winner["baseline"]:
        lines.append(
            f"**No configuration beat the baseline beyond noise**: `{base['id']}` "
            f"({base['label']}) stays, {primary} {_fmt(base['metrics'].get(primary))}."
        )
    else:
        v = winner["vs_baseline"][primary]
        lines.append(
            f"**Winner: `{winner['id']}`** ({winner['label']}): {primary} {_fmt(v['mean'])} vs "
            f"{_fmt(v['baseline_mean'])} for the baseline, {_fmt(v['diff'], signed=True)} "
            f"(95% CI {_fmt(v['ci_low'], signed=True)} to {_fmt(v['ci_high'], signed=True)}, "
            f"{v['n']} paired questions)."
        )
    lines += [
        "",
        f"| config | configuration | n | {primary} | Δ vs baseline [95% CI] | p50 s | tokens |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in configs:
        v = c["vs_baseline"].get(primary) or {}
        delta = "baseline" if c["baseline"] else _ci(v) + (" ✓" if v.get("better") else "")
        mark = " **(winner)**" if c["id"] == results["winner"] else ""
        lines.append(
            f"| `{c['id']}`{mark} | {c['label']} | {c['questions']} | "
            f"{_fmt(c['metrics'].get(primary))} | {delta} | {_fmt(c['latency_p50'], 2)} | "
            f"{_fmt(c['tokens_mean'], 1)} |"
        )
    cache = run["cache"]
    lines += [
        "",
        f"Cache: {cache['generation_hits']} generations reused, {cache['generation_misses']} "
        f"computed; {run['resumed']} rows resumed; {run['seconds']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def write_outputs(out_dir: Path, results: Mapping[str, Any]) -> None:
    """results.json, results.csv and summary.md, each replaced atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic(out_dir / "results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    header, rows = csv_rows(results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _atomic(out_dir / "results.csv", buf.getvalue())
    _atomic(out_dir / "summary.md", summary_markdown(results))


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
