"""POST /v1/retrieve: the passages a question would be answered from, best first.

``k``, ``min_score`` and the search options default to the serving configuration in force (the
promoted one, if any), as in chat; the request's fields override them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from service import rag
from service.deps import State
from service.errors import ApiError, error_responses
from service.paths import indexed_filters, public_path
from service.schemas import RetrieveRequest, RetrieveResponse

router = APIRouter()


@router.post("/v1/retrieve", response_model=RetrieveResponse, responses=error_responses(400))
async def retrieve(req: RetrieveRequest, state: State) -> dict[str, Any]:
    k = req.overrides().get("k", 0)
    if k > state.settings.service.max_k:
        raise ApiError(400, f"k is at most {state.settings.service.max_k}", param="k")
    serving, _ = state.serving_config()
    try:
        hits = await run_in_threadpool(
            rag.retrieve_serving,
            state.embedder,
            state.index,
            req.query,
            rag.with_retrieval(serving, **req.overrides()),
            filters=indexed_filters(req.filters, state.settings.home),
        )
    except ValueError as e:
        raise ApiError(400, str(e), param="filters") from e
    return {
        "object": "list",
        "data": [
            {
                "chunk_id": h.chunk_id,
                "doc_id": h.doc_id,
                "source": public_path(h.source, state.settings.home),
                "page": h.page,
                "heading": rag.heading_text(h),
                "score": round(float(h.score), 4),
                "text": h.text,
            }
            for h in hits
        ],
    }
