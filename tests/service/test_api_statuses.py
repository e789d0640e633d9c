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


def test_unknown_route_is_not_found(client: TestClient) -> None:
    assert error(client.get("/v1/nothing-here"), 404)["type"] == "not_found_error"


def test_malformed_json_names_no_param(client: TestClient) -> None:
    resp = client.post(
        "/v1/retrieve", content=b'{"query": "x",', headers={"content-type": "application/json"}
    )
    err = error(resp, 422)
    assert err["param"] is None
    assert "malformed JSON" in err["message"] and "14" in err["message"]
