"""GET /v1/serving: the serving configuration the next chat request answers with.

The ``rag`` settings with the current promotion applied (``AppState.serving_config``, what chat
and retrieval resolve), the template resolved to its version as ``plan_answer`` resolves it, and
what else decides an answer: the model, its prompt style and the index version. A client (the
console's Ask and Compare pages) shows it before the first question and fills its fields from it.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from service import rag
from service.deps import AppState, State
from service.errors import ApiError, error_responses
from service.llm.base import Style
from service.serving import ServingError
from service.settings import RagSettings

router = APIRouter(tags=["serving"])


class PromotionInfo(BaseModel):
    """Where the promoted configuration in force came from (``GET /v1/eval/promotions`` has all)."""

    version: int
    created: float = Field(description="Unix seconds.")
    config: str | None = Field(None, description="The configuration id in its evaluation run.")
    dataset: str | None = None


class ServingConfig(BaseModel):
    object: Literal["serving"] = "serving"
    serving_version: int = Field(description="The promoted configuration in force (0: settings).")
    promotion: PromotionInfo | None = Field(description="null while no promotion is in force.")
    model: str = Field(description="The answering model's id, as `GET /v1/models` lists it.")
    style: Style = Field(description="The model's prompt style.")
    backend: str
    index_version: int
    rag: RagSettings = Field(
        description="Every `rag` setting in force; `template` resolved to 'id@version'."
    )


def current(state: AppState) -> ServingConfig:
    serving, version = state.serving_config()
    template = rag.serving_template(state.registry, serving, state.llm.style)
    try:
        record = state.serving.record(version) if version else None
    except ServingError as e:
        raise ApiError(409, str(e), code="serving_unreadable") from e
    return ServingConfig(
        serving_version=version,
        promotion=PromotionInfo.model_validate(record) if record else None,
        model=state.llm.name,
        style=state.llm.style,
        backend=state.backend,
        index_version=state.index.version,
        rag=serving.model_copy(update={"template": template.ref}),
    )


@router.get(
    "/v1/serving",
    responses=error_responses(409),
    response_model=ServingConfig,
    summary="The serving configuration in force",
    response_description="What the next chat request answers with unless it overrides a field: "
    "the `rag` settings after the current promotion, the model and the index version.",
)
async def serving(state: State) -> ServingConfig:
    return await run_in_threadpool(current, state)
