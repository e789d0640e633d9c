"""What routes receive: the application state built once in the lifespan (no DI container)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from ingest.embed import Embedder
from ingest.index import VectorIndex
from ingest.search import Filters
from prompts.fewshot import ExampleBank
from prompts.registry import TemplateRegistry
from service import rag
from service.conversation import Turn
from service.errors import ApiError
from service.feedback import FeedbackStore
from service.llm.base import LLM, SamplingParams
from service.metrics import Metrics
from service.rag import Plan
from service.serving import ServingStore
from service.settings import RagSettings, Settings
from service.sweeps import SweepRunner


@dataclass
class AppState:
    settings: Settings
    embedder: Embedder
    index: VectorIndex
    llm: LLM
    registry: TemplateRegistry
    backend: str
    feedback: FeedbackStore
    metrics: Metrics
    serving: ServingStore
    owns_llm: bool = True  # False: the caller injected the model and closes it
    fence_key: bytes | None = None  # keys each request's passage fence (service.fence_key)
    started: float = field(default_factory=time.time)
    example_banks: dict[str, ExampleBank] = field(default_factory=dict)

    def serving_config(self) -> tuple[RagSettings, int]:
        """The ``rag`` settings in force for the next request, the promotion applied, and the
        serving version (0: the settings' own). Chat, retrieval and ``GET /v1/serving`` all
        resolve it here, so what the API shows is what the next answer uses."""
        return self.serving.effective(self.settings.rag)

    def plan(
        self,
        question: str,
        rag_settings: RagSettings,
        *,
        params: SamplingParams,
        serving_version: int,
        template_ref: str | None = None,
        filters: Filters | None = None,
        history: Sequence[Turn] = (),
    ) -> Plan:
        """``rag.plan_answer`` on this state's encoder, index, model, templates and example banks:
        what chat, the template preview and ``ragtune ask`` all answer from."""
        return rag.plan_answer(
            question=question,
            embedder=self.embedder,
            index=self.index,
            llm=self.llm,
            registry=self.registry,
            rag=rag_settings,
            template_ref=template_ref,
            filters=filters,
            params=params,
            banks=self.example_banks,
            serving_version=serving_version,
            history=history,
            home=self.settings.home,
            fence_key=self.fence_key,
        )


def get_state(request: Request) -> AppState:
    state: AppState | None = getattr(request.app.state, "ragtune", None)
    if state is None:
        raise ApiError(503, "the service is still loading its index and model")
    return state


State = Annotated[AppState, Depends(get_state)]


def get_sweeps(request: Request) -> SweepRunner:
    sweeps: SweepRunner | None = getattr(request.app.state, "sweeps", None)
    if sweeps is None:
        raise ApiError(503, "the service is still starting")
    return sweeps


Sweeps = Annotated[SweepRunner, Depends(get_sweeps)]
