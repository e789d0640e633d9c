"""Feedback on answers: ``POST /v1/feedback`` records a rating, ``GET /v1/feedback`` lists them.

Each listed entry carries the question and answer it rates, read from the answer's stored record
(the same join ``ragtune eval from-feedback`` turns into cases).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from service.deps import State
from service.errors import ApiError, error_responses
from service.feedback import Feedback
from service.security import ADMIN
from service.text import RequestBody

router = APIRouter(tags=["feedback"])


class FeedbackRequest(RequestBody):
    model_config = ConfigDict(extra="forbid")

    response_id: str = Field(min_length=1, description="The `id` of a chat completion.")
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=10_000)
    corrected_answer: str | None = Field(None, max_length=10_000)
    wrong_citation: bool = Field(
        False, description="The answer cites the wrong passage (whatever its rating)."
    )


class FeedbackObject(BaseModel):
    id: int
    object: Literal["feedback"] = "feedback"
    response_id: str
    rating: Literal["up", "down"]
    comment: str | None
    corrected_answer: str | None
    wrong_citation: bool
    created: int = Field(description="When the feedback was given, Unix seconds.")
    question: str = Field(description="The question of the rated answer.")
    answer: str = Field(description="The rated answer's text as it was sent.")
    prompt: str = Field(description="The template of the rated answer, 'id@version'.")
    serving_version: int = Field(description="The promoted configuration that answered.")

    @classmethod
    def of(cls, f: Feedback) -> FeedbackObject:
        return cls(
            id=f.id,
            response_id=f.response_id,
            rating=f.rating,
            comment=f.comment,
            corrected_answer=f.corrected_answer,
            wrong_citation=f.wrong_citation,
            created=int(f.created),
            question=f.answer.question,
            answer=f.answer.text,
            prompt=f.answer.provenance.prompt,
            serving_version=f.answer.provenance.serving_version,
        )


class FeedbackList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FeedbackObject]


@router.post(
    "/v1/feedback",
    responses=error_responses(404),
    status_code=201,
    response_model=FeedbackObject,
    summary="Rate an answer",
    response_description="The stored feedback, with the question and answer it rates.",
)
async def feedback(req: FeedbackRequest, state: State) -> Any:
    """A thumbs up or down on a chat completion, optionally with a comment, a corrected answer
    and a wrong-citation flag; 404 when the response id is not one this service gave."""
    fid = await run_in_threadpool(
        state.feedback.add_feedback,
        req.response_id,
        req.rating,
        req.comment,
        req.corrected_answer,
        req.wrong_citation,
    )
    if fid is None:
        raise ApiError(404, f"no response with id '{req.response_id}'", param="response_id")
    stored = await run_in_threadpool(state.feedback.get, fid)
    assert stored is not None  # just written; feedback is never deleted
    return FeedbackObject.of(stored)


@router.get(
    "/v1/feedback",
    dependencies=[ADMIN],
    response_model=FeedbackList,
    summary="List feedback, newest first",
    response_description="Feedback entries with the question and answer each one rates.",
)
async def list_feedback(
    state: State,
    rating: Annotated[Literal["up", "down"] | None, Query(description="Only this rating.")] = None,
    has_correction: Annotated[
        bool | None, Query(description="Only entries with (true) or without (false) a correction.")
    ] = None,
    since: Annotated[
        datetime | None,
        Query(description="Only feedback given at or after this ISO 8601 time (no offset: UTC)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many entries.")] = 50,
) -> Any:
    cutoff = None if since is None else (since if since.tzinfo else since.replace(tzinfo=UTC))
    rows = await run_in_threadpool(
        lambda: state.feedback.feedback(
            rating=rating,
            has_correction=has_correction,
            since=cutoff.timestamp() if cutoff else None,
            limit=limit,
            newest_first=True,
        )
    )
    return FeedbackList(data=[FeedbackObject.of(r) for r in rows])
