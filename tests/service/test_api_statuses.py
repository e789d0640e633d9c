"""Status codes: every failure answers in OpenAI's error shape with a status a client can act on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.embed import Embedder
from ingest.writer import Writer
from service.app import create_app
from service.errors import error_body
from service.settings import Settings
from tests.service.conftest import ScriptedLLM


@pytest.fixture
def client(own_settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    with TestClient(create_app(own_settings, llm=ScriptedLLM(), embedder=embedder)) as c:
        yield c


def error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


def test_wrong_method_is_an_invalid_request(client: TestClient) -> None:
    err = error(client.put("/v1/retrieve", json={}), 405)
    assert err["type"] == "invalid_request_error"


def test_wrong_method_allows_every_method_of_the_path(client: TestClient) -> None:
    # GET and POST /v1/documents are two routes: the 405 named only the first one's (schemathesis).
    resp = client.put("/v1/documents")
    error(resp, 405)
    assert set(resp.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    resp = client.options("/v1/feedback")
    error(resp, 405)
    assert set(resp.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


def test_unknown_route_is_not_found(client: TestClient) -> None:
    assert error(client.get("/v1/nothing-here"), 404)["type"] == "not_found_error"


def test_malformed_json_names_no_param(client: TestClient) -> None:
    resp = client.post(
        "/v1/retrieve", content=b'{"query": "x",', headers={"content-type": "application/json"}
    )
    err = error(resp, 422)
    assert err["param"] is None
    assert "malformed JSON" in err["message"] and "14" in err["message"]


def test_writer_busy_is_503_with_retry_after_not_a_long_wait(
    own_settings: Settings, embedder: Embedder
) -> None:
    s = own_settings.model_copy(
        update={"service": own_settings.service.model_copy(update={"writer_wait_s": 0.2})}
    )
    with TestClient(create_app(s, llm=ScriptedLLM(), embedder=embedder)) as client:
        index = client.app.state.ragtune.index  # type: ignore[attr-defined]
        doc_id = client.get("/v1/documents").json()["data"][0]["id"]
        with Writer.acquire(index, 0):  # as an ingest run in another process would
            started = time.monotonic()
            up = client.post("/v1/documents", files={"file": ("note.txt", b"Busy lock test.")})
            gone = client.delete(f"/v1/documents/{doc_id}")
            took = time.monotonic() - started
        for resp in (up, gone):
            err = error(resp, 503)
            assert err["code"] == "index_busy" and resp.headers["retry-after"].isdigit()
            assert str(s.home) not in err["message"]
        assert took < 10
        assert client.get("/v1/documents").json()["data"][0]["id"] == doc_id


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/v1/chat/completions",
            '{"model": "x", "messages": [{"role": "user", "content": "why \\ud800?"}]}',
            "messages.0.content",
        ),
        (
            "/v1/chat/completions",
            '{"messages": [{"role": "user", "content": [{"type": "text", "text": "\\ud800"}]}]}',
            "messages.0.content",
        ),
        ("/v1/retrieve", '{"query": "zlib \\ud800 window"}', "query"),
        ("/v1/feedback", '{"response_id": "x", "rating": "up", "comment": "\\udfff"}', "comment"),
        ("/v1/templates/grounded-qa/render", '{"question": "a\\ud800"}', "question"),
    ],
)
def test_lone_surrogate_is_422_naming_the_param(
    client: TestClient, path: str, body: str, param: str
) -> None:
    resp = client.post(path, content=body.encode(), headers={"content-type": "application/json"})
    err = error(resp, 422)
    assert err["param"] == param and "unicode" in err["message"].lower()


def test_every_client_error_status_is_typed_as_the_clients() -> None:
    for status in (400, 405, 409, 413, 415, 422):
        assert error_body(status, "x")["error"]["type"] == "invalid_request_error"
    assert error_body(500, "x")["error"]["type"] == "server_error"
