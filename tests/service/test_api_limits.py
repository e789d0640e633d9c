"""Keys, rate limits, uploads, deletes, feedback and metrics through the app (scripted model)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ingest.embed import Embedder
from service.app import create_app
from service.security import hash_key
from service.settings import Settings
from tests.conftest import truncated_pdf
from tests.service.conftest import ScriptedLLM
from tests.service.test_api import QUESTION, ask, assert_openai_error


def client_for(
    settings: Settings, embedder: Embedder, llm: ScriptedLLM | None = None
) -> TestClient:
    return TestClient(create_app(settings, llm=llm or ScriptedLLM(), embedder=embedder))


def test_api_keys_from_settings_and_hashed_file(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# ops key\n{hash_key('file-key')}\n")
    s = settings.model_copy(
        update={
            "service": settings.service.model_copy(
                update={
                    "api_keys": [SecretStr("env-key")],
                    "keys_file": keys_file,
                }
            )
        }
    )
    with client_for(s, embedder) as c:
        assert_openai_error(ask(c), 401)
        assert_openai_error(
            ask(c, headers=None)
            if False
            else c.post(
                "/v1/retrieve", json={"query": "x"}, headers={"Authorization": "Bearer wrong"}
            ),
            401,
        )
        for key in ("env-key", "file-key"):
            ok = c.post(
                "/v1/retrieve", json={"query": "CHUNK"}, headers={"Authorization": f"Bearer {key}"}
            )
            assert ok.status_code == 200, ok.text
        assert c.get("/healthz").status_code == 200  # probes need no key
    assert "file-key" not in keys_file.read_text()


def test_rate_limit_per_key_answers_429_with_retry_after(
    settings: Settings, embedder: Embedder
) -> None:
    s = settings.model_copy(
        update={"service": settings.service.model_copy(update={"rate_limit_per_minute": 2})}
    )
    with client_for(s, embedder) as c:
        codes = [c.post("/v1/retrieve", json={"query": "CHUNK"}).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        resp = c.post("/v1/retrieve", json={"query": "CHUNK"})
        err = assert_openai_error(resp, 429)
        assert err["code"] == "rate_limit_exceeded" and int(resp.headers["Retry-After"]) >= 1


@pytest.fixture
def writable(settings: Settings, tmp_path: Path, shared_data: Path, embedder: Embedder) -> Settings:
    """A fresh, empty data directory: uploads and deletes change it."""
    return settings.model_copy(update={"home": tmp_path / "home"})


def test_upload_ask_cite_delete_ask_again(
    writable: Settings, embedder: Embedder, shared_data: Path
) -> None:
    llm = ScriptedLLM()
    guide = (shared_data / "corpus" / "llm-guide.txt").read_bytes()
    with client_for(writable, embedder, llm) as c:
        assert ask(c).json()["citations"] == []  # empty index: don't know
        up = c.post("/v1/documents", files={"file": ("../../etc/guide.txt", guide, "text/plain")})
        assert up.status_code == 201, up.text
        doc = up.json()
        assert doc["filename"] == "guide.txt" and doc["chunks"] > 0
        assert doc["source"].startswith("uploads/")  # relative to HOME, as clients see it
        stored = writable.home / doc["source"]
        assert stored.is_file() and "guide" not in stored.name
        again = c.post("/v1/documents", files={"file": ("guide.txt", guide, "text/plain")})
        assert again.json()["status"] == "unchanged" and again.json()["id"] == doc["id"]
        listed = c.get("/v1/documents").json()["data"]
        assert [d["id"] for d in listed] == [doc["id"]]
        cited = ask(c).json()["citations"]
        assert cited and cited[0]["doc_id"] == doc["id"]
        gone = c.delete(f"/v1/documents/{doc['id']}")
        assert gone.json() == {"id": doc["id"], "object": "document", "deleted": True}
        assert not stored.exists()
        assert ask(c).json()["citations"] == []
        assert_openai_error(c.delete(f"/v1/documents/{doc['id']}"), 404)


def test_an_upload_leaves_another_writers_temporary_file_alone(
    writable: Settings, embedder: Embedder, shared_data: Path
) -> None:
    """Regression: replicas storing the same bytes at once shared one ``<name>.part`` file, so
    one truncated or renamed away the file the other was writing (its rename then failed as a
    503 storage_error). Each upload now writes a temporary file of its own."""
    import hashlib

    guide = (shared_data / "corpus" / "llm-guide.txt").read_bytes()
    uploads = writable.home / "uploads"
    uploads.mkdir(parents=True)
    # Another replica, halfway through storing the same upload under the name it used to share.
    theirs = uploads / f"{hashlib.sha256(guide).hexdigest()[:32]}.txt.part"
    theirs.write_bytes(guide[:100])
    with client_for(writable, embedder) as c:
        up = c.post("/v1/documents", files={"file": ("guide.txt", guide, "text/plain")})
        assert up.status_code == 201, up.text
    assert (writable.home / up.json()["source"]).read_bytes() == guide
    assert theirs.read_bytes() == guide[:100]  # still theirs to finish and rename
    assert sorted(p.name for p in uploads.iterdir()) == sorted(
        [theirs.name, Path(up.json()["source"]).name]
    )


def test_upload_rejects_bad_files_with_reasons(
    writable: Settings, embedder: Embedder, shared_data: Path, tmp_path: Path
) -> None:
    broken = truncated_pdf(shared_data, tmp_path / "cut.pdf").read_bytes()
    small = writable.model_copy(
        update={"service": writable.service.model_copy(update={"max_upload_mb": 0.01})}
    )
    with client_for(small, embedder) as c:
        err = assert_openai_error(
            c.post("/v1/documents", files={"file": ("paper.pdf", broken)}), 413
        )
        assert "0.01 MB" in err["message"]
    with client_for(writable, embedder) as c:
        err = assert_openai_error(
            c.post("/v1/documents", files={"file": ("paper.pdf", broken)}), 422
        )
        assert err["code"] == "document_quarantined" and "paper.pdf" in err["message"]
        # The client has the reason; the store keeps no record of a file it does not keep.
        assert c.get("/v1/documents").json()["quarantined"] == []
        assert_openai_error(c.post("/v1/documents", files={"file": ("x.exe", b"MZ")}), 400, "file")


def test_feedback_is_stored_with_the_answer(settings: Settings, embedder: Embedder) -> None:
    with client_for(settings, embedder) as c:
        rid = ask(c).json()["id"]
        resp = c.post(
            "/v1/feedback",
            json={
                "response_id": rid,
                "rating": "down",
                "comment": "too vague",
                "corrected_answer": "The key and value vectors.",
            },
        )
        assert resp.status_code == 201 and resp.json()["response_id"] == rid
        assert_openai_error(
            c.post("/v1/feedback", json={"response_id": "nope", "rating": "up"}), 404
        )
        assert_openai_error(c.post("/v1/feedback", json={"response_id": rid, "rating": "meh"}), 422)
        rows = c.app.state.ragtune.feedback.feedback()  # type: ignore[attr-defined]
    [row] = [r for r in rows if r.response_id == rid]
    assert row.rating == "down" and row.corrected_answer == "The key and value vectors."
    assert row.answer.question == QUESTION and row.answer.citations and row.answer.provenance.prompt


def test_metrics_count_requests_stages_and_tokens(settings: Settings, embedder: Embedder) -> None:
    with client_for(settings, embedder) as c:
        ask(c)
        text = c.get("/metrics").text
    assert 'ragtune_requests_total{route="/v1/chat/completions",status="200"} 1.0' in text
    for stage in ("retrieval", "prompt", "generation"):
        assert f'ragtune_stage_seconds_count{{stage="{stage}"}} 1.0' in text
    assert 'ragtune_tokens_total{kind="completion"}' in text


def test_disconnect_stops_generation(settings: Settings, embedder: Embedder) -> None:
    llm = ScriptedLLM(answer=" ".join(f"w{i}" for i in range(200)), delay=0.01)
    with (
        client_for(settings, embedder, llm) as c,
        c.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": QUESTION}],
                "stream": True,
                "max_tokens": 200,
            },
        ) as resp,
    ):
        for i, _ in enumerate(resp.iter_lines()):
            if i > 3:
                break  # the client goes away after a few chunks
    time.sleep(3)  # uncancelled, all 200 words would be out after ~2 s
    assert llm.streamed < 100


def test_backend_down_gives_503_within_the_timeout(settings: Settings, embedder: Embedder) -> None:
    import socket

    from service.llm.settings import LLMSettings

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = settings.model_copy(
        update={
            "llm": LLMSettings(
                backend="openai",
                base_url=f"http://127.0.0.1:{port}/v1",
                model="m",
                connect_timeout_s=0.5,
                retries=1,
                style="chat",
            )
        }
    )
    with TestClient(create_app(down, embedder=embedder)) as c:
        assert_openai_error(c.get("/readyz"), 503)
        started = time.perf_counter()
        resp = ask(c)
        err = assert_openai_error(resp, 503)
        assert err["code"] == "model_unavailable" and resp.headers["Retry-After"]
        assert time.perf_counter() - started < 5
