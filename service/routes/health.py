"""Liveness and readiness (open to probes), and the model list (a query key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service.deps import State
from service.errors import GUARDED, error_body, error_responses
from service.schemas import ModelList
from service.security import QUERY

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None, responses=error_responses(503))
async def readyz(request: Request) -> Any:
    state = getattr(request.app.state, "ragtune", None)
    if state is None:
        return JSONResponse(error_body(503, "loading index and model"), 503)
    if not await run_in_threadpool(state.llm.ready):
        return JSONResponse(error_body(503, f"model backend '{state.backend}' is not ready"), 503)
    return {"status": "ready", "index_version": state.index.version, "model": state.llm.name}


@router.get("/v1/models", response_model=ModelList, dependencies=[QUERY], responses=GUARDED)
async def models(state: State) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": state.llm.name,
                "object": "model",
                "created": int(state.started),
                "owned_by": "ragtune",
            }
        ],
    }
