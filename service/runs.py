"""Evaluation run folders as the service reads them: listed, opened by id, promoted to serving.

``ragtune eval run`` writes each run to a folder under the runs directory (``results.json``,
``report.html``, ...). Promoting one of its configurations only needs ``results.json`` and the
serving store, so it lives here, below ``eval`` in the layering: ``ragtune eval promote`` and
``POST /v1/eval/promotions`` call the same ``promote``. A run id is a plain folder name; anything
that could name a path outside the runs directory is no run at all.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service import tunables
from service.serving import ServingStore
from service.settings import Settings

log = logging.getLogger("ragtune.service")

RESULTS = "results.json"
REPORT = "report.html"


class RunNotFound(LookupError):
    def __str__(self) -> str:  # LookupError would repr() a single argument, quotes and all
        return str(self.args[0]) if self.args else ""


class UnknownConfig(ValueError):
    """The configuration to promote is not in the run (or the run has no winner)."""


class PromotionRefused(ValueError):
    """The configuration exists but cannot be served as a promotion (it needs a re-ingest)."""


def runs_dir(settings: Settings) -> Path:
    """Where run folders go without ``--out``: ``eval.runs_dir``, else ``HOME/eval/runs``."""
    return settings.eval.runs_dir or settings.home / "eval" / "runs"


def is_run_id(name: str) -> bool:
    """A plain folder name: no separator, not ``.``/``..`` or hidden, nothing absolute."""
    return (
        bool(name)
        and Path(name).name == name
        and not name.startswith(".")
        and not any(c in name for c in "/\\\0")
    )


def run_path(runs: Path, run_id: str) -> Path:
    """The folder of run ``run_id`` under ``runs``; ``RunNotFound`` unless it has results.json."""
    path = runs / run_id
    if not is_run_id(run_id) or not (path / RESULTS).is_file():
        raise RunNotFound(f"no evaluation run '{run_id}'")
    return path


def load_results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RESULTS
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ValueError(f"{path} not found: is {run_dir} an `eval run` output folder?") from e
    return data


def list_runs(runs: Path) -> list[dict[str, Any]]:
    """A summary of each run folder under ``runs`` that has results.json, newest first.

    A folder whose results.json cannot be read (a run still being written, a stray file) is
    left out of the list rather than failing it.
    """
    if not runs.is_dir():
        return []
    out = []
    for path in runs.iterdir():
        if not is_run_id(path.name) or not (path / RESULTS).is_file():
            continue
        try:
            out.append(summary(path.name, load_results(path), path / RESULTS))
        except (OSError, ValueError, AttributeError, TypeError) as e:
            log.warning("skipping run folder %s: %s", path, e)
    return sorted(out, key=lambda r: (r["created"], r["id"]), reverse=True)


def summary(run_id: str, results: dict[str, Any], results_path: Path) -> dict[str, Any]:
    """What a list of runs shows of one: when, on what, how many configurations, who won."""
    run = results.get("run") or {}
    return {
        "id": run_id,
        "created": _unix(run.get("created")) or int(results_path.stat().st_mtime),
        "dataset": run.get("dataset"),
        "configs": len(results.get("configs") or []),
        "winner": results.get("winner"),
        "baseline": run.get("baseline"),
        "primary_metric": run.get("primary_metric"),
        "has_report": (results_path.parent / REPORT).is_file(),
    }


def _unix(stamp: object) -> int | None:
    """An ISO 8601 time (the runner writes UTC) as Unix seconds; None if absent or not one."""
    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())


def choose(results: dict[str, Any], config_id: str | None) -> dict[str, Any]:
    """The configuration to promote: ``config_id``, else the run's winner."""
    configs = {c["id"]: c for c in results.get("configs", [])}
    wanted = config_id or results.get("winner")
    if wanted is None:
        raise UnknownConfig("the run has no winner; name one with --config")
    if wanted not in configs:
        raise UnknownConfig(f"no configuration '{wanted}' in the run (have: {', '.join(configs)})")
    return configs[wanted]


def promote(home: Path, run_dir: Path, config_id: str | None = None) -> tuple[int, dict[str, Any]]:
    """Serve ``config_id`` (else the winner) of the run in ``run_dir``: its version and params.

    Only the serve-time tunables are promoted; a configuration that reads a re-chunked index is
    refused (chunking is decided at ingest).
    """
    results = load_results(run_dir)
    config = choose(results, config_id)
    values = tunables.params_of(config)
    baseline = next((c for c in results.get("configs", []) if c.get("baseline")), config)
    serving_chunking = {
        p: tunables.params_of(baseline).get(p) for p in ("chunk.size", "chunk.overlap")
    }
    chunking = {p: values.get(p) for p in serving_chunking}
    if chunking != serving_chunking:
        raise PromotionRefused(
            f"configuration {config['id']} reads a re-chunked index (chunk.size="
            f"{chunking['chunk.size']}, chunk.overlap={chunking['chunk.overlap']}): chunking is "
            "decided at ingest, so set chunk.size/chunk.overlap and re-ingest (ragtune ingest "
            "--sync) instead of promoting it"
        )
    serve = {t.path for t in tunables.tunables() if t.scope == "serve"}
    params = tunables.nest({p: v for p, v in values.items() if p in serve})
    provenance = {
        "run": str(run_dir.resolve()),
        "config": config["id"],
        "dataset": results.get("run", {}).get("dataset"),
        "metrics": config.get("metrics", {}),
    }
    return ServingStore(home).promote(params, provenance), params
