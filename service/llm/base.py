"""The LLM seam: one small protocol, two implementations (in-process llama.cpp, OpenAI-compatible HTTP).

Backends are synchronous and cancellable: the service runs them in a worker thread and sets the
``cancel`` event when a streaming client disconnects, so generation stops instead of burning the
CPU for nobody. A new backend is a settings profile of the HTTP adapter unless its wire protocol
differs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from service.llm.settings import SamplingSettings

Style = Literal["completion", "chat"]


_DEFAULTS = SamplingSettings()


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters as OpenAI names them, plus the common extensions vLLM accepts.

    The defaults are ``SamplingSettings``' (the ``rag.sampling`` section), declared once there.
    """

    temperature: float = _DEFAULTS.temperature
    top_p: float = _DEFAULTS.top_p
    top_k: int | None = _DEFAULTS.top_k
    max_tokens: int = _DEFAULTS.max_tokens
    stop: tuple[str, ...] = ()
    seed: int | None = None
    repetition_penalty: float | None = None


@dataclass(frozen=True)
class Prompt:
    """What a backend receives: a completion prompt (base models) or chat messages (instruct models)."""

    text: str | None = None
    messages: tuple[dict[str, str], ...] | None = None


@dataclass
class Completion:
    text: str
    finish_reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds: first_token, total
    cached: bool = False  # replayed from a cache (the eval's) rather than generated now
    # Prompt tokens the backend took from its KV cache instead of evaluating them (a shared
    # prefix); None when the backend does not say.
    cached_tokens: int | None = None


@dataclass(frozen=True)
class Delta:
    """One streamed piece; the last one has ``finish_reason`` set and the token counts."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # last piece only, as in Completion
    cached_tokens: int | None = None  # last piece only, as in Completion


class LLMError(Exception):
    """Generation failed for a reason the client should see as a server-side error."""


class LLMUnavailable(LLMError):
    """The model backend is down or did not answer in time (HTTP 503 to the client)."""


class LLMBusy(LLMError):
    """Too many requests are waiting for the model (HTTP 503 with Retry-After)."""


def collect(deltas: Iterable[Delta]) -> Completion | None:
    """The whole answer from a stream of deltas; None if it ended without a finish reason.

    Both backends complete by streaming, so first-token timeouts and cancellation work the same
    for ``complete`` as for ``stream``.
    """
    parts: list[str] = []
    for delta in deltas:
        parts.append(delta.text)
        if delta.finish_reason is not None:
            return Completion(
                "".join(parts),
                delta.finish_reason,
                delta.prompt_tokens,
                delta.completion_tokens,
                delta.timings,
                cached_tokens=delta.cached_tokens,
            )
    return None


def complete_from(deltas: Iterable[Delta], failure: LLMError) -> Completion:
    """A backend's ``complete``: the collected stream, or ``failure`` raised where it ended
    without a finish reason."""
    out = collect(deltas)
    if out is None:
        raise failure
    return out


class LLM(Protocol):
    name: str  # the model name reported to clients
    style: Style  # how prompts must be rendered for it
    context_window: int  # tokens, prompt and answer together
    # Generations the backend runs at once: 1 in-process, the slots of llama-server, what an HTTP
    # server batches. Callers with many independent requests (eval) send this many concurrently.
    parallel: int

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's own tokenizer (exact or a safe over-estimate)."""
        ...

    def complete(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Completion: ...

    def stream(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Iterator[Delta]: ...

    def ready(self) -> bool:
        """Whether the model can take a request now (loaded, or its server answers)."""
        ...

    def close(self) -> None: ...
