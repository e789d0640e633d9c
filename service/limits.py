"""Request body limits counted on the bytes actually received, not on what the client declares.

A ``Content-Length`` check alone lets a chunked request (no length) or a lying one through, and
the whole body then lands in memory. This ASGI middleware wraps ``receive``: a declared length over
the limit is refused before anything is read, and a body stream that passes the limit is cut off
there, so at most the limit plus one received chunk is ever held. Upload routes get their own,
larger limit in place of the general one.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import errors
from service.settings import ServiceSettings

# Room for what wraps an upload's bytes: multipart part headers and boundaries, JSON escaping.
ENVELOPE_BYTES = 64 * 1024


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes its limit; answered 413 by the error mapper."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


def route_limits(svc: ServiceSettings) -> dict[tuple[str, str], tuple[int, str]]:
    """Body limits of the upload routes, each in place of ``max_body_bytes``.

    A document upload may be ``max_upload_mb``; a dataset may be ``max_dataset_bytes``, sent as
    JSON (escaping can double it) or multipart. The routes check the file's own size exactly.
    """
    return {
        ("POST", "/v1/documents"): (
            int(svc.max_upload_mb * 1e6) + ENVELOPE_BYTES,
            f"upload larger than {svc.max_upload_mb:g} MB",
        ),
        ("POST", "/v1/eval/datasets"): (
            2 * svc.max_dataset_bytes + ENVELOPE_BYTES,
            f"dataset larger than {svc.max_dataset_bytes} bytes",
        ),
    }


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes (or a route's own limit) with a 413."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        routes: Mapping[tuple[str, str], tuple[int, str]] | None = None,
    ) -> None:
        self.app, self.limit, self.routes = app, limit, dict(routes or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/") or "/"
        limit, refusal = self.routes.get(
            (scope["method"], path), (self.limit, f"request body larger than {self.limit} bytes")
        )
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(scope, send, refusal)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(refusal)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge:  # raised where no handler answered it (e.g. outside the router)
            if started:
                raise
            await _refuse(scope, send, refusal)


async def _refuse(scope: Scope, send: Send, message: str) -> None:
    body = errors.error_body(413, message)
    # The rest of the body is never read: the server closes the connection after answering.
    await JSONResponse(body, 413, headers={"Connection": "close"})(scope, _none, send)


async def _none() -> Message:  # pragma: no cover - a JSONResponse never reads the request
    return {"type": "http.disconnect"}
