"""The official `openai` client against a real `ragtune serve`: what a user's code relies on.

Run twice: by the main suite with the pinned client (pyproject's dev extra), and by
test_openai_latest.py under the newest client in .venv-openai-latest, against the same server.
So this module imports nothing but `openai` and pytest: the newest client's environment has
neither ragtune nor its dependencies.
"""

from __future__ import annotations

import os
from typing import Any

import openai
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUESTION = "What value does zpipe.c define for CHUNK?"
MESSAGES: list[Any] = [{"role": "user", "content": QUESTION}]
SERVER_ENV = "RAGTUNE_TEST_SERVER"  # "BASE_URL KEY": a server started by the main suite


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(base URL, API key) of a keyed `ragtune serve`."""
    if given := os.environ.get(SERVER_ENV):
        base, key = given.split()
        return base, key
    served: tuple[str, str] = request.getfixturevalue("client_server")
    return served


@pytest.fixture(scope="module")
def client(server: tuple[str, str]) -> openai.OpenAI:
    base, key = server
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def model(client: openai.OpenAI) -> str:
    [card] = client.models.list().data
    assert card.object == "model" and card.owned_by == "ragtune"
    return card.id


def test_models_list_names_the_serving_model(client: openai.OpenAI, model: str) -> None:
    assert [m.id for m in client.models.list()] == [model]


def test_chat_completion_with_ragtune_fields(client: openai.OpenAI, model: str) -> None:
    resp = client.chat.completions.create(
        model=model, messages=MESSAGES, temperature=0, max_tokens=24
    )
    assert resp.object == "chat.completion" and resp.id.startswith("chatcmpl-")
    [choice] = resp.choices
    assert choice.message.role == "assistant" and (choice.message.content or "").strip()
    assert choice.finish_reason in ("stop", "length")
    assert resp.usage is not None and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    extra = resp.model_extra or {}
    info = extra["ragtune"]
    assert info["prompt"] and info["retrieval_k"] >= 1 and info["index_version"] >= 1
    assert isinstance(extra["citations"], list)


def test_streaming_chunks_add_up_to_the_answer(client: openai.OpenAI, model: str) -> None:
    kwargs: dict[str, Any] = {"model": model, "messages": MESSAGES, "temperature": 0}
    whole = client.chat.completions.create(max_tokens=24, **kwargs)
    chunks = list(
        client.chat.completions.create(
            max_tokens=24, stream=True, stream_options={"include_usage": True}, **kwargs
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content  # temperature 0: the same answer both ways
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason
    usage = [c.usage for c in chunks if c.usage is not None]
    assert usage and usage[-1].completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    assert any("citations" in (c.model_extra or {}) for c in chunks)


def test_retrieval_extension_through_extra_body(client: openai.OpenAI, model: str) -> None:
    resp = client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        max_tokens=4,
        extra_body={"retrieval": {"mode": "bm25", "k": 2}},
    )
    info = (resp.model_extra or {})["ragtune"]
    assert info["retrieval"] == {"mode": "bm25"} and info["retrieval_k"] == 2


def test_errors_are_the_clients_exception_classes(
    client: openai.OpenAI, server: tuple[str, str], model: str
) -> None:
    base, _ = server
    stranger = openai.OpenAI(base_url=f"{base}/v1", api_key="not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        stranger.chat.completions.create(model=model, messages=MESSAGES, max_tokens=4)
    assert auth.value.status_code == 401 and auth.value.code == "invalid_api_key"

    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=10**6)
    assert bad.value.param == "max_tokens" and bad.value.type == "invalid_request_error"

    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        client.chat.completions.create(model=model, messages=[{"role": "wizard", "content": "x"}])  # type: ignore[list-item, typeddict-item]
    assert invalid.value.param and invalid.value.param.startswith("messages")

    with pytest.raises(openai.PermissionDeniedError) as denied:  # a query key may not delete
        client.delete("/documents/no-such-document", cast_to=object)
    assert denied.value.status_code == 403 and denied.value.code == "insufficient_role"

    with pytest.raises(openai.NotFoundError) as missing:
        client.get("/templates/no-such-template/versions/1", cast_to=object)
    assert missing.value.param == "version" and "no-such-template" in missing.value.message
