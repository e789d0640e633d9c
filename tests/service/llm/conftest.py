"""Fixtures for the LLM backends: one in-process model and one real llama.cpp server per session.

Both are session-scoped and load lazily. Tests run one at a time, so the in-process model is idle
while the server generates and vice versa: llama.cpp's OpenMP threads slow down ~50x when another
busy process shares these cores.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.llm.llamacpp import LlamaCppLLM, default_model_path

THREADS = 2
N_CTX = 512
FRANCE = "Question: What is the capital of France?\nAnswer:"


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    return default_model_path()


@pytest.fixture(scope="session")
def llama(gguf_path: Path) -> Iterator[Any]:
    """The raw llama_cpp.Llama, loaded once; tests wrap it with the gate settings they need."""
    from llama_cpp import Llama

    model = Llama(
        model_path=str(gguf_path),
        n_ctx=N_CTX,
        n_threads=THREADS,
        n_threads_batch=THREADS,
        verbose=False,
    )
    yield model
    model.close()


@pytest.fixture
def llm(llama: Any) -> LlamaCppLLM:
    """The session model behind a fresh gate (queue of 2, 5 s wait)."""
    return LlamaCppLLM(llama, name="gemma-3-270m", queue_size=2, queue_timeout_s=5)


def free_port() -> int:
    """A loopback port nobody listens on (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def llama_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``python -m llama_cpp.server`` on loopback; yields its base URL (with /v1)."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf_path), "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(N_CTX), "--n_threads", str(THREADS), "--n_threads_batch", str(THREADS),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not up after 60 s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
