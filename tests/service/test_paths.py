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
