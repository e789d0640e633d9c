"""Body limits counted on bytes received (chunked bodies too), upload routes' own limits, and
uploads that are rejected leaving neither an index version nor bytes behind."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from ingest.embed import Embedder
from service import errors
from service.settings import Settings
from tests.service.test_api import assert_openai_error
from tests.service.test_api_limits import client_for

PIECE = 64 * 1024


def pieces(data: bytes, sent: list[int] | None = None) -> Iterator[bytes]:
    """``data`` as a generator: httpx sends it chunked, with no Content-Length."""
    for i in range(0, len(data), PIECE):
        if sent is not None:
            sent.append(i)
        yield data[i : i + PIECE]


def multipart(name: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    """The body and content type httpx would send for a one-file upload."""
    req = httpx.Request("POST", "http://x/v1/documents", files={"file": (name, data)})
    return req.read(), {"Content-Type": req.headers["Content-Type"]}


def padded_text(size: int) -> bytes:
    """A .txt of ``size`` bytes that converts to a few hundred characters (cheap to embed)."""
    text = "Lighthouse keepers calibrate quantum sundials every Tuesday at dawn.\n"
    return (text + (" " * 999 + "\n") * (size // 1000))[:size].encode()


def uploads_of(settings: Settings) -> list[Path]:
    folder = settings.home / "uploads"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.fixture
def writable(settings: Settings, tmp_path: Path) -> Settings:
    """A fresh, empty data directory: uploads change it."""
    return settings.model_copy(update={"home": tmp_path / "home"})


def with_service(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(update={"service": settings.service.model_copy(update=update)})


def version(c: TestClient) -> int:
    return int(c.get("/readyz").json()["index_version"])


def test_chunked_body_over_the_cap_is_refused(settings: Settings, embedder: Embedder) -> None:
    body = json.dumps({"query": "word " * (2 * settings.service.max_body_bytes // 5)}).encode()
    with client_for(settings, embedder) as c:
        resp = c.post(
            "/v1/retrieve", content=pieces(body), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in {k.lower() for k in resp.request.headers}
        err = assert_openai_error(resp, 413)
        assert str(settings.service.max_body_bytes) in err["message"]
        small = json.dumps({"query": "CHUNK"}).encode()
        ok = c.post(
            "/v1/retrieve", content=pieces(small), headers={"Content-Type": "application/json"}
        )
        assert ok.status_code == 200, ok.text


def test_the_stream_is_cut_off_at_the_cap_whatever_the_length_says() -> None:
    from service.limits import BodyLimit

    app = FastAPI()
    errors.install(app)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    limited = BodyLimit(app, limit=200_000)
    pulled = 0

    async def receive() -> dict[str, Any]:  # a client that claims 10 bytes and sends 100 pieces
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * PIECE, "more_body": pulled < 100}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "headers": [(b"content-length", b"10"), (b"content-type", b"application/octet-stream")],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("testclient", 1),
        "root_path": "",
    }
    # In a thread of its own: the browser tests' Playwright keeps an event loop running in this
    # one for the whole session, and asyncio.run refuses to nest.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, limited(scope, receive, send)).result()
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert pulled <= 200_000 // PIECE + 1  # never read (and held) past the cap
    assert json.loads(sent[1]["body"])["error"]["type"] == "invalid_request_error"


def test_uploads_have_their_own_limit_in_place_of_the_body_cap(
    writable: Settings, embedder: Embedder
) -> None:
    data = padded_text(2_000_000)  # twice the general cap, far under max_upload_mb
    assert len(data) > 2 * writable.service.max_body_bytes - 1
    with client_for(writable, embedder) as c:
        up = c.post("/v1/documents", files={"file": ("big.txt", data, "text/plain")})
        assert up.status_code == 201, up.text
        assert up.json()["chunks"] >= 1
        # Other routes keep the general cap.
        huge = json.dumps({"query": "x" * 2 * writable.service.max_body_bytes})
        assert_openai_error(c.post("/v1/retrieve", content=huge), 413)


def test_an_upload_over_max_upload_mb_is_refused_and_leaves_nothing(
    writable: Settings, embedder: Embedder
) -> None:
    small = with_service(writable, max_upload_mb=0.5)
    with client_for(small, embedder) as c:
        before = version(c)
        body, headers = multipart("big.txt", padded_text(1_500_000))
        sent: list[int] = []
        resp = c.post("/v1/documents", content=pieces(body, sent), headers=headers)
        assert_openai_error(resp, 413)
        just_over = padded_text(520_000)  # within the request's envelope: the route refuses it
        err = assert_openai_error(
            c.post("/v1/documents", files={"file": ("a.txt", just_over)}), 413
        )
        assert "0.5 MB" in err["message"]
        assert version(c) == before
    assert uploads_of(small) == []


def test_dataset_uploads_have_their_own_limit(own_settings: Settings, embedder: Embedder) -> None:
    roomy = with_service(own_settings, max_dataset_bytes=3_000_000)
    content = '{"question": "' + "q" * 1_500_000 + '"}\n'  # over the body cap, not a valid case
    with client_for(roomy, embedder) as c:
        resp = c.post("/v1/eval/datasets", json={"name": "big.jsonl", "content": content})
        assert resp.status_code == 400, resp.text  # the loader's verdict, not the body cap's
    tight = with_service(own_settings, max_dataset_bytes=100_000)
    body = json.dumps({"name": "big.jsonl", "content": content}).encode()
    with client_for(tight, embedder) as c:
        resp = c.post(
            "/v1/eval/datasets", content=pieces(body), headers={"Content-Type": "application/json"}
        )
        assert_openai_error(resp, 413)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("noise.pdf", bytes(range(256)) * 16),  # not a PDF: quarantined
        ("empty.txt", b" \n\n  \n"),  # no text to index
        ("huge.txt", ("word " * 30_000).encode()),  # over ingest.max_text_chars (set below)
    ],
)
def test_a_rejected_upload_writes_no_version_and_leaves_no_bytes(
    writable: Settings, embedder: Embedder, name: str, data: bytes
) -> None:
    s = writable.model_copy(
        update={"ingest": writable.ingest.model_copy(update={"max_text_chars": 100_000})}
    )
    with client_for(s, embedder) as c:
        before = version(c)
        err = assert_openai_error(
            c.post("/v1/documents", files={"file": (name, data)}), 422, "file"
        )
        assert err["code"] == "document_quarantined" and name in err["message"]
        assert version(c) == before
        assert c.get("/v1/documents").json()["data"] == []
    assert uploads_of(s) == []
