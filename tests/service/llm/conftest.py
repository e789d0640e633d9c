"""Fixtures for the LLM backends: one in-process model and one real llama.cpp server per session.

Both are session-scoped and load lazily. Tests run one at a time, so the in-process model is idle
while the server generates and vice versa: llama.cpp's OpenMP threads slow down ~50x when another
busy process shares these cores.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.llm.llamacpp import LlamaCppLLM
from tests.conftest import base_gguf, running_llama_server

# RAGTUNE_TEST_THREADS=1 keeps a run on one core while others share the machine.
THREADS = int(os.environ.get("RAGTUNE_TEST_THREADS", "2"))
N_CTX = 512
FRANCE = "Question: What is the capital of France?\nAnswer:"


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    return base_gguf()


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


@pytest.fixture(scope="session")
def llama_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``python -m llama_cpp.server`` on loopback; yields its base URL (with /v1)."""
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with running_llama_server(gguf_path, log, n_ctx=N_CTX, threads=THREADS) as base:
        yield base
