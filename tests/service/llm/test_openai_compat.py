"""The HTTP backend against scripted loopback servers: wire format, timeouts, retries, errors."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from service.llm import LLMError, LLMSettings, LLMUnavailable, Prompt, SamplingParams, load_llm
from service.llm.openai_compat import OpenAICompatLLM
from service.llm.tokenize import RETRY_AFTER_S, RemoteTokenCounter, estimate_tokens
from tests.conftest import free_port
from tests.service.llm.fakes import (
    SilentServer,
    fake_server,
    send_event,
    send_json,
    start_sse,
    text_chunk,
)

TEXT = Prompt(text="Question: What is the capital of France?\nAnswer:")
CHAT = Prompt(messages=({"role": "user", "content": "Capital of France?"},))
PARAMS = SamplingParams(temperature=0, max_tokens=8)


def backend(base_url: str, **kw: Any) -> OpenAICompatLLM:
    settings = LLMSettings.model_validate(
        {"backend": "openai", "base_url": base_url, "model": "m", "style": "completion", **kw}
    )
    llm = load_llm(settings)
    assert isinstance(llm, OpenAICompatLLM)
    return llm


def paris(h: BaseHTTPRequestHandler, body: Any) -> None:
    """A well-behaved streaming server: two pieces, usage, [DONE]."""
    if h.command == "GET":
        send_json(h, 200, {"object": "list", "data": [{"id": "srv-model", "max_model_len": 2048}]})
        return
    if h.path.endswith("/chat/completions"):
        start_sse(h)
        send_event(h, {"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        send_event(h, {"choices": [{"index": 0, "delta": {"content": " Paris"}}]})
        send_event(h, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        send_event(h, "[DONE]")
        return
    start_sse(h)
    send_event(h, text_chunk(" Pa"))
    send_event(h, text_chunk("ris", "stop"))
    send_event(h, {"choices": [], "usage": {"prompt_tokens": 13, "completion_tokens": 2}})
    send_event(h, "[DONE]")


def test_completion_request_carries_params_and_extras() -> None:
    with fake_server(paris) as (url, seen):
        llm = backend(url, api_key="sk-test", extra_body={"repeat_penalty": 1.1, "min_p": 0.05})
        params = SamplingParams(
            temperature=0.7, top_p=0.9, top_k=20, max_tokens=8, stop=("\n",), seed=3,
            repetition_penalty=1.2,
        )  # fmt: skip
        out = llm.complete(TEXT, params)
    assert (out.text, out.finish_reason) == (" Paris", "stop")
    assert (out.prompt_tokens, out.completion_tokens) == (13, 2)
    assert out.timings["first_token"] <= out.timings["total"]
    (req,) = seen
    assert (req.method, req.path) == ("POST", "/v1/completions")
    assert req.headers["Authorization"] == "Bearer sk-test"
    assert req.body == {
        "model": "m", "prompt": TEXT.text, "temperature": 0.7, "top_p": 0.9, "max_tokens": 8,
        "seed": 3, "top_k": 20, "repetition_penalty": 1.2, "repeat_penalty": 1.1,
        "min_p": 0.05, "stream": True, "stream_options": {"include_usage": True},
    }  # fmt: skip


def test_usage_reports_the_prompt_tokens_the_server_had_cached() -> None:
    """OpenAI's usage.prompt_tokens_details.cached_tokens (vLLM, llama-server) is kept; a server
    that does not send it leaves it unknown rather than zero."""

    def cached(h: BaseHTTPRequestHandler, body: Any) -> None:
        start_sse(h)
        send_event(h, text_chunk(" Paris", "stop"))
        usage = {"prompt_tokens": 13, "completion_tokens": 1}
        send_event(
            h, {"choices": [], "usage": usage | {"prompt_tokens_details": {"cached_tokens": 8}}}
        )
        send_event(h, "[DONE]")

    with fake_server(cached) as (url, _):
        assert backend(url).complete(TEXT, PARAMS).cached_tokens == 8
    with fake_server(paris) as (url, _):
        assert backend(url).complete(TEXT, PARAMS).cached_tokens is None


def blank_first(h: BaseHTTPRequestHandler, body: Any) -> None:
    """A model that opens with a blank line, answers, then runs on past a blank line."""
    start_sse(h)
    for piece in ("\n", "\nThe app", " runs:\n", "\n", "make run", "\n\nQuestion: next"):
        send_event(h, text_chunk(piece))
    send_event(h, text_chunk("", "length"))
    send_event(h, "[DONE]")


def test_a_stop_ends_the_answer_only_after_its_first_word() -> None:
    """Stops are applied by ragtune: "\n\n" first would otherwise return an empty answer."""
    with fake_server(blank_first) as (url, seen):
        out = backend(url).complete(TEXT, SamplingParams(temperature=0, stop=("\n\n",)))
    assert (out.text, out.finish_reason) == ("\n\nThe app runs:", "stop")
    assert "stop" not in seen[0].body


def test_unset_extensions_are_not_sent() -> None:
    """OpenAI itself rejects unknown fields, so top_k and friends go out only when set."""
    with fake_server(paris) as (url, seen):
        backend(url).complete(TEXT, PARAMS)
    assert not {"top_k", "repetition_penalty", "seed", "stop"} & set(seen[0].body)


def test_chat_style_posts_messages_and_streams() -> None:
    with fake_server(paris) as (url, seen):
        llm = backend(url, style="chat")
        deltas = list(llm.stream(CHAT, PARAMS))
    assert seen[0].path == "/v1/chat/completions"
    assert seen[0].body["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert [d.text for d in deltas] == [" Paris", ""]
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].completion_tokens == 1  # no usage sent: counted pieces


def test_wrong_prompt_kind_is_an_error() -> None:
    with fake_server(paris) as (url, seen):
        with pytest.raises(LLMError, match="chat messages"):
            backend(url, style="chat").complete(TEXT, PARAMS)
        with pytest.raises(LLMError, match="completion prompts"):
            backend(url).complete(CHAT, PARAMS)
    assert seen == []


def test_model_discovered_from_models_endpoint() -> None:
    with fake_server(paris) as (url, seen):
        llm = backend(url, model="", context_window=8192)
        assert llm.name == ""
        assert llm.ready()
        assert llm.name == "srv-model"
        assert llm.context_window == 2048  # the server's max_model_len wins when smaller
        llm.complete(TEXT, PARAMS)
    assert seen[-1].body["model"] == "srv-model"
    assert backend(url, name="shown").name == "shown"


def test_down_backend_fails_fast() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    llm = backend(url, connect_timeout_s=0.5, retries=1)
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailable, match=r"127\.0\.0\.1.*ConnectError.*2 attempt"):
        llm.complete(TEXT, PARAMS)
    assert time.monotonic() - t0 < 5
    t0 = time.monotonic()
    assert not llm.ready()
    with pytest.raises(LLMUnavailable, match="unreachable"):
        backend(url, model="", connect_timeout_s=0.5).complete(TEXT, PARAMS)
    assert time.monotonic() - t0 < 5


def test_stall_before_first_token_times_out_without_retry() -> None:
    with SilentServer() as silent:
        llm = backend(f"http://127.0.0.1:{silent.port}/v1", first_token_timeout_s=1, retries=2)
        t0 = time.monotonic()
        with pytest.raises(LLMUnavailable, match="no data for 1 s before the first token"):
            llm.complete(TEXT, PARAMS)
        elapsed = time.monotonic() - t0
    assert 0.9 < elapsed < 3
    assert silent.accepted == 1  # a second wait would double what the client was promised


def test_no_retry_after_first_token() -> None:
    def one_chunk_then_hang_up(h: BaseHTTPRequestHandler, body: Any) -> None:
        start_sse(h)
        send_event(h, text_chunk(" Pa"))  # then the handler returns and the connection closes

    with fake_server(one_chunk_then_hang_up) as (url, seen):
        llm = backend(url, retries=3)
        got: list[str] = []
        with pytest.raises(LLMUnavailable, match="without a finish reason"):
            for d in llm.stream(TEXT, PARAMS):
                got.append(d.text)
        assert got == [" Pa"]
        with pytest.raises(LLMUnavailable):
            llm.complete(TEXT, PARAMS)
    assert len(seen) == 2  # one request per call: nothing was repeated


def test_5xx_before_first_token_is_retried() -> None:
    calls = []

    def flaky(h: BaseHTTPRequestHandler, body: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            send_json(h, 503, {"error": {"message": "loading"}})
        else:
            paris(h, body)

    with fake_server(flaky) as (url, seen):
        out = backend(url, retries=2).complete(TEXT, PARAMS)
    assert out.text == " Paris" and len(seen) == 2


def test_persistent_5xx_gives_up_after_retries() -> None:
    def broken(h: BaseHTTPRequestHandler, body: Any) -> None:
        send_json(h, 500, {"error": {"message": "boom"}})

    with (
        fake_server(broken) as (url, seen),
        pytest.raises(LLMUnavailable, match=r"answered 500.*boom.*3 attempt"),
    ):
        backend(url, retries=2).complete(TEXT, PARAMS)
    assert len(seen) == 3


def test_4xx_is_an_error_not_retried() -> None:
    def bad_request(h: BaseHTTPRequestHandler, body: Any) -> None:
        send_json(h, 400, {"error": {"message": "max_tokens too large"}})

    with (
        fake_server(bad_request) as (url, seen),
        pytest.raises(LLMError, match=r"400.*max_tokens too large") as info,
    ):
        backend(url, retries=2).complete(TEXT, PARAMS)
    assert not isinstance(info.value, LLMUnavailable)
    assert len(seen) == 1


def test_total_timeout_bounds_a_trickling_stream() -> None:
    def trickle(h: BaseHTTPRequestHandler, body: Any) -> None:
        start_sse(h)
        try:
            for i in range(100):  # distinct words: a repeated one would end at the loop guard
                send_event(h, text_chunk(f" w{i}"))
                time.sleep(0.2)
        except OSError:
            pass  # the client hung up, as it should

    with fake_server(trickle) as (url, _seen):
        llm = backend(url, total_timeout_s=1, first_token_timeout_s=5)
        t0 = time.monotonic()
        with pytest.raises(LLMUnavailable, match="total_timeout_s=1"):
            llm.complete(TEXT, PARAMS)
    assert time.monotonic() - t0 < 2


def test_cancel_closes_the_stream() -> None:
    def endless(h: BaseHTTPRequestHandler, body: Any) -> None:
        start_sse(h)
        try:
            for i in range(50):
                send_event(h, text_chunk(f" w{i}"))
                time.sleep(0.05)
        except OSError:
            pass

    cancel = threading.Event()
    with fake_server(endless) as (url, _seen):
        deltas = []
        for d in backend(url).stream(TEXT, PARAMS, cancel):
            deltas.append(d)
            if len(deltas) == 2:
                cancel.set()
    assert [d.finish_reason for d in deltas] == [None, None, "cancelled"]


def test_count_tokens_uses_vllm_tokenize_and_remembers() -> None:
    def vllm_like(h: BaseHTTPRequestHandler, body: Any) -> None:
        if h.path == "/tokenize":
            n = len(body["prompt"].split())
            send_json(h, 200, {"count": n, "tokens": [1] * n, "max_model_len": 2048})
        else:
            send_json(h, 404, {"detail": "Not Found"})

    with fake_server(vllm_like) as (url, seen):
        llm = backend(url)
        assert llm.count_tokens("one two three") == 3
        assert llm.count_tokens("") == 0
        assert llm.token_counter == "/tokenize"
    assert [s.path for s in seen] == ["/extras/tokenize/count", "/tokenize", "/tokenize"]
    assert seen[2].body == {"prompt": "one two three", "add_special_tokens": False, "model": "m"}


def test_count_tokens_uses_llama_server_tokenize() -> None:
    """llama-server answers a body without "content" with an empty list: that must not stick."""

    def llama_server_like(h: BaseHTTPRequestHandler, body: Any) -> None:
        if h.path == "/tokenize":
            send_json(h, 200, {"tokens": [1] * len((body.get("content") or "").split())})
        else:
            send_json(h, 404, {"detail": "Not Found"})

    with fake_server(llama_server_like) as (url, seen):
        assert backend(url).count_tokens("one two three four") == 4
    # control-token spellings are counted as the text the prompt sends (parse_special off)
    assert seen[-1].body == {
        "content": "one two three four",
        "add_special": False,
        "parse_special": False,
    }


def test_count_tokens_estimates_when_server_has_no_tokenizer() -> None:
    def openai_like(h: BaseHTTPRequestHandler, body: Any) -> None:
        send_json(h, 404, {"error": {"message": "not found"}})

    text = "The quick brown fox jumps over the lazy dog."
    with fake_server(openai_like) as (url, seen):
        llm = backend(url)
        assert llm.count_tokens(text) == estimate_tokens(text) == 15
        assert llm.count_tokens(text) == 15
    assert len(seen) == 3  # each endpoint probed once, then the estimate is remembered


def test_count_tokens_estimates_while_server_down_and_probes_later() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    llm = backend(url, connect_timeout_s=0.5)
    assert llm.count_tokens("abcdef") == estimate_tokens("abcdef")
    assert llm.token_counter == "unprobed"  # not cached: the server may come up


def test_count_tokens_leaves_a_down_server_alone_for_a_while() -> None:
    """A failed probe or count is remembered: requests estimate instead of each waiting it out."""
    calls: list[str] = []
    now = [100.0]

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.ConnectError("connection refused", request=request)

    counter = RemoteTokenCounter(
        httpx.Client(transport=httpx.MockTransport(refuse)),
        "http://model:8000/v1",
        lambda: "m",
        clock=lambda: now[0],
    )
    assert counter.count("abcdef") == estimate_tokens("abcdef")
    probed = len(calls)
    assert probed == 3 and counter.method == "unprobed"
    for _ in range(5):
        assert counter.count("abcdef") == estimate_tokens("abcdef")
    assert len(calls) == probed  # nothing asked while the failure is fresh
    now[0] += RETRY_AFTER_S
    counter.count("abcdef")
    assert len(calls) == 2 * probed  # then the server gets another chance


def test_count_tokens_caches_counts_per_model() -> None:
    def vllm_like(h: BaseHTTPRequestHandler, body: Any) -> None:
        if h.path == "/tokenize":
            send_json(h, 200, {"count": len(body["prompt"].split())})
        else:
            send_json(h, 404, {"detail": "Not Found"})

    with fake_server(vllm_like) as (url, seen):
        llm = backend(url)
        assert llm.count_tokens("one two three") == 3
        asked = len(seen)
        assert llm.count_tokens("one two three") == 3
        assert len(seen) == asked  # the same text is not sent again
        assert llm.count_tokens("one two") == 2 and len(seen) == asked + 1
