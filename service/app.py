"""The FastAPI application: ``create_app(settings)``; heavy resources load once, in the lifespan.

Tests pass their own ``llm`` (a scripted fake for API plumbing) or ``embedder``; everything else is
built from settings. The index is refreshed in the background, so documents ingested by another
process become answerable without a restart, and so are the prompt templates: another replica
over the same data directory may write a version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.compact import compact
from ingest.embed import Embedder
from prompts.registry import TemplateRegistry, template_files
from service import errors
from service.deps import AppState
from service.limits import BodyLimit, route_limits
from service.llm.base import LLM
from service.metrics import Metrics
from service.routes import (
    chat,
    documents,
    evals,
    feedback,
    health,
    retrieve,
    serving,
    sweeps,
    templates,
    ui,
)
from service.security import ADMIN, QUERY, Guard
from service.settings import Settings
from service.state import build_state, close_state
from service.sweeps import SweepRunner

log = logging.getLogger("ragtune.service")
REFRESH_INTERVAL_S = 2.0


def create_app(
    settings: Settings, *, llm: LLM | None = None, embedder: Embedder | None = None
) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await run_in_threadpool(
            build_state, settings, llm=llm, embedder=embedder, metrics=metrics
        )
        app.state.ragtune = state
        app.state.sweeps = runner = SweepRunner(settings)
        refresher = asyncio.create_task(_refresh_forever(state))
        templates = asyncio.create_task(_reload_templates_forever(state))
        try:
            yield
        finally:
            refresher.cancel()
            templates.cancel()
            app.state.sweeps = None
            await run_in_threadpool(runner.close)  # no sweep outlives the service
            app.state.ragtune = None
            close_state(state)

    svc = settings.service
    metrics = Metrics()
    public_docs = svc.docs == "open"
    app = FastAPI(
        title="ragtune",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url="/openapi.json" if public_docs else None,
        docs_url="/docs" if public_docs else None,
        redoc_url="/redoc" if public_docs else None,
    )
    app.state.metrics = metrics
    app.state.guard = Guard(svc)
    errors.install(app, settings.home)
    # Plain ASGI middleware, not BaseHTTPMiddleware: that runs ``receive`` in a task group, which
    # would wrap the body limit's 413 in an exception group the error handlers never see.
    app.add_middleware(BodyLimit, limit=svc.max_body_bytes, routes=route_limits(svc))
    app.add_middleware(_CountRequests, metrics=metrics)  # outermost: counts refusals too
    # Every /v1 route needs a key (when keys are set): query at least, admin where the route or
    # its router says so. Only the probes and the console's data-free pages are keyless.
    for module in (chat, retrieve, feedback, templates, serving):
        app.include_router(module.router, dependencies=[QUERY], responses=errors.GUARDED)
    for module in (documents, evals, sweeps):
        app.include_router(module.router, dependencies=[ADMIN], responses=errors.GUARDED)
    app.include_router(health.router)
    ui.install(app)  # the console's pages hold no data: served without a key
    if svc.docs == "key":
        _keyed_docs(app)

    @app.get("/metrics", include_in_schema=False, dependencies=[ADMIN])
    async def _metrics() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


async def _reload_templates_forever(state: AppState) -> None:
    """Template versions another replica wrote (``POST /v1/templates/{id}/versions``) become
    servable here within the index's poll interval, without a restart."""
    seen = state.registry.files
    while True:
        await asyncio.sleep(REFRESH_INTERVAL_S)
        try:
            now = await run_in_threadpool(template_files, state.registry.dirs)
            if now == seen:
                continue
            seen = now  # a broken file is reported once, not at every poll
            state.registry = await run_in_threadpool(TemplateRegistry, state.registry.dirs)
            log.info("prompt templates reloaded: %d files", len(now))
        except Exception:  # a bad new file must not take down the loaded templates
            log.exception("reloading prompt templates failed; still serving the loaded ones")


def _keyed_docs(app: FastAPI) -> None:
    """/openapi.json, /docs and /redoc behind a key (a query key will do)."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=[QUERY])
    async def _openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[QUERY])
    async def _docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="ragtune")

    @app.get("/redoc", include_in_schema=False, dependencies=[QUERY])
    async def _redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="ragtune")


async def _refresh_forever(state: AppState) -> None:
    """Pick up versions other processes commit, and merge segments in the background."""
    while True:
        await asyncio.sleep(REFRESH_INTERVAL_S)
        try:
            if await run_in_threadpool(state.index.refresh):
                log.info("index now at version %d", state.index.version)
        except Exception:  # a bad new version must not take down the serving one
            log.exception("index refresh failed; still serving version %d", state.index.version)
            continue
        try:  # segments uploads added; returns at once when there is nothing to merge
            if merges := await run_in_threadpool(compact, state.index):
                log.info(
                    "merged segments %d times: index at version %d", merges, state.index.version
                )
        except Exception:  # readers keep the last version; the next round tries again
            log.exception("segment merge failed; still serving version %d", state.index.version)


class _CountRequests:
    """Counts responses by route template and status (``unmatched`` when no route took it)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless a response starts: an exception here becomes a 500 further out

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(path, str(status)).inc()
