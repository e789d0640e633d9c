"""`ragtune serve` for real: uvicorn on 127.0.0.1, the embedded Gemma via llama.cpp, official clients."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_command, ragtune_serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUESTION = "What value does zpipe.c define for CHUNK?"


@pytest.fixture(scope="module")
def server(
    service_home: Path, cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    threads = os.environ.get("RAGTUNE_TEST_THREADS", "2")
    env = {**cli_env, "RAGTUNE_LLM__N_CTX": "2048", "RAGTUNE_LLM__THREADS": threads}
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with ragtune_serve(service_home, env, log) as base:
        yield base


def test_openai_client_plain_and_streaming(server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused")
    [model] = [m.id for m in client.models.list().data]
    resp = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": QUESTION}], temperature=0, max_tokens=48
    )
    answer = resp.choices[0].message.content or ""
    assert answer.strip()
    extra = resp.model_extra or {}
    assert (
        extra["ragtune"]["prompt"] == "grounded-qa@1" and extra["ragtune"]["backend"] == "llamacpp"
    )
    assert any("16384" in c["text"] for c in extra["citations"])
    assert resp.usage is not None and resp.usage.completion_tokens > 0

    started = time.perf_counter()
    parts, last = [], None
    for chunk in client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=48,
        stream=True,
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        last = chunk
    assert "".join(parts).strip() == answer.strip()  # temperature 0: same answer both ways
    assert last is not None and (last.model_extra or {})["citations"]
    assert time.perf_counter() - started < 120

    # ragtune's retrieval extension passes through the official client's extra_body.
    lexical = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=8,
        temperature=0,
        extra_body={"retrieval": {"mode": "bm25", "k": 2}},
    )
    info = (lexical.model_extra or {})["ragtune"]
    assert info["retrieval"] == {"mode": "bm25"} and info["retrieval_k"] == 2
    # Only passages that back a sentence are cited (an 8-token answer may back none): never a
    # passage past the two retrieved.
    cited = (lexical.model_extra or {})["citations"]
    assert len(cited) <= 2 and all(1 <= c["index"] <= 2 for c in cited)
    assert all(s["passage"] in (1, 2) for s in info["verification"]["sentences"])


def test_langchain_chat_openai(server: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=f"{server}/v1", api_key="unused", model="ragtune", temperature=0, max_tokens=48
    )
    msg = llm.invoke(QUESTION)
    assert isinstance(msg.content, str) and msg.content.strip()


def test_ask_from_the_command_line(service_home: Path, cli_env: dict[str, str]) -> None:
    import json

    proc = subprocess.run(
        cli_command("ask", QUESTION, "--json", "--home", str(service_home)),
        env={**cli_env, "RAGTUNE_LLM__N_CTX": "2048"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["answer"].strip() and out["ragtune"]["backend"] == "llamacpp"
    assert any("16384" in c["text"] for c in out["citations"])
    assert {c["index"] for c in out["citations"]} <= set(
        range(1, out["ragtune"]["retrieval_k"] + 1)
    )
