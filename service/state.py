"""The composition root: application state built from settings, in one public place.

The API's lifespan, ``ragtune ask`` and the eval runner all answer through the same objects, so
they are built here and nowhere else; tests inject a scripted ``llm`` or a shared ``embedder``.
"""

from __future__ import annotations

from ingest.embed import Embedder, load_embedder
from ingest.search import open_index
from prompts.registry import TemplateRegistry, builtin_dir
from service.deps import AppState
from service.feedback import FeedbackStore
from service.fence_key import load_fence_key
from service.llm import load_llm
from service.llm.base import LLM
from service.metrics import Metrics
from service.serving import ServingStore
from service.settings import Settings, template_for


def build_state(
    settings: Settings,
    *,
    llm: LLM | None = None,
    embedder: Embedder | None = None,
    metrics: Metrics | None = None,
) -> AppState:
    """Load the encoder, open the index and the model; ``close_state`` releases what it opened.

    An injected ``llm`` belongs to the caller and is not closed with the state.
    """
    embedder = embedder or load_embedder(settings.embed)
    index = open_index(settings, embedder)
    model = llm or load_llm(settings.llm)
    registry = TemplateRegistry([builtin_dir(), settings.home / "prompts"])
    registry.get(template_for(settings.rag.template, model.style))  # fail now, not on a request
    return AppState(
        settings=settings,
        embedder=embedder,
        index=index,
        llm=model,
        registry=registry,
        backend=settings.llm.backend if llm is None else type(llm).__name__,
        feedback=FeedbackStore(
            settings.home / "feedback.sqlite",
            retention_days=settings.service.response_retention_days,
            max_responses=settings.service.max_responses,
        ),
        metrics=metrics or Metrics(),
        serving=ServingStore(settings.home),
        owns_llm=llm is None,
        fence_key=load_fence_key(settings.home),
    )


def close_state(state: AppState) -> None:
    """Close the index, the feedback store and the model, if ``build_state`` loaded it."""
    state.index.close()
    state.feedback.close()
    if state.owns_llm:
        state.llm.close()
