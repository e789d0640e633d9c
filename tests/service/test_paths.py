"""Server paths never reach a client: relative to HOME, or cut to a file name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ingest.embed import Embedder
from ingest.pipeline import Ingestor
from service import errors
from service.app import create_app
from service.errors import ApiError
from service.llm.base import Delta, LLMError
from service.paths import public_path, redact
from service.settings import Settings
from tests.conftest import open_store
from tests.service.conftest import ScriptedLLM


def test_redact_keeps_urls_and_cuts_paths(tmp_path: Path) -> None:
    home = tmp_path / "home"
    text = f"{home}/uploads/ab.pdf: [Errno 2] No such file: '/srv/data/x.txt' (see https://a.b/c/d)"
    assert redact(text, home) == (
        "uploads/ab.pdf: [Errno 2] No such file: 'x.txt' (see https://a.b/c/d)"
    )
    assert public_path(f"{home}/uploads/ab.pdf", home) == "uploads/ab.pdf"
    assert public_path("/corpus/a.txt", home) == "/corpus/a.txt"


def test_error_messages_name_no_server_path(tmp_path: Path) -> None:
    app = FastAPI()
    errors.install(app, tmp_path)

    @app.get("/boom")
    async def boom() -> None:
        raise ApiError(409, f"unreadable {tmp_path}/runs/r1/results.json", param="run_id")

    err = TestClient(app).get("/boom").json()["error"]
    assert err["message"] == "unreadable runs/r1/results.json"


def test_rejections_and_quarantine_name_no_server_path(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    fresh = settings.model_copy(update={"home": home})
    # A broken file the operator ingested (CLI, watcher) under HOME is quarantined...
    (home / "docs").mkdir(parents=True)
    (home / "docs" / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    index = open_store(home / "index", embedder)
    try:
        Ingestor(index, embedder, fresh.chunk, fresh.ingest).run([home / "docs"])
    finally:
        index.close()
    with TestClient(create_app(fresh, llm=ScriptedLLM(), embedder=embedder)) as c:
        [held] = c.get("/v1/documents").json()["quarantined"]
        assert held["source"] == "docs/broken.pdf" and str(tmp_path) not in str(held)
        # ...while a rejected upload is refused with its reason and stores nothing.
        resp = c.post("/v1/documents", files={"file": ("bad.txt", b"text\x00\x00 with NULs")})
        assert resp.status_code == 422 and str(tmp_path) not in resp.text
        assert c.get("/v1/documents").json()["quarantined"] == [held]


class FailingLLM(ScriptedLLM):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def stream(self, prompt: Any, params: Any, cancel: Any = None) -> Iterator[Delta]:
        raise self.error


@pytest.mark.parametrize("kind", ["model", "bug"])
def test_stream_errors_name_no_server_path(
    own_settings: Settings, embedder: Embedder, kind: str
) -> None:
    where = f"{own_settings.home}/models/x.gguf"
    error = LLMError(f"cannot load {where}") if kind == "model" else KeyError(where)
    app = create_app(own_settings, llm=FailingLLM(error), embedder=embedder)
    with TestClient(app) as c:
        body = {"messages": [{"role": "user", "content": "What is MQA?"}], "stream": True}
        events = c.post("/v1/chat/completions", json=body).text
    assert '"error"' in events and str(own_settings.home) not in events
    assert ("models/x.gguf" in events) == (kind == "model")


def test_uploads_are_named_relative_to_home_everywhere(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    """Defect 11 of issue 13: documents, citations, ragtune.passages and /v1/retrieve returned
    the absolute path of an upload; each now names it as the documents list does, and a
    ``source`` filter takes that name back."""
    home = tmp_path / "home"
    fresh = settings.model_copy(update={"home": home})
    open_store(home / "index", embedder).close()
    text = b"The Quokka protocol retries every request three times with jittered backoff.\n"
    with TestClient(create_app(fresh, llm=ScriptedLLM("Three times [1]."), embedder=embedder)) as c:
        up = c.post("/v1/documents", files={"file": ("quokka.txt", text)})
        assert up.status_code == 201, up.text
        source = up.json()["source"]
        assert source.startswith("uploads/") and source.endswith(".txt")
        [listed] = c.get("/v1/documents").json()["data"]
        assert listed["source"] == source
        q = "How often does the Quokka protocol retry?"
        for filt in (source, "uploads", str((home / source).resolve())):  # as shown, folder, abs
            hits = c.post("/v1/retrieve", json={"query": q, "filters": {"source": filt}}).json()
            assert [h["source"] for h in hits["data"]] == [source], filt
        assert (
            c.post("/v1/retrieve", json={"query": q, "filters": {"source": "docs"}}).json()["data"]
            == []
        )
        body = {
            "messages": [{"role": "user", "content": q}],
            "retrieval": {"filters": {"source": "uploads"}},
        }
        answer = c.post("/v1/chat/completions", json=body)
        assert answer.status_code == 200, answer.text
        out = answer.json()
        assert [p["source"] for p in out["ragtune"]["passages"]] == [source]
        assert [x["source"] for x in out["citations"]] == [source]
        streamed = c.post("/v1/chat/completions", json={**body, "stream": True}).text
        for served in (up.text, answer.text, streamed, str(hits)):
            assert str(tmp_path) not in served
        assert c.delete(f"/v1/documents/{listed['id']}").json()["deleted"] is True
    assert not any((home / "uploads").iterdir())
