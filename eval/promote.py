"""Promote a configuration from an evaluation run to serving; list and roll back promotions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service import tunables
from service.serving import ServingStore


def load_results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "results.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise ValueError(f"{path} not found: is {run_dir} an `eval run` output folder?") from e
    return data


def choose(results: dict[str, Any], config_id: str | None) -> dict[str, Any]:
    """The configuration to promote: ``config_id``, else the run's winner."""
    configs = {c["id"]: c for c in results.get("configs", [])}
    wanted = config_id or results.get("winner")
    if wanted is None:
        raise ValueError("the run has no winner; name one with --config")
    if wanted not in configs:
        raise ValueError(f"no configuration '{wanted}' in the run (have: {', '.join(configs)})")
    return configs[wanted]


def promote(home: Path, run_dir: Path, config_id: str | None = None) -> tuple[int, dict[str, Any]]:
    results = load_results(run_dir)
    config = choose(results, config_id)
    values = tunables.params_of(config)
    baseline = next((c for c in results.get("configs", []) if c.get("baseline")), config)
    serving_chunking = {
        p: tunables.params_of(baseline).get(p) for p in ("chunk.size", "chunk.overlap")
    }
    chunking = {p: values.get(p) for p in serving_chunking}
    if chunking != serving_chunking:
        raise ValueError(
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


def history(home: Path) -> list[dict[str, Any]]:
    return ServingStore(home).history()


def rollback(home: Path) -> int:
    return ServingStore(home).rollback()
