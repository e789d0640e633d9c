"""Liveness and readiness (open to probes), and the model list (a query key).

``/readyz`` answers probes without a key. What it serves says which model and index version are
loaded, which ``/v1/models`` keeps to key holders; so with keys configured a probe gets its
status alone, and the details only come with a valid key (a wrong one is refused as anywhere).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service.deps import State
from service.errors import GUARDED, error_body, error_responses
from service.schemas import ModelList
from service.security import QUERY, Guard

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
    if not _may_see_details(request):
        return {"status": "ready"}
    return {"status": "ready", "index_version": state.index.version, "model": state.llm.name}


def _may_see_details(request: Request) -> bool:
    guard: Guard = request.app.state.guard
    if not guard.keys:
        return True  # the API is open: nothing to keep
    if "authorization" not in request.headers:
        return False  # a probe
    guard.check(request, "query")  # 401 for a wrong key, 429 when throttled, as any route
    return True


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
