"""``eval models``: each candidate backend answers the dataset; the matrix scores and ranks them.

A candidate is one ``eval.run.run_sweep`` of the serving configuration with the candidate's
``llm`` section in place of the configured one: the same answer path, scoring, eval cache and
resumable rows as ``eval run``, kept in ``OUT/candidates/<name>/`` (each with its own
results.json). This module turns those runs into the matrix's raw values, scores them with
``eval.matrix`` and writes models.json and models.csv; ``eval.report_models`` renders the rest.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval.candidates import Candidate, ModelsSpec
from eval.dataset import Case
from eval.judge import JudgeConfig
from eval.matrix import Factor, factors, score_matrix
from eval.report_data import by_path
from eval.run import Progress, run_sweep, serving_rag
from eval.sweep import baseline_config
from ingest.embed import Embedder
from service.settings import Settings
from service.tunables import tunables

# The serving parameters models.json records for the run: every serve-scope tunable and the seed.
CONFIG_KEYS = (*(t.path for t in tunables() if t.scope == "serve"), "seed")


@dataclass(frozen=True)
class CandidateRun:
    """What one candidate's run produced: its results.json content and where it lives."""

    candidate: Candidate
    results: dict[str, Any]
    run_dir: Path


def measure(run: CandidateRun) -> dict[str, float | None]:
    """Every factor's raw value for one candidate: metric means, speed, configured numbers.

    Latency and throughput count only answers that called the model (with nothing retrieved the
    answer is the template's don't-know and costs no model time); cached answers keep the timings
    they were measured with.
    """
    config = run.results["configs"][0]
    called = [r for r in run.results["rows"] if r.get("called")]
    seconds = sum(float(r["latency_s"]) for r in called)
    tokens = sum(int(r["completion_tokens"]) for r in called)
    p50 = config.get("latency_p50")
    window = run.candidate.context_window or run.results["run"].get("context_window")
    return {
        **config["metrics"],
        "latency_p50_ms": None if p50 is None else 1000.0 * p50,
        "tokens_per_s": tokens / seconds if seconds > 0 else None,
        "cost_per_1k_tokens": run.candidate.cost_per_1k_tokens,
        "context_window": None if window is None else float(window),
    }


def run_candidates(
    settings: Settings,
    spec: ModelsSpec,
    cases: Sequence[Case],
    out_dir: Path,
    *,
    judge: JudgeConfig | None = None,
    progress: Progress | None = None,
    embedder: Embedder | None = None,
    on_start: Callable[[Candidate], None] | None = None,
    dataset: str = "",
) -> list[CandidateRun]:
    """Each candidate over ``cases`` with the serving configuration, one after the other.

    One at a time on purpose: two llama.cpp models sharing the CPU slow each other ~50x, and the
    latency factor must measure the candidate, not the contention.
    """
    from ingest.embed import load_embedder

    embedder = embedder or load_embedder(settings.embed)  # loaded once for every candidate
    total = len(spec.candidates) * len(cases)
    runs = []
    for i, candidate in enumerate(spec.candidates):
        if on_start is not None:
            on_start(candidate)
        offset = i * len(cases)

        def tick(done: int, _planned: int, offset: int = offset) -> None:
            if progress is not None:
                progress(offset + done, total)

        run_dir = out_dir / "candidates" / candidate.name
        mine = settings.with_llm(candidate.llm)  # a chat model gets the chat template
        config = baseline_config(serving_rag(mine))
        result = run_sweep(
            mine,
            cases,
            [config],
            run_dir,
            judge=judge,
            progress=tick,
            embedder=embedder,
            dataset=dataset,
        )
        tick(len(cases), total)  # resumed rows do not tick
        runs.append(CandidateRun(candidate, result.results, run_dir))
    return runs


def build_selection(
    spec: ModelsSpec, runs: Sequence[CandidateRun], run_info: Mapping[str, Any]
) -> dict[str, Any]:
    """models.json's content: the run, the factors with weights and directions, the scored
    candidates best first, the winner, warnings about what could not be measured, and the rows.
    """
    catalogue = factors()
    measured = {r.candidate.name: measure(r) for r in runs}
    directions = {f: catalogue[f].higher_is_better for f in spec.weights}
    scored = score_matrix(measured, spec.weights, directions)
    by_name = {r.candidate.name: r for r in runs}
    warnings = []
    for f, w in spec.weights.items():
        missing = [n for n in measured if measured[n].get(f) is None]
        if missing and w > 0:
            who = "any candidate" if len(missing) == len(measured) else ", ".join(missing)
            warnings.append(f"{f}: no value for {who}; counted as 0 (the worst) in the score")
    candidates = []
    for s in scored:
        over = over_budget(measured[s.name], spec.budgets, catalogue)
        run = by_name[s.name]
        config = run.results["configs"][0]
        candidates.append(
            {
                "name": s.name,
                "rank": s.rank,
                "score": s.score,
                "backend": run.candidate.llm.backend,
                "model": run.results["run"].get("model"),
                "profile": run.candidate.profile(),
                "raw": s.raw,
                "normalized": s.normalized,
                "contributions": s.contributions,
                "measured": measured[s.name],
                "questions": config["questions"],
                "called": sum(1 for r in run.results["rows"] if r.get("called")),
                "run_dir": str(run.run_dir),
                "over_budget": over,
            }
        )
    # A candidate outside a budget cannot win: the ones within come first, each group by rank.
    candidates.sort(key=lambda c: bool(c["over_budget"]))
    if spec.budgets and all(c["over_budget"] for c in candidates):
        warnings.append("no candidate is within every budget; the best by score is shown first")
    first = candidates[0]
    return {
        "run": dict(run_info),
        "factors": {
            f: {
                "weight": w,
                "higher_is_better": catalogue[f].higher_is_better,
                "direction": catalogue[f].direction,
                "unit": catalogue[f].unit,
                "description": catalogue[f].description,
            }
            for f, w in spec.weights.items()
        },
        "candidates": candidates,
        "budgets": dict(spec.budgets),
        "winner": first["name"],
        "tied": [
            c["name"]
            for c in candidates
            if c["rank"] == first["rank"] and bool(c["over_budget"]) == bool(first["over_budget"])
        ],
        "warnings": warnings,
        "rows": [{"candidate": r.candidate.name, **row} for r in runs for row in r.results["rows"]],
    }


def over_budget(
    measured: Mapping[str, float | None],
    budgets: Mapping[str, float],
    catalogue: Mapping[str, Factor],
) -> list[str]:
    """The budgets ``measured`` breaks, each as "factor value > limit" (unmeasured breaks it)."""
    out = []
    for f, limit in budgets.items():
        value = measured.get(f)
        higher = catalogue[f].higher_is_better
        if value is None:
            out.append(f"{f} unmeasured")
        elif (value < limit) if higher else (value > limit):
            out.append(f"{f} {value:,.6g} {'<' if higher else '>'} {limit:,.6g}")
    return out


def run_info(
    runs: Sequence[CandidateRun], dataset: str, judge: JudgeConfig | None, t0: float
) -> dict[str, Any]:
    """What the candidates shared: the dataset, the serving configuration, the index, the judge."""
    first = runs[0].results
    config = {k: by_path(first["configs"][0]).get(k) for k in CONFIG_KEYS}
    # An unset template follows each model's prompt style, so candidates may differ in it.
    templates = sorted({str(by_path(r.results["configs"][0]).get("rag.template")) for r in runs})
    if len(templates) > 1:
        config["rag.template"] = " or ".join(templates) + " by the model's prompt style"
    return {
        "dataset": dataset,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "cases": first["run"]["cases"],
        "config": config,
        "index_version": first["run"]["index_version"],
        "serving_version": first["run"].get("serving_version"),
        "judge": None
        if judge is None
        else {"base_url": judge.base_url, "model": judge.model, "local": judge.local},
        "resumed": sum(r.results["run"]["resumed"] for r in runs),
        "computed": sum(r.results["run"]["computed"] for r in runs),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def csv_text(selection: Mapping[str, Any]) -> str:
    """models.csv: one row per candidate, best first, each factor's raw and normalized value."""
    names = list(selection["factors"])
    header = ["rank", "candidate", "score", "backend", "model", "questions"]
    header += [col for f in names for col in (f, f"{f}_normalized")]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for c in selection["candidates"]:
        row = [c["rank"], c["name"], round(c["score"], 6), c["backend"], c["model"]]
        row.append(c["questions"])
        row += [v for f in names for v in (c["raw"][f], c["normalized"][f])]
        writer.writerow(row)
    return buf.getvalue()


def write_selection(out_dir: Path, selection: Mapping[str, Any], summary: str) -> None:
    """models.json, models.csv and models.md, each replaced atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(selection, indent=2, ensure_ascii=False) + "\n"
    for name, content in (("models.json", text), ("models.csv", csv_text(selection))):
        _atomic(out_dir / name, content)
    _atomic(out_dir / "models.md", summary)


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
