"""Errors in OpenAI's JSON shape, with the status code a client can act on (never a bare 500)."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ingest.index import (
    EmbeddingMismatch,
    IndexCorrupt,
    IndexStoreError,
    StorageError,
    WriterBusy,
)
from prompts.registry import TemplateNotFound
from service.llm.base import LLMBusy, LLMError, LLMUnavailable
from service.paths import redact

log = logging.getLogger("ragtune.service")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """OpenAI's error body: what every 4xx and 503 of this API answers with."""

    error: ErrorDetail


_MEANINGS = {
    400: "The request is well-formed but cannot be answered as asked (`param` names the field).",
    401: "No API key, or an unknown one (only when keys are configured).",
    403: "The API key's role does not allow this route.",
    404: "The named resource does not exist.",
    409: "The request conflicts with the stored state (`code` says which).",
    413: "The request body, or what it asks for, is over a configured limit.",
    422: "The body or a parameter does not match the schema, or the JSON is malformed.",
    429: "Rate limit exceeded; `Retry-After` says when to retry.",
    503: "Loading, busy or a backend failed; `Retry-After` says when to retry where it is known.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each documented with OpenAI's error body.

    One table for every route, so a status documents the same way wherever it can occur and the
    conformance suite (tests/service/test_api_schemathesis.py) holds the routes to it.
    """
    return {s: {"model": ErrorResponse, "description": _MEANINGS[s]} for s in statuses}


# What any guarded route can answer before its handler runs: the key check, the rate limit, the
# body limit (on bytes received, whatever the method), validation, and a service still loading.
GUARDED = error_responses(401, 403, 413, 422, 429, 503)


class ApiError(Exception):
    """Raise from handlers and helpers; rendered as ``{"error": {...}}`` with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}


def error_body(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error"),
            "param": param,
            "code": code,
        }
    }


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(app: FastAPI, request: Request) -> str:
    """Every method some route serves at the request's path: the 405 Starlette raises names only
    the methods of the first route that matched the path, and GET and POST of one path are often
    two routes (found by schemathesis)."""
    routes = app.router.routes
    allowed = [
        m
        for m in _METHODS
        if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes)
    ]
    return ", ".join(allowed)


def install(app: FastAPI, home: Path | None = None) -> None:
    """Answer every error in OpenAI's shape; messages never name a server path (see paths)."""

    def _respond(e: ApiError) -> JSONResponse:
        body = error_body(e.status, redact(e.message, home), e.param, e.code)
        return JSONResponse(body, e.status, e.headers)

    @app.exception_handler(ApiError)
    async def _api(_: Request, e: ApiError) -> JSONResponse:
        return _respond(e)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        if first.get("type") == "json_invalid":
            # FastAPI puts the byte offset in loc; it is a position, not a parameter.
            where = first.get("loc", ("body", "?"))[-1]
            reason = (first.get("ctx") or {}).get("error", "")
            detail = f" ({reason})" if reason else ""
            return _respond(ApiError(422, f"malformed JSON body at byte {where}{detail}"))
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{loc}: {first.get('msg', 'invalid request')}" if loc else "invalid request"
        return _respond(ApiError(422, message, param=loc or None))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        headers = dict(e.headers or {})
        if e.status_code == 405:
            headers["Allow"] = _allowed_methods(app, request)
        return _respond(ApiError(e.status_code, str(e.detail), headers=headers))

    @app.exception_handler(TemplateNotFound)
    async def _template(_: Request, e: TemplateNotFound) -> JSONResponse:
        return _respond(ApiError(400, str(e), param="prompt"))

    @app.exception_handler(IndexStoreError)
    async def _store(_: Request, e: IndexStoreError) -> JSONResponse:
        # The store's own messages name server paths; the client gets what it can act on.
        if isinstance(e, WriterBusy):
            message, code = "the index is being written by another process; retry", "index_busy"
            return _respond(ApiError(503, message, code=code, headers={"Retry-After": "5"}))
        if isinstance(e, StorageError):
            # The previous version still serves; a full disk needs an operator, not a quick retry.
            full = e.errno in (errno.ENOSPC, errno.EDQUOT)
            message = (
                "the server's disk is full; nothing was changed, retry once space is freed"
                if full
                else "the server could not write to its disk; nothing was changed"
            )
            log.error("index store error: %s", e)
            code = "storage_full" if full else "storage_error"
            return _respond(ApiError(503, message, code=code, headers={"Retry-After": "60"}))
        if isinstance(e, EmbeddingMismatch):
            message, code = "the index was built with another embedding model", "index_mismatch"
        elif isinstance(e, IndexCorrupt):
            message, code = "the index on disk is damaged; see the server log", "index_corrupt"
        else:
            message, code = "the index store failed; see the server log", "index_error"
        log.error("index store error: %s", e)
        return _respond(ApiError(503, message, code=code))

    @app.exception_handler(LLMBusy)
    async def _busy(_: Request, e: LLMBusy) -> JSONResponse:
        return _respond(ApiError(503, str(e), code="model_busy", headers={"Retry-After": "5"}))

    @app.exception_handler(LLMUnavailable)
    async def _down(_: Request, e: LLMUnavailable) -> JSONResponse:
        return _respond(
            ApiError(503, str(e), code="model_unavailable", headers={"Retry-After": "10"})
        )

    @app.exception_handler(LLMError)
    async def _model(_: Request, e: LLMError) -> JSONResponse:
        # Anything else the backend reported (a malformed reply, a failed generation).
        return _respond(ApiError(503, str(e), code="model_error"))

    @app.exception_handler(Exception)
    async def _bug(_: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_body(500, f"internal error: {type(e).__name__}"), 500)
