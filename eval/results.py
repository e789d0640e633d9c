"""The results files of a sweep: results.json, results.csv and summary.md, built from the rows.

All three are assembled here from the same rows and the same ``eval.stats`` comparisons, so every
number in them comes from one place. Each file is replaced atomically, so a reader never sees
half of one.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from eval.stats import (
    DEFAULT_BOOTSTRAP,
    Bootstrap,
    ci_name,
    compare,
    latency_p50,
    mean_metrics,
    pick_winner,
    tokens_mean,
)
from eval.sweep import LABEL_PATHS
from service.tunables import tunables


def build_results(
    *,
    configs: Sequence[Any],
    rows_of: Callable[[Any], list[dict[str, Any]]],
    metrics: Mapping[str, Any],
    n_questions: int,
    run: dict[str, Any],
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
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
    swept = swept_paths(configs)
    summaries = []
    for c in configs:
        mine = rows_of(c)
        summaries.append(
            {
                "id": c.id,
                "baseline": c.baseline,
                "label": c.label([*LABEL_PATHS, *(p for p in swept if p not in LABEL_PATHS)]),
                **c.params,
                "questions": len(mine),
                "metrics": mean_metrics(mine, names),
                "vs_baseline": {
                    n: compare(
                        mine, base_rows, n, higher_is_better=higher[n], bootstrap=bootstrap
                    ).as_dict()
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
        "run": {**run, "baseline": base.id, "confidence_level": bootstrap.level},
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


# results.csv's columns: the row's facts around every tunable's path (from service.tunables).
ROW_COLUMNS = (
    "config", "baseline", "case", "question", *(t.path for t in tunables()), "seed", "model",
    "index_version", "sources", "answer", "finish_reason", "cited", "called", "cached",
    "latency_s", "prompt_tokens", "completion_tokens",
)  # fmt: skip


def swept_paths(configs: Sequence[Any]) -> list[str]:
    """The tunables whose value differs between ``configs``: what the run compared."""
    return [t.path for t in tunables() if len({repr(c.params.get(t.path)) for c in configs}) > 1]


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
    ci = ci_name(run.get("confidence_level"))
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
            f"({ci} {_fmt(v['ci_low'], signed=True)} to {_fmt(v['ci_high'], signed=True)}, "
            f"{v['n']} paired questions)."
        )
    lines += [
        "",
        f"| config | configuration | n | {primary} | Δ vs baseline [{ci}] | p50 s | tokens |",
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
