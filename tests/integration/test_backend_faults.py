"""A model server that misbehaves, end to end: real sockets, a real ``ragtune serve``, the ``openai`` client.

The fake server (``tests.service.llm.fakes``) resets, stalls, answers 500 or sends garbage SSE on
demand and counts the attempts it got. Each fault must reach the client as an OpenAI-style error
(a 503 for a plain request, an error event for a stream) within the configured budget, after at
most ``retries`` retries before the first token and none after it. The adapter's unit tests
(``tests/service/llm/test_openai_compat.py``) cover the same logic over httpx transports.
"""

from __future__ import annotations

import shutil
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import ragtune_serve
from tests.service.llm.fakes import fake_server, send_event, send_json, start_sse

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "fake-model"
RETRIES = 2
FIRST_TOKEN_S = 1.5
TOTAL_S = 6.0
SLACK_S = 3.0  # the app's own work around the backend call: retrieval, prompt, HTTP


def token(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


def reset(h: BaseHTTPRequestHandler) -> None:
    """Close the connection with a TCP RST, before any byte of the response."""
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.close_connection = True
    h.connection.close()


def wait(stop: threading.Event, seconds: float) -> None:
    stop.wait(seconds)  # the fixture sets stop at teardown so no handler outlives the server


@dataclass
class Scenario:
    """What the fake does with a chat request, and what the client must see."""

    act: Callable[[BaseHTTPRequestHandler, threading.Event], None]
    attempts: int  # requests the fake must have received for one client call
    tokens: str = ""  # text streamed before the fault (the client sees it, then the error)


def stall_first(h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    wait(stop, 30)


def stall_mid(h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    start_sse(h)
    send_event(h, token("Hello"))
    send_event(h, token(" there"))
    wait(stop, 30)


def keepalive_forever(h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    """Bytes keep coming (SSE comments), never a token: a stall the read timeout cannot see."""
    start_sse(h)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not stop.is_set():
        h.wfile.write(b": ping\n\n")
        h.wfile.flush()
        wait(stop, 0.2)


def trickle_past_total(h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    """A new token every second, never finishing: only the total budget ends it."""
    start_sse(h)
    deadline, i = time.monotonic() + 30, 0
    while time.monotonic() < deadline and not stop.is_set():
        send_event(h, token(f" t{i}"))  # never a repeat: a loop would end the answer early
        wait(stop, 1.0)
        i += 1


def status_500(h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    send_json(h, 500, {"error": {"message": "boom", "type": "server_error"}})


def events(*payloads: str, done: bool = False) -> Callable[[BaseHTTPRequestHandler, Any], None]:
    def act(h: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        start_sse(h)
        for p in payloads:
            h.wfile.write(p.encode())
        if done:
            h.wfile.write(b"data: [DONE]\n\n")
        h.wfile.flush()

    return act


SCENARIOS = {
    "reset": Scenario(lambda h, stop: reset(h), attempts=RETRIES + 1),
    "500": Scenario(status_500, attempts=RETRIES + 1),
    "stall-before-first-byte": Scenario(stall_first, attempts=1),
    "stall-mid-stream": Scenario(stall_mid, attempts=1, tokens="Hello there"),
    "keepalive-no-token": Scenario(keepalive_forever, attempts=1),
    "trickle-past-total": Scenario(trickle_past_total, attempts=1, tokens="t0 t1"),
    "not-json": Scenario(events("data: this is not json\n\n", done=True), attempts=1),
    "json-not-an-object": Scenario(events("data: [1, 2, 3]\n\n", done=True), attempts=1),
    "choices-not-objects": Scenario(events('data: {"choices": ["x"]}\n\n', done=True), attempts=1),
    "truncated-event": Scenario(events('data: {"choices": [{"delta": {"cont'), attempts=1),
    "no-done-no-finish": Scenario(
        events(f"data: {__import__('json').dumps(token('Hello'))}\n\n"),
        attempts=1,
        tokens="Hello",
    ),
}


@dataclass
class Fake:
    base: str
    scenario: list[Scenario]
    chats: list[float]  # monotonic arrival time of each chat request
    stop: threading.Event


@pytest.fixture(scope="module")
def fake() -> Iterator[Fake]:
    stop = threading.Event()
    current: list[Scenario] = []
    chats: list[float] = []

    def handle(h: BaseHTTPRequestHandler, body: Any) -> None:
        if h.path.endswith("/models"):
            send_json(h, 200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        elif h.path.endswith("/chat/completions"):
            chats.append(time.monotonic())
            current[0].act(h, stop)
        else:  # tokenizer endpoints: absent, so the adapter estimates counts
            send_json(h, 404, {"error": {"message": "not found"}})

    with fake_server(handle) as (base, _):
        yield Fake(base, current, chats, stop)
        stop.set()


@pytest.fixture(scope="module")
def server(
    fake: Fake,
    service_home: Path,
    cli_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """``ragtune serve`` over a copy of the test index, its LLM the fake server."""
    home = tmp_path_factory.mktemp("backend-faults") / "home"
    shutil.copytree(service_home, home, ignore=shutil.ignore_patterns("feedback.sqlite*"))
    env = {
        **cli_env,
        "RAGTUNE_LLM__BACKEND": "openai",
        "RAGTUNE_LLM__BASE_URL": fake.base,
        "RAGTUNE_LLM__MODEL": MODEL,
        "RAGTUNE_LLM__STYLE": "chat",
        "RAGTUNE_LLM__RETRIES": str(RETRIES),
        "RAGTUNE_LLM__CONNECT_TIMEOUT_S": "1",
        "RAGTUNE_LLM__FIRST_TOKEN_TIMEOUT_S": str(FIRST_TOKEN_S),
        "RAGTUNE_LLM__TOTAL_TIMEOUT_S": str(TOTAL_S),
    }
    log = home.parent / "serve.log"
    with ragtune_serve(home, env, log) as base:
        yield base


def ask(server: str, stream: bool) -> tuple[str, openai.APIError | None, float]:
    """(text received, the error raised, seconds from the first backend attempt to the error)."""
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=40)
    messages: Any = [{"role": "user", "content": "What value does zpipe.c define for CHUNK?"}]
    text = ""
    try:
        if stream:
            for chunk in client.chat.completions.create(
                model=MODEL, messages=messages, stream=True
            ):
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
        else:
            client.chat.completions.create(model=MODEL, messages=messages)
    except openai.APIError as e:
        return text, e, time.monotonic()
    return text, None, time.monotonic()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_backend_fault_is_an_openai_error_within_budget(
    fake: Fake, server: str, name: str, stream: bool
) -> None:
    scenario = SCENARIOS[name]
    fake.scenario[:] = [scenario]
    fake.chats.clear()
    text, error, ended = ask(server, stream)

    assert error is not None, f"{name}: no error; the client got {text!r}"
    assert not isinstance(error, openai.APITimeoutError | openai.APIConnectionError), error
    if stream:  # headers went out before the backend was asked: the error is an event
        assert isinstance(error.body, dict) and error.body.get("type") == "service_unavailable"
        assert scenario.tokens in text if scenario.tokens else text == ""
    else:
        assert isinstance(error, openai.InternalServerError) and error.status_code == 503
        assert isinstance(error.body, dict) and error.body.get("type") == "service_unavailable"
        assert set(error.body) == {"message", "type", "param", "code"}
    assert len(fake.chats) == scenario.attempts, f"{name}: {len(fake.chats)} attempts"
    assert ended - fake.chats[0] < TOTAL_S + SLACK_S  # the budget, not the client's timeout
