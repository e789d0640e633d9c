"""Shared pieces for service tests: a scripted LLM and a small real index."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from ingest.settings import EmbedSettings
from service.llm.base import Completion, Delta, LLMUnavailable, Prompt, SamplingParams
from service.settings import Settings
from tests.conftest import wait_until


class ScriptedLLM:
    """A fake model for API plumbing: answers with a fixed text, word by word when streaming."""

    name = "scripted"
    style = "completion"
    context_window = 2048
    parallel = 1

    def __init__(
        self,
        answer: str = "Keys and values are shared [1].",
        delay: float = 0.0,
        fail_after: int | None = None,
    ):
        self.answer = answer
        self.delay = delay
        self.fail_after = fail_after  # words streamed before the backend "breaks"
        self.prompts: list[Prompt] = []
        self.streamed = 0  # words actually produced, to see cancellation
        self.is_ready = True

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def complete(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Completion:
        self.prompts.append(prompt)
        words = self.answer.split()[: params.max_tokens]
        return Completion(" ".join(words), "stop", self.count_tokens(prompt.text or ""), len(words))

    def stream(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Iterator[Delta]:
        self.prompts.append(prompt)
        words = self.answer.split()[: params.max_tokens]
        for i, w in enumerate(words):
            if cancel is not None and cancel.is_set():
                yield Delta("", "cancelled", 0, i)
                return
            if i == self.fail_after:
                raise LLMUnavailable("the model server broke mid-stream")
            time.sleep(self.delay)
            self.streamed += 1
            yield Delta((" " if i else "") + w)
        yield Delta("", "stop", self.count_tokens(prompt.text or ""), len(words))

    def ready(self) -> bool:
        return self.is_ready

    def close(self) -> None:
        pass


@pytest.fixture
def settings(service_home: Path, embed_settings: EmbedSettings) -> Settings:
    return Settings(home=service_home, embed=embed_settings)


@pytest.fixture
def own_settings(settings: Settings, tmp_path: Path) -> Settings:
    """Settings over the shared index in a home of their own (feedback, serving, prompts, runs)."""
    s = settings.model_copy(update={"home": tmp_path / "home"})
    s.home.mkdir()
    (s.home / "index").symlink_to(settings.home / "index")
    return s


@contextlib.contextmanager
def uvicorn_in_thread(config: uvicorn.Config) -> Iterator[str]:
    """A real uvicorn server on ``config``'s loopback port, in a thread; yields its base URL."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 30, "uvicorn to start")
        yield f"http://{config.host}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(30)
