"""Multi-turn chat requests: the follow-up is searched for in context and the prompt shows the turns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.embed import Embedder
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import ScriptedLLM
from tests.service.test_api import assert_openai_error

Q1 = "How large is the header of the zlib format?"
A1 = "The zlib format has a very small header of only two bytes [1]."
FOLLOW_UP = "And the trailer?"
DIALOGUE = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": Q1},
    {"role": "assistant", "content": A1},
    {"role": "user", "content": FOLLOW_UP},
]
EVIDENCE = "four-byte trailer with a fast check value"


@pytest.fixture
def llm() -> ScriptedLLM:
    return ScriptedLLM("A four-byte trailer [1].")


@pytest.fixture
def client(settings: Settings, llm: ScriptedLLM, embedder: Embedder) -> Iterator[TestClient]:
    with TestClient(create_app(settings, llm=llm, embedder=embedder)) as c:
        yield c


def chat(client: TestClient, messages: list[dict[str, str]], **body: Any) -> Any:
    return client.post("/v1/chat/completions", json={"messages": messages, **body})


def read(citations: list[dict[str, Any]]) -> str:
    return " ".join(" ".join(c["text"].split()) for c in citations)


def test_a_follow_up_is_retrieved_with_its_conversation(
    client: TestClient, llm: ScriptedLLM
) -> None:
    resp = chat(client, DIALOGUE)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["ragtune"]["conversation"] == {
        "condense": "concat",
        "query": f"{Q1}\n{FOLLOW_UP}",
        "history_turns": 1,
    }
    assert "condense" in body["ragtune"]["timings"]
    # The model read the evidence, and the earlier turn (its [1] removed) between the passages
    # and the follow-up.
    prompt = llm.prompts[-1].text or ""
    assert EVIDENCE in " ".join(prompt.split())
    tail = prompt[prompt.rindex("Passages:") :]
    assert f"Conversation so far:\nQuestion: {Q1}\nAnswer: {A1.removesuffix(' [1].')}.\n" in tail
    assert tail.endswith(f"\n\nQuestion: {FOLLOW_UP}\nAnswer:")
    assert "Answer briefly." not in prompt  # the client's system message is not the template's


def test_the_follow_up_alone_finds_nothing_useful(client: TestClient, llm: ScriptedLLM) -> None:
    """What the service did before conversations, still available per request."""
    off = {"condense": "none", "history_tokens": 0}
    body = chat(client, DIALOGUE, conversation=off).json()
    assert body["ragtune"]["conversation"] == {
        "condense": "none",
        "query": FOLLOW_UP,
        "history_turns": 0,
    }
    assert EVIDENCE not in read(body["citations"])
    assert all("Conversation so far:" not in (p.text or "") for p in llm.prompts)


def test_a_single_question_records_no_conversation(client: TestClient) -> None:
    body = chat(client, [{"role": "user", "content": Q1}]).json()
    assert "conversation" not in body["ragtune"] and "condense" not in body["ragtune"]["timings"]


def test_a_streamed_follow_up_carries_the_query_on_its_last_chunk(client: TestClient) -> None:
    with client.stream(
        "POST", "/v1/chat/completions", json={"messages": DIALOGUE, "stream": True}
    ) as resp:
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["ragtune"]["conversation"]["query"] == f"{Q1}\n{FOLLOW_UP}"


def test_conversation_settings_are_checked_like_any_extension(client: TestClient) -> None:
    assert_openai_error(chat(client, DIALOGUE, conversation={"condense": "magic"}), 422)
    assert_openai_error(chat(client, DIALOGUE, conversation={"colour": 1}), 422)
    assert_openai_error(chat(client, DIALOGUE, conversation={"history_tokens": -1}), 422)
