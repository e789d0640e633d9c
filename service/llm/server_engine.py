"""The llamacpp backend's ``server`` engine: llama.cpp's ``llama-server`` as a managed child.

The in-process engine generates for one request at a time. llama-server decodes its slots'
sequences in one batch and lets new requests join between steps (continuous batching), and keeps
each slot's prompt in its KV cache for the next request that shares the prefix. It is reached
through the OpenAI-compatible adapter like any other server; this class adds what a managed child
needs: the supervisor (restart on death, health for ``/readyz``) and a gate of ``parallel``
places, so at most that many requests reach the server, ``queue_size`` more wait and the rest get
a 503 at once, as with the in-process engine.

Completion prompts are sent as token ids from the server's own tokenizer, BOS first, control
tokens never parsed from the text: the same tokens the in-process engine evaluates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Generator

from service.llm.base import (
    Completion,
    Delta,
    LLMError,
    LLMUnavailable,
    Prompt,
    SamplingParams,
    complete_from,
)
from service.llm.gate import Gate
from service.llm.llama_server import (
    LlamaServerError,
    find_llama_server,
    free_port,
    llama_server_command,
)
from service.llm.llamacpp import usable_cpus
from service.llm.openai_compat import OpenAICompatLLM
from service.llm.presets import ModelFileError, model_file, preset
from service.llm.settings import LLMSettings
from service.llm.supervisor import ManagedServer


class LlamaServerLLM:
    """A supervised llama-server behind the ``LLM`` protocol."""

    def __init__(self, server: ManagedServer, http: OpenAICompatLLM, gate: Gate) -> None:
        self.server = server
        self._http = http
        self._gate = gate
        self.name = http.name
        self.style = http.style
        self.context_window = http.context_window
        self.parallel = gate.slots  # llama-server's slots decode together
        self._closed = False

    @classmethod
    def start(cls, settings: LLMSettings) -> LlamaServerLLM:
        """Start llama-server on the configured GGUF and wait until it answers."""
        try:
            path = settings.model_path or model_file(preset(settings.model))
            binary = find_llama_server(settings.server_binary)
        except (ModelFileError, LlamaServerError) as e:
            raise LLMUnavailable(str(e)) from e
        threads = settings.threads or usable_cpus()
        port = free_port()
        name = settings.name or path.stem
        cmd = llama_server_command(
            binary,
            path,
            port=port,
            n_ctx=settings.n_ctx,
            threads=threads,
            parallel=settings.parallel,
            alias=name,
            extra=settings.server_args,
        )
        server = ManagedServer(
            cmd, f"http://127.0.0.1:{port}/health", name="llama-server", threads=threads
        )
        try:
            server.start()
        except LlamaServerError as e:
            raise LLMUnavailable(str(e)) from e
        http = OpenAICompatLLM(
            settings.model_copy(
                update={
                    "base_url": f"http://127.0.0.1:{port}/v1",
                    "style": settings.prompt_style,
                    "model": name,
                    "name": name,
                    "context_window": settings.n_ctx,
                    "api_key": None,
                    # llama.cpp does not promise the same logits for a prompt read from a slot's
                    # cache as for one evaluated whole (a CI run saw a temperature-0 answer change
                    # on the second ask), so reuse is off until a deterministic way is measured
                    # (issue 14); `llm.extra_body` may turn it back on.
                    "extra_body": {"cache_prompt": False, **settings.extra_body},
                }
            ),
            token_prompts=True,
        )
        gate = Gate(settings.queue_size, settings.queue_timeout_s, slots=settings.parallel)
        return cls(server, http, gate)

    @property
    def waiting(self) -> int:
        """Requests queued for a slot now."""
        return self._gate.waiting

    def count_tokens(self, text: str) -> int:
        return self._http.count_tokens(text)

    def ready(self) -> bool:
        return not self._closed and self.server.healthy

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._http.close()
        self.server.close()

    def complete(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Completion:
        failure = LLMError("llama-server stream ended without a finish reason")
        return complete_from(self.stream(prompt, params, cancel), failure)

    def stream(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Generator[Delta, None, None]:
        """As the in-process engine: the place is taken at the first ``next()`` (LLMBusy
        surfaces there) and held until the iterator finishes or is closed; closing it closes
        the HTTP stream, and llama-server then frees the slot."""
        if self._closed:
            raise LLMUnavailable("the llama-server engine is closed")
        return self._generate(prompt, params, cancel)

    def _generate(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None
    ) -> Generator[Delta, None, None]:
        start = time.monotonic()
        if not self._gate.acquire(cancel):
            waited = time.monotonic() - start
            yield Delta("", "cancelled", timings={"queue": waited, "total": waited})
            return
        try:
            queued = time.monotonic() - start
            with contextlib.closing(self._http.stream(prompt, params, cancel)) as deltas:
                for delta in deltas:
                    if delta.finish_reason is not None:  # timings count from the request, as
                        timings = {k: v + queued for k, v in delta.timings.items()}  # in-process
                        delta = dataclasses.replace(delta, timings={**timings, "queue": queued})
                    yield delta
        finally:
            self._gate.release()
