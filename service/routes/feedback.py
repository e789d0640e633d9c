"""POST /v1/feedback: a rating on an answer, optionally with a comment and a corrected answer."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from service.deps import State
from service.errors import ApiError

router = APIRouter()


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    response_id: str = Field(min_length=1, description="The `id` of a chat completion.")
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=10_000)
    corrected_answer: str | None = Field(None, max_length=10_000)


@router.post("/v1/feedback", status_code=201)
async def feedback(req: FeedbackRequest, state: State) -> dict[str, Any]:
    fid = await run_in_threadpool(
        state.feedback.add_feedback, req.response_id, req.rating, req.comment, req.corrected_answer
    )
    if fid is None:
        raise ApiError(404, f"no response with id '{req.response_id}'", param="response_id")
    return {"id": fid, "object": "feedback", "response_id": req.response_id, "rating": req.rating}
