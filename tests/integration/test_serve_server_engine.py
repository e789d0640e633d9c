"""`ragtune serve` with ``llm.engine = "server"``: a real llama-server child behind real uvicorn,
driven by the official ``openai`` client.

One slot and no queue, so a second request while one generates is the overflow case. The last
test kills the service outright, so the tests run in file order on one module-scoped server.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import alive, ragtune_serve, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUESTION = "What value does zpipe.c define for CHUNK?"


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def _server_pids(port: int) -> tuple[int, int]:
    """(the ``ragtune serve`` listening on ``port``, its llama-server child)."""
    serve = next(
        int(p.name)
        for p in Path("/proc").glob("[0-9]*")
        if {"serve", str(port)} <= set(_cmdline(int(p.name)))
    )
    child = next(
        int(p.name)
        for p in Path("/proc").glob("[0-9]*")
        if Path(_cmdline(int(p.name))[0]).name == "llama-server" and _ppid(int(p.name)) == serve
    )
    return serve, child


@pytest.fixture(scope="module")
def server(
    service_home: Path, cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = {
        **cli_env,
        "RAGTUNE_LLM__ENGINE": "server",
        "RAGTUNE_LLM__PARALLEL": "1",
        "RAGTUNE_LLM__QUEUE_SIZE": "0",
        "RAGTUNE_LLM__N_CTX": "2048",
        "RAGTUNE_LLM__THREADS": os.environ.get("RAGTUNE_TEST_THREADS", "2"),
    }
    log = tmp_path_factory.mktemp("serve-engine") / "serve.log"
    with ragtune_serve(service_home, env, log) as base:
        yield base


def _client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


def _ask(server: str, **kw: Any) -> str:
    messages: Any = [{"role": "user", "content": QUESTION}]
    resp = _client(server).chat.completions.create(
        model="ragtune", messages=messages, **{"temperature": 0, "max_tokens": 32, **kw}
    )
    extra = resp.model_extra or {}
    assert extra["ragtune"]["backend"] == "llamacpp"
    return resp.choices[0].message.content or ""


def test_answers_plain_and_streamed_identically(server: str) -> None:
    answer = _ask(server)
    assert answer.strip()
    assert _ask(server) == answer  # temperature 0, the prompt now cached in the slot
    parts = []
    messages: Any = [{"role": "user", "content": QUESTION}]
    for chunk in _client(server).chat.completions.create(
        model="ragtune", messages=messages, temperature=0, max_tokens=32, stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    assert "".join(parts) == answer


def test_a_request_beyond_the_slots_and_queue_gets_503_with_retry_after(server: str) -> None:
    body = {
        "messages": [{"role": "user", "content": "Tell a very long story about zlib."}],
        "max_tokens": 400,
        "temperature": 0,
        "stream": True,
    }
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body, timeout=120) as first:
        assert first.status_code == 200
        lines = first.iter_lines()
        while not _content(next(lines)):  # until the slot is generating
            pass
        with pytest.raises(openai.APIStatusError) as refused:
            _ask(server)
    assert refused.value.status_code == 503
    assert refused.value.response.headers["Retry-After"]
    assert refused.value.body["code"] == "model_busy"  # type: ignore[index]
    # The first client left mid-answer: its place is free again.
    wait_until(lambda: _answered(server), 60, "a free slot")


def _content(line: str) -> str:
    """The answer text an SSE line carries ("" for other lines and events)."""
    if not line.startswith("data:") or line.endswith("[DONE]"):
        return ""
    choices = json.loads(line[5:]).get("choices") or [{}]
    return str((choices[0].get("delta") or {}).get("content") or "")


def _answered(server: str) -> bool:
    try:
        return bool(_ask(server, max_tokens=4))
    except openai.APIStatusError as e:
        if e.status_code != 503:
            raise
        return False


def test_a_killed_child_turns_readyz_503_until_it_is_restarted(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    _, child = _server_pids(port)
    os.kill(child, signal.SIGKILL)

    def readyz() -> int:
        return httpx.get(f"{server}/readyz", timeout=10).status_code

    wait_until(lambda: readyz() == 503, 10, "/readyz to report the model server down")
    wait_until(lambda: readyz() == 200, 120, "the model server to be restarted")
    assert _server_pids(port)[1] != child
    assert _ask(server, max_tokens=4).strip()


def test_the_child_dies_with_a_service_killed_outright(server: str) -> None:
    serve, child = _server_pids(int(server.rsplit(":", 1)[1]))
    try:
        os.kill(serve, signal.SIGKILL)
        wait_until(lambda: not alive(child), 15, "llama-server to die with the service")
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
