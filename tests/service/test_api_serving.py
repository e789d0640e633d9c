"""GET /v1/serving and the passages the `ragtune` block lists: what the console compares."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ingest.embed import Embedder
from service import runs
from service.answer import Answer
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import ScriptedLLM
from tests.service.test_api import QUESTION, ask, assert_openai_error
from tests.service.test_api_evals import write_run


@pytest.fixture
def client(own_settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    write_run(runs.runs_dir(own_settings) / "dev", "2026-12-01T10:00:00+00:00")
    with TestClient(create_app(own_settings, llm=ScriptedLLM(), embedder=embedder)) as c:
        yield c


def served_with(answer: dict[str, object], config: dict[str, object]) -> None:
    """The answer was produced under ``config`` (a GET /v1/serving body)."""
    info = answer["ragtune"]
    rag = config["rag"]
    assert isinstance(info, dict) and isinstance(rag, dict)
    assert info["prompt"] == rag["template"]
    assert info["serving_version"] == config["serving_version"]
    assert info["index_version"] == config["index_version"]
    assert info["retrieval_k"] == rag["retrieval"]["k"]
    assert info["retrieval"]["mode"] == rag["retrieval"]["mode"]
    for name in ("temperature", "top_p", "top_k", "max_tokens"):
        assert info["params"][name] == rag["sampling"][name], name


def test_serving_shows_the_configuration_in_force_and_follows_promotions(
    client: TestClient, own_settings: Settings
) -> None:
    resp = client.get("/v1/serving")
    assert resp.status_code == 200, resp.text
    before = resp.json()
    assert before["object"] == "serving"
    assert before["serving_version"] == 0 and before["promotion"] is None
    assert before["model"] == client.get("/v1/models").json()["data"][0]["id"] == "scripted"
    assert before["style"] == "completion" and before["backend"] == "ScriptedLLM"
    assert before["index_version"] == client.get("/readyz").json()["index_version"]
    settings_rag = own_settings.rag.model_dump(mode="json")
    assert before["rag"] == settings_rag | {"template": "grounded-qa@1"}
    assert set(before["rag"]["retrieval"]) >= {"mode", "k", "min_score", "fusion", "window_tokens"}
    assert set(before["rag"]["conversation"]) >= {"condense", "history_tokens"}
    served_with(ask(client).json(), before)

    promoted = client.post("/v1/eval/promotions", json={"run_id": "dev"})
    assert promoted.status_code == 201, promoted.text
    after = client.get("/v1/serving").json()
    assert after["serving_version"] == promoted.json()["serving_version"] == 1
    assert after["promotion"] == {
        "version": 1,
        "created": promoted.json()["created"],
        "config": "cafe",
        "dataset": "dev.jsonl",
    }
    assert after["rag"]["template"] == "grounded-qa@2"
    assert after["rag"]["sampling"]["temperature"] == 0.5
    assert after["rag"]["retrieval"]["k"] == 3
    # what the promotion did not set stays the settings' value
    assert after["rag"]["retrieval"]["mode"] == settings_rag["retrieval"]["mode"]
    assert after["rag"]["conversation"] == settings_rag["conversation"]
    served_with(ask(client).json(), after)

    assert client.post("/v1/eval/rollback").json()["serving_version"] == 0
    assert client.get("/v1/serving").json() == before


def test_serving_needs_a_key_when_keys_are_set(own_settings: Settings, embedder: Embedder) -> None:
    service = own_settings.service.model_copy(update={"api_keys": [SecretStr("serving-key")]})
    s = own_settings.model_copy(update={"service": service})
    with TestClient(create_app(s, llm=ScriptedLLM(), embedder=embedder)) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            assert_openai_error(c.get("/v1/serving", headers=headers), 401)
        ok = c.get("/v1/serving", headers={"Authorization": "Bearer serving-key"})
        assert ok.status_code == 200 and ok.json()["rag"]["template"] == "grounded-qa@1"
        paths = c.get("/openapi.json", headers={"Authorization": "Bearer serving-key"}).json()
        op = paths["paths"]["/v1/serving"]["get"]
    assert op["summary"] and op["responses"]["200"]
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ServingConfig"}


def test_ragtune_lists_every_passage_the_model_read(client: TestClient) -> None:
    """Plain and streamed answers name each passage shown (cited or not) by chunk, doc, offsets."""
    four = {"k": 4, "window_tokens": 0}  # chunks alone: no two merge into one window
    body = ask(client, retrieval=four).json()
    passages = body["ragtune"]["passages"]
    assert [p["index"] for p in passages] == list(range(1, len(passages) + 1))
    assert 1 < len(passages) <= 4
    keys = {"index", "chunk_id", "doc_id", "source", "page", "heading", "score", "start", "end"}
    assert all(set(p) == keys for p in passages)
    by_index = {p["index"]: p for p in passages}
    assert body["citations"]
    for c in body["citations"]:  # a citation is one of the passages, identified alike
        p = by_index[c["index"]]
        assert (p["chunk_id"], p["doc_id"], p["start"], p["end"]) == (
            c["chunk_id"],
            c["doc_id"],
            c["start"],
            c["end"],
        )
    fewer = ask(client, retrieval={"k": 2, "window_tokens": 0}).json()["ragtune"]["passages"]
    assert [p["chunk_id"] for p in fewer] == [p["chunk_id"] for p in passages[:2]]

    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": QUESTION}],
            "stream": True,
            "retrieval": four,
        },
    ) as resp:
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    last = json.loads(events[-2])
    assert last["ragtune"]["passages"] == passages


def test_records_made_before_passages_read_back_unchanged() -> None:
    """A stored answer without ``passages`` loads, and its ``ragtune`` JSON gains no key."""
    old = Answer.from_legacy(
        QUESTION,
        "Keys and values [1].",
        [],
        {
            "prompt": "grounded-qa@1",
            "retrieval_k": 5,
            "index_version": 3,
            "backend": "llamacpp",
            "params": {
                "temperature": 0.1,
                "top_p": 1.0,
                "top_k": None,
                "max_tokens": 64,
                "seed": None,
            },
            "timings": {"retrieval": 0.01},
        },
    )
    assert old.provenance.passages is None
    assert "passages" not in old.ragtune().model_dump(mode="json")
    again = Answer.model_validate_json(old.model_dump_json())
    assert again == old
