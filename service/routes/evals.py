"""Evaluation runs and promotions through the API: what ``ragtune eval promote | history |
rollback`` do, and the run folders ``ragtune eval run`` wrote, read by id.

A run id is a plain folder name under the runs directory (``eval.runs_dir``, else
``HOME/eval/runs``); anything else is a 404, so no request can read outside it. Promotions go
through ``service.runs.promote`` and the serving store, as the commands do, and the running
service applies them to its next request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from pydantic import ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from service import runs
from service.deps import AppState, State
from service.errors import ApiError, error_responses
from service.serving import ServingError
from service.text import RequestBody

router = APIRouter(tags=["evaluation"])


class PromotionRequest(RequestBody):
    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1, description="A run's `id` (its folder name).")
    config_id: str | None = Field(None, description="Configuration to serve; null: the winner.")


# --- plain functions ---------------------------------------------------------------------------


def run_dir(state: AppState, run_id: str) -> Path:
    try:
        return runs.run_path(runs.runs_dir(state.settings), run_id)
    except runs.RunNotFound as e:
        raise ApiError(404, str(e), param="run_id") from e


def run_object(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": summary["id"],
        "object": "eval.run",
        **{k: v for k, v in summary.items() if k != "id"},
        "report_url": f"/v1/eval/runs/{quote(summary['id'], safe='')}/report",
    }


def promotion_object(record: dict[str, Any], current: int) -> dict[str, Any]:
    """A serving store record as the API shows it (``serving_version`` is its version)."""
    return {
        "object": "eval.promotion",
        **record,
        "serving_version": record["version"],
        "current": record["version"] == current,
    }


def promote(state: AppState, req: PromotionRequest) -> dict[str, Any]:
    path = run_dir(state, req.run_id)
    try:
        version, _ = runs.promote(state.settings.home, path, req.config_id)
    except runs.UnknownConfig as e:
        raise ApiError(400, str(e), param="config_id", code="unknown_config") from e
    except runs.PromotionRefused as e:
        raise ApiError(409, str(e), param="config_id", code="not_promotable") from e
    except ServingError as e:  # parameters the serving configuration cannot take
        raise ApiError(409, str(e), param="config_id", code="not_promotable") from e
    except ValueError as e:  # results.json that is not JSON
        raise ApiError(409, f"run '{req.run_id}': {e}", param="run_id") from e
    return promotion_object(state.serving.record(version), version)


def history(state: AppState) -> dict[str, Any]:
    current = state.serving.current_version()
    return {
        "object": "list",
        "current_version": current,
        "data": [promotion_object(r, current) for r in state.serving.history()],
    }


def rollback(state: AppState) -> dict[str, Any]:
    try:
        version = state.serving.rollback()
    except ServingError as e:
        raise ApiError(409, str(e), code="nothing_to_roll_back") from e
    return {
        "object": "eval.rollback",
        "serving_version": version,
        "current": promotion_object(state.serving.record(version), version) if version else None,
    }


# --- routes ------------------------------------------------------------------------------------


@router.get(
    "/v1/eval/runs",
    summary="List evaluation runs",
    response_description="Run folders that have results.json, newest first.",
)
async def list_runs(state: State) -> dict[str, Any]:
    found = await run_in_threadpool(runs.list_runs, runs.runs_dir(state.settings))
    return {"object": "list", "data": [run_object(s) for s in found]}


@router.get(
    "/v1/eval/runs/{run_id}",
    responses=error_responses(404, 409),
    summary="Read a run's results",
    response_description="The run's results.json as written by `ragtune eval run`.",
)
async def read_run(run_id: str, state: State) -> Response:
    path = run_dir(state, run_id) / runs.RESULTS
    raw = await run_in_threadpool(path.read_bytes)
    try:
        json.loads(raw)  # sent as written (no re-encoding of a large file), once known to parse
    except ValueError as e:
        raise ApiError(409, f"run '{run_id}': unreadable results.json: {e}") from e
    return Response(raw, media_type="application/json")


@router.get(
    "/v1/eval/runs/{run_id}/report",
    responses=error_responses(404),
    summary="A run's HTML report",
    response_description="report.html, one self-contained page.",
    response_class=FileResponse,
)
async def read_report(run_id: str, state: State) -> FileResponse:
    report = run_dir(state, run_id) / runs.REPORT
    if not report.is_file():
        raise ApiError(404, f"run '{run_id}' has no report.html", param="run_id")
    return FileResponse(report, media_type="text/html; charset=utf-8")


@router.post(
    "/v1/eval/promotions",
    responses=error_responses(400, 404, 409),
    status_code=201,
    summary="Serve a run's configuration",
    response_description="The promotion record; its `serving_version` answers from now on.",
)
async def create_promotion(req: PromotionRequest, state: State) -> dict[str, Any]:
    return await run_in_threadpool(promote, state, req)


@router.get(
    "/v1/eval/promotions",
    summary="List promotions",
    response_description="Every promoted configuration, oldest first; `current` marks the one "
    "in force.",
)
async def list_promotions(state: State) -> dict[str, Any]:
    return await run_in_threadpool(history, state)


@router.post(
    "/v1/eval/rollback",
    responses=error_responses(409),
    summary="Serve the previous configuration",
    response_description="The serving version now in force (0: the settings' own).",
)
async def roll_back(state: State) -> dict[str, Any]:
    return await run_in_threadpool(rollback, state)
