"""GET /v1/documents: the index version, the quarantine, and the q / kind filters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ingest.embed import Embedder
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import ScriptedLLM


@pytest.fixture
def client(settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    with TestClient(create_app(settings, llm=ScriptedLLM(), embedder=embedder)) as c:
        yield c


def names(body: dict) -> list[str]:  # type: ignore[type-arg]
    return sorted(d["source"].rsplit("/", 1)[-1] for d in body["data"])


def test_list_carries_index_version_and_quarantine(client: TestClient) -> None:
    body = client.get("/v1/documents").json()
    assert body["object"] == "list" and body["quarantined"] == []
    assert names(body) == ["llm-guide.txt", "zlib-usage.html"]
    assert body["index_version"] == client.app.state.ragtune.index.version >= 1  # type: ignore[attr-defined]
    assert all(d["chunks"] > 0 and d["version"] <= body["index_version"] for d in body["data"])


def test_search_and_kind_filters(client: TestClient) -> None:
    assert names(client.get("/v1/documents", params={"q": "ZLIB"}).json()) == ["zlib-usage.html"]
    assert names(client.get("/v1/documents", params={"kind": "text"}).json()) == ["llm-guide.txt"]
    assert names(client.get("/v1/documents", params={"q": "guide", "kind": "html"}).json()) == []
    assert client.get("/v1/documents", params={"kind": "pdf"}).json()["data"] == []
    # A title matches too, not only the path.
    [doc] = client.get("/v1/documents", params={"kind": "html"}).json()["data"]
    if doc["title"]:
        by_title = client.get("/v1/documents", params={"q": doc["title"][:12]}).json()
        assert doc["id"] in [d["id"] for d in by_title["data"]]
    # Blank filters are no filters; an absurd one is a 422 in OpenAI's shape.
    assert len(client.get("/v1/documents", params={"q": "  ", "kind": ""}).json()["data"]) == 2
    resp = client.get("/v1/documents", params={"q": "x" * 501})
    assert resp.status_code == 422 and resp.json()["error"]["param"] == "query.q"
