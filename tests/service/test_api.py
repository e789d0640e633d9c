"""API plumbing with a scripted model: real FAISS, real encoder, real index; fake generation."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.embed import Embedder
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import ScriptedLLM

QUESTION = "In Multi-Query Attention, what is shared across all attention heads?"


@pytest.fixture
def llm() -> ScriptedLLM:
    return ScriptedLLM()


@pytest.fixture
def client(settings: Settings, llm: ScriptedLLM, embedder: Embedder) -> Iterator[TestClient]:
    with TestClient(create_app(settings, llm=llm, embedder=embedder)) as c:
        yield c


def ask(client: TestClient, question: str = QUESTION, **body: Any) -> Any:
    return client.post(
        "/v1/chat/completions",
        json={"model": "ragtune", "messages": [{"role": "user", "content": question}], **body},
    )


def assert_openai_error(resp: Any, status: int, param: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert err["param"] == param
    return err


def test_chat_answer_is_grounded_and_cites(client: TestClient, llm: ScriptedLLM) -> None:
    resp = ask(client, temperature=0.3, seed=7)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["choices"][0]["message"] == {"role": "assistant", "content": llm.answer}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] == sum(
        body["usage"][k] for k in ("prompt_tokens", "completion_tokens")
    )
    [cited] = body["citations"]  # the answer cites [1] only
    assert cited["index"] == 1 and cited["source"].endswith("llm-guide.txt")
    assert "key and value vectors are shared across all heads" in " ".join(cited["text"].split())
    info = body["ragtune"]
    assert info["prompt"] == "grounded-qa@1" and info["retrieval_k"] == 5
    assert info["index_version"] >= 1 and info["backend"] == "ScriptedLLM"
    assert info["params"]["temperature"] == 0.3 and info["params"]["seed"] == 7
    assert {"retrieval", "prompt", "generation"} <= set(info["timings"])
    # The model saw the passage and, last, the question.
    prompt = llm.prompts[-1].text or ""
    assert "shared across all heads" in prompt
    assert prompt.rstrip().rsplit(QUESTION, 1)[1].count("[1]") == 0  # question after passages


def test_streaming_sends_deltas_then_citations_then_done(
    client: TestClient, llm: ScriptedLLM
) -> None:
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": QUESTION}],
            "stream": True,
        },
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == llm.answer
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert [c["index"] for c in last["citations"]] == [1]
    assert last["ragtune"]["prompt"] == "grounded-qa@1"
    assert all("citations" not in c for c in chunks[:-1])


def test_a_stream_that_breaks_keeps_the_text_sent_before_the_error(
    settings: Settings, embedder: Embedder
) -> None:
    """Text the model produced before it failed reaches the client, then one error event."""
    llm = ScriptedLLM(fail_after=3)
    with (
        TestClient(create_app(settings, llm=llm, embedder=embedder)) as c,
        c.stream(
            "POST",
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": QUESTION}], "stream": True},
        ) as resp,  # fmt: skip
    ):
        events = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")]
    *chunks, error = events
    text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks)
    assert text == " ".join(llm.answer.split()[:3])
    assert error["error"]["type"] == "service_unavailable" and "broke" in error["error"]["message"]


def test_nothing_relevant_means_dont_know_without_calling_the_model(
    client: TestClient, llm: ScriptedLLM
) -> None:
    resp = ask(client, retrieval={"min_score": 0.99})
    assert resp.status_code == 200
    body = resp.json()
    assert "don't know" in body["choices"][0]["message"]["content"].lower()
    assert body["citations"] == [] and llm.prompts == []


def test_retrieval_options_and_template_choice(client: TestClient, llm: ScriptedLLM) -> None:
    resp = ask(
        client, retrieval={"k": 2, "filters": {"source": "/nowhere"}}, prompt="grounded-qa@2"
    )
    assert resp.status_code == 200
    assert resp.json()["ragtune"]["prompt"] == "grounded-qa@2"
    assert resp.json()["citations"] == []  # the filter matched nothing: don't know
    assert_openai_error(ask(client, prompt="nope@9"), 400, "prompt")
    assert_openai_error(ask(client, retrieval={"filters": {"colour": "red"}}), 400)


def test_retrieve_endpoint(client: TestClient) -> None:
    resp = client.post(
        "/v1/retrieve", json={"query": "What value does zpipe.c define for CHUNK?", "k": 3}
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "list" and len(body["data"]) == 3
    top = body["data"][0]
    assert set(top) == {"chunk_id", "doc_id", "source", "page", "heading", "score", "text"}
    assert [d["score"] for d in body["data"]] == sorted(
        (d["score"] for d in body["data"]), reverse=True
    )
    assert any("#define CHUNK 16384" in d["text"] for d in body["data"])
    only = client.post(
        "/v1/retrieve", json={"query": "CHUNK", "k": 3, "filters": {"source": top["source"]}}
    )
    assert {d["source"] for d in only.json()["data"]} == {top["source"]}


def test_retrieve_grouped_by_document_gives_distinct_documents(client: TestClient) -> None:
    query = {"query": "What value does zpipe.c define for CHUNK?", "k": 5, "min_score": -1}
    chunks = client.post("/v1/retrieve", json=query).json()["data"]
    assert len(chunks) == 5 and len({d["doc_id"] for d in chunks}) < 5  # zlib crowds in
    resp = client.post("/v1/retrieve", json={**query, "group_by": "document"})
    assert resp.status_code == 200, resp.text
    docs = [d["doc_id"] for d in resp.json()["data"]]
    assert len(docs) == len(set(docs)) == 2  # every document of this index, once
    assert docs[0] == chunks[0]["doc_id"] and resp.json()["data"][0] == chunks[0]
    assert_openai_error(client.post("/v1/retrieve", json={**query, "group_by": "page"}), 422)


def test_bad_requests_get_openai_shaped_errors(client: TestClient, settings: Settings) -> None:
    assert_openai_error(client.post("/v1/chat/completions", json={"messages": []}), 422, "messages")
    assert_openai_error(ask(client, temperature=5), 422, "temperature")
    assert_openai_error(ask(client, max_tokens=10**6), 400, "max_tokens")
    assert_openai_error(ask(client, retrieval={"k": 10**4}), 400, "retrieval.k")
    many = [{"role": "user", "content": "hi"}] * (settings.service.max_messages + 1)
    assert_openai_error(
        client.post("/v1/chat/completions", json={"messages": many}), 413, "messages"
    )
    huge = "word " * settings.service.max_body_bytes
    assert_openai_error(ask(client, huge), 413)
    assert_openai_error(ask(client, "   "), 400, "messages")
    assert_openai_error(client.get("/v1/nothing-here"), 404)


def test_health_ready_models(client: TestClient, llm: ScriptedLLM) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["index_version"] >= 1
    assert client.get("/v1/models").json()["data"][0]["id"] == "scripted"
    llm.is_ready = False
    assert_openai_error(client.get("/readyz"), 503)


def test_passage_fences_are_stop_sequences(client: TestClient, llm: ScriptedLLM) -> None:
    """Small models echo a fence after answering ("...\n<passage>"); generation must stop there."""
    from service import rag

    state = client.app.state.ragtune  # type: ignore[attr-defined]
    plan = rag.plan_answer(
        question=QUESTION,
        embedder=state.embedder,
        index=state.index,
        llm=llm,
        registry=state.registry,
        rag=state.settings.rag,
        params=rag.sampling_params(state.settings.rag),
        fence_key=state.fence_key,
    )
    assert {"<passage>", "</passage>", *plan.rendered.fence} <= set(plan.params.stop)


def test_chat_fences_passages_with_the_installation_key(
    client: TestClient, llm: ScriptedLLM, settings: Settings
) -> None:
    """Passages are fenced with an HMAC marker: the same request renders the same prompt, another
    request another marker, and the instruction and examples before them never change."""
    for question in (QUESTION, QUESTION, "What does zlib's deflate() do?"):
        assert ask(client, question).status_code == 200
    a, again, other = (p.text or "" for p in llm.prompts[-3:])
    assert a == again
    fences = [re.findall(r"^</?passage-([0-9a-f]{8})>$", t, re.MULTILINE) for t in (a, other)]
    assert fences[0] and fences[1] and len(set(fences[0])) == len(set(fences[1])) == 1
    assert fences[0][0] != fences[1][0]
    prefix = a[: a.rindex("\n---\n")]
    assert other.startswith(prefix) and "<passage>\n" in prefix
    key = settings.home / "fence.key"
    assert key.stat().st_mode & 0o777 == 0o600


class LoopCheckingLLM(ScriptedLLM):
    """Records whether ``count_tokens`` ran on an event loop's thread (a remote count blocks)."""

    def __init__(self) -> None:
        super().__init__()
        self.counted_on_loop: list[bool] = []

    def count_tokens(self, text: str) -> int:
        try:
            asyncio.get_running_loop()
            self.counted_on_loop.append(True)
        except RuntimeError:
            self.counted_on_loop.append(False)
        return super().count_tokens(text)


def test_question_tokens_are_counted_off_the_event_loop(
    settings: Settings, embedder: Embedder
) -> None:
    llm = LoopCheckingLLM()
    with TestClient(create_app(settings, llm=llm, embedder=embedder)) as c:
        assert ask(c).status_code == 200
        assert_openai_error(ask(c, "word " * 600), 413, "messages")
    assert llm.counted_on_loop and not any(llm.counted_on_loop)


def test_the_stored_record_is_what_the_client_got(client: TestClient, llm: ScriptedLLM) -> None:
    """Plain and streamed answers, and the record kept for feedback, serialize one model."""
    body = ask(client, retrieval={"mode": "hybrid", "mmr": True}).json()
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": QUESTION}], "stream": True},
    ) as resp:
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    last = json.loads(events[-2])
    assert set(body["ragtune"]["retrieval"]) == {"mode", "fusion", "dense_weight", "mmr_lambda"}
    assert set(last["ragtune"]["retrieval"]) == {"mode", "fusion", "dense_weight"}
    assert list(last) == [
        *("id", "object", "created", "model", "choices", "usage", "citations", "ragtune")
    ]
    assert last["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    for sent in (body, last):
        client.post("/v1/feedback", json={"response_id": sent["id"], "rating": "up"})
    state = client.app.state.ragtune  # type: ignore[attr-defined]
    kept = {f.response_id: f.answer for f in state.feedback.feedback()}
    for sent in (body, last):
        record = kept[sent["id"]]
        assert record.question == QUESTION and record.text == llm.answer
        assert [c.model_dump() for c in record.citations] == sent["citations"]
        assert record.ragtune().model_dump(mode="json") == sent["ragtune"]
        assert record.verification is not None and record.verification.verdict == "supported"
        assert record.usage.model_dump() == sent["usage"] and not record.cached


def test_citations_point_at_the_window_the_model_read(client: TestClient, llm: ScriptedLLM) -> None:
    chunks = ask(client, retrieval={"k": 2, "window_tokens": 0}).json()["citations"]
    assert all(c["spans"] == [[0, len(c["text"])]] for c in chunks)  # windows off: the chunk
    wide = ask(client, retrieval={"k": 2, "window_tokens": 160}).json()["citations"]
    assert [c["chunk_id"] for c in wide][:1] == [c["chunk_id"] for c in chunks][:1]
    for c in wide:
        assert c["end"] - c["start"] == len(c["text"])
        assert all(0 <= a < b <= len(c["text"]) for a, b in c["spans"])
    best = {c["chunk_id"]: c for c in chunks}[wide[0]["chunk_id"]]
    [[a, b], *_] = wide[0]["spans"]
    assert len(wide[0]["text"]) > len(best["text"]) and wide[0]["text"][a:b] == best["text"]
