"""POST /v1/retrieve: the passages a question would be answered from, best first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ingest import search
from service import rag
from service.deps import State
from service.errors import ApiError
from service.schemas import RetrieveRequest, RetrieveResponse

router = APIRouter()


@router.post("/v1/retrieve", response_model=RetrieveResponse)
async def retrieve(req: RetrieveRequest, state: State) -> dict[str, Any]:
    if req.k > state.settings.service.max_k:
        raise ApiError(400, f"k is at most {state.settings.service.max_k}", param="k")
    serving, _ = state.serving.effective(state.settings.rag)
    try:
        hits = await run_in_threadpool(
            rag.retrieve,
            state.embedder,
            state.index,
            req.query,
            req.k,
            options=search.with_overrides(serving.retrieval, **req.overrides()),
            filters=req.filters,
            min_score=req.min_score,
        )
    except ValueError as e:
        raise ApiError(400, str(e), param="filters") from e
    return {
        "object": "list",
        "data": [
            {
                "chunk_id": h.chunk_id,
                "doc_id": h.doc_id,
                "source": h.source,
                "page": h.page,
                "heading": rag.heading_text(h),
                "score": round(float(h.score), 4),
                "text": h.text,
            }
            for h in hits
        ],
    }
