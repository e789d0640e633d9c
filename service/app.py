"""The FastAPI application: ``create_app(settings)``; heavy resources load once, in the lifespan.

Tests pass their own ``llm`` (a scripted fake for API plumbing) or ``embedder``; everything else is
built from settings. The index is refreshed in the background, so documents ingested by another
process become answerable without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ingest.embed import Embedder, load_embedder
from ingest.index import VectorIndex
from prompts.registry import TemplateRegistry, builtin_dir
from service import errors
from service.deps import AppState
from service.feedback import FeedbackStore
from service.llm import load_llm
from service.llm.base import LLM
from service.metrics import Metrics
from service.routes import chat, documents, feedback, health, retrieve
from service.security import Guard, load_key_hashes
from service.serving import ServingStore
from service.settings import Settings

log = logging.getLogger("ragtune.service")
REFRESH_INTERVAL_S = 2.0


def create_app(
    settings: Settings, *, llm: LLM | None = None, embedder: Embedder | None = None
) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await run_in_threadpool(_build_state, settings, llm, embedder, metrics)
        app.state.ragtune = state
        refresher = asyncio.create_task(_refresh_forever(state))
        try:
            yield
        finally:
            refresher.cancel()
            app.state.ragtune = None
            state.index.close()
            state.feedback.close()
            if llm is None:  # ours to close; an injected one belongs to the caller
                state.llm.close()

    svc = settings.service
    guard = Guard(
        load_key_hashes([k.get_secret_value() for k in svc.api_keys], svc.keys_file),
        svc.rate_limit_per_minute,
    )
    metrics = Metrics()
    app = FastAPI(title="ragtune", version="0.1.0", lifespan=lifespan)
    app.state.metrics = metrics
    errors.install(app)
    app.middleware("http")(_body_limit(svc.max_body_bytes))
    app.middleware("http")(_count_requests(metrics))
    for module in (chat, retrieve, documents, feedback):
        app.include_router(module.router, dependencies=[Depends(guard)])
    app.include_router(health.router)

    @app.get("/metrics", include_in_schema=False)
    async def _metrics() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def _build_state(
    settings: Settings, llm: LLM | None, embedder: Embedder | None, metrics: Metrics | None = None
) -> AppState:
    embedder = embedder or load_embedder(settings.embed)
    index = VectorIndex.open(
        settings.index_dir, settings.index, embed_model=embedder.name, dim=embedder.dim
    )
    model = llm or load_llm(settings.llm)
    registry = TemplateRegistry([builtin_dir(), settings.home / "prompts"])
    registry.get(settings.rag.template)  # fail at start-up, not on the first request
    return AppState(
        settings=settings,
        embedder=embedder,
        index=index,
        llm=model,
        registry=registry,
        backend=settings.llm.backend if llm is None else type(llm).__name__,
        feedback=FeedbackStore(settings.home / "feedback.sqlite"),
        metrics=metrics or Metrics(),
        serving=ServingStore(settings.home),
    )


async def _refresh_forever(state: AppState) -> None:
    while True:
        await asyncio.sleep(REFRESH_INTERVAL_S)
        try:
            if await run_in_threadpool(state.index.refresh):
                log.info("index now at version %d", state.index.version)
        except Exception:  # a bad new version must not take down the serving one
            log.exception("index refresh failed; still serving version %d", state.index.version)


def _body_limit(
    limit: int,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return JSONResponse(
                errors.error_body(413, f"request body larger than {limit} bytes"), 413
            )
        return await call_next(request)

    return middleware


def _count_requests(
    metrics: Metrics,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(path, str(response.status_code)).inc()
        return response

    return middleware
