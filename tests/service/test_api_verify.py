"""``ragtune.verification`` through the API: plain and streamed, with a scripted model.

The last test drives a real uvicorn server on 127.0.0.1 with the official ``openai`` client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from ingest.embed import Embedder
from service.app import create_app
from service.settings import Settings
from tests.conftest import free_port
from tests.service.conftest import ScriptedLLM, uvicorn_in_thread
from tests.service.test_api import QUESTION, ask

# No [n]: the old fallback cited all five passages the model was shown.
UNMARKED = "The key and value vectors are shared across all heads."
UNSUPPORTED = "Bananas ripen faster in a paper bag. Apples keep longer in the fridge."
NO_ANSWER = "I don't know based on the provided documents."


def streamed(client: TestClient, **body: Any) -> tuple[str, dict[str, Any]]:
    """The streamed text and the last chunk (the one with citations and ragtune)."""
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": QUESTION}], "stream": True, **body},
    ) as resp:
        assert resp.status_code == 200
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    return text, chunks[-1]


@pytest.fixture
def llm() -> ScriptedLLM:
    return ScriptedLLM(UNMARKED)


@pytest.fixture
def client(settings: Settings, llm: ScriptedLLM, embedder: Embedder) -> Iterator[TestClient]:
    with TestClient(create_app(settings, llm=llm, embedder=embedder)) as c:
        yield c


def test_an_unmarked_answer_cites_only_the_passage_that_supports_it(
    client: TestClient, llm: ScriptedLLM
) -> None:
    body = ask(client).json()
    # The request's own passages are the ones fenced with its keyed marker.
    opens = re.findall(r"^<passage-[0-9a-f]{8}>$", llm.prompts[-1].text or "", re.MULTILINE)
    assert len(opens) == len(body["ragtune"]["passages"]) >= 2
    [cited] = body["citations"]
    assert cited["supported"] is True
    assert "shared across all heads" in " ".join(cited["text"].split())
    v = body["ragtune"]["verification"]
    assert (v["verdict"], v["action"], v["supported_share"], v["min_support"]) == (
        "supported", "none", 1.0, 0.6,
    )  # fmt: skip
    [s] = v["sentences"]
    assert (s["text"], s["start"], s["end"]) == (UNMARKED, 0, len(UNMARKED))
    assert s["passage"] == cited["index"] and s["supported"] and s["support"] >= 0.6
    assert s["markers"] == [] and "original" not in v
    assert "verify" in body["ragtune"]["timings"]

    # Streamed: the same verification and citations ride on the last chunk.
    text, last = streamed(client)
    assert text == UNMARKED
    assert last["ragtune"]["verification"] == v and last["citations"] == body["citations"]


def test_refuse_answers_dont_know_unless_streamed(client: TestClient, llm: ScriptedLLM) -> None:
    llm.answer = UNSUPPORTED
    flagged = ask(client).json()
    assert flagged["choices"][0]["message"]["content"] == UNSUPPORTED
    assert flagged["citations"] == []  # no sentence is supported: nothing earns a citation
    assert flagged["ragtune"]["verification"]["action"] == "flagged"

    refused = ask(client, verify={"on_unsupported": "refuse"}).json()
    assert refused["choices"][0]["message"]["content"] == NO_ANSWER and refused["citations"] == []
    v = refused["ragtune"]["verification"]
    assert (v["verdict"], v["action"], v["original"]) == ("unsupported", "refused", UNSUPPORTED)
    assert [s["supported"] for s in v["sentences"]] == [False, False]

    text, last = streamed(client, verify={"on_unsupported": "refuse"})
    assert text == UNSUPPORTED and last["ragtune"]["verification"]["action"] == "flagged"

    # The request's threshold applies: at 0 every sentence is supported.
    lax = ask(client, verify={"min_support": 0.0, "on_unsupported": "refuse"}).json()
    assert lax["ragtune"]["verification"]["verdict"] == "supported"
    assert lax["choices"][0]["message"]["content"] == UNSUPPORTED
    assert ask(client, verify={"min_support": 2}).status_code == 422


def test_openai_client_reads_the_verification(
    settings: Settings, llm: ScriptedLLM, embedder: Embedder
) -> None:
    from openai import OpenAI

    app = create_app(settings, llm=llm, embedder=embedder)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    with uvicorn_in_thread(config) as base:
        client = OpenAI(base_url=f"{base}/v1", api_key="unused")
        messages: Any = [{"role": "user", "content": QUESTION}]
        resp = client.chat.completions.create(model="ragtune", messages=messages)
        v = (resp.model_extra or {})["ragtune"]["verification"]
        assert v["verdict"] == "supported" and v["sentences"][0]["text"] == UNMARKED
        last = None
        for chunk in client.chat.completions.create(
            model="ragtune", messages=messages, stream=True
        ):
            last = chunk
        assert last is not None and (last.model_extra or {})["ragtune"]["verification"] == v


def test_records_from_before_verification_still_load(client: TestClient) -> None:
    from service.answer import Answer

    sent = ask(client).json()
    client.post("/v1/feedback", json={"response_id": sent["id"], "rating": "up"})
    state = client.app.state.ragtune  # type: ignore[attr-defined]
    [kept] = [f.answer for f in state.feedback.feedback() if f.response_id == sent["id"]]
    old = kept.model_dump(mode="json")
    del old["verification"]
    for c in old["citations"]:
        del c["supported"]
    record = Answer.model_validate(old)
    assert record.verification is None and record.citations[0].supported is None
    assert "verification" not in record.ragtune().model_dump(mode="json")
    assert "supported" not in record.citations[0].model_dump(mode="json")
