"""The HTTP backend: any OpenAI-compatible server (vLLM, llama.cpp server, OpenAI itself).

Every request streams, ``complete()`` included: only a stream shows when the first token arrives,
so only a stream can enforce the first-token timeout, retry safely (before that token, never
after: a half-sent answer must not be generated twice) and stop the server when the client leaves.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

import httpx

from service.llm.base import (
    Completion,
    Delta,
    LLMError,
    LLMUnavailable,
    Prompt,
    SamplingParams,
    Style,
    complete_from,
)
from service.llm.settings import LLMSettings
from service.llm.stops import AnswerText
from service.llm.tokenize import RemoteTokenCounter, llama_server_body

_RETRY_STATUS = {500, 502, 503, 504}
_BACKOFF_S = 0.25  # first retry waits this long, then doubles: enough for a restarting proxy
_PROBE_TIMEOUT_S = 5.0


class _Retryable(Exception):
    """A failure before the first token that another attempt may fix."""


class OpenAICompatLLM:
    """An OpenAI-compatible server behind the ``LLM`` protocol, over one pooled httpx client."""

    def __init__(
        self,
        settings: LLMSettings,
        transport: httpx.BaseTransport | None = None,
        *,
        token_prompts: bool = False,
    ) -> None:
        """``token_prompts``: the server is llama-server, and completion prompts go to it as
        token ids from its ``/tokenize`` (see ``_prompt_ids``)."""
        self._s = settings
        self._token_prompts = token_prompts
        self.style: Style = settings.style or "chat"
        self.context_window = settings.context_window
        # A server's batch is not discoverable over the OpenAI API: `llm.parallel` when set, else
        # one at a time (llama-cpp-python's server interrupts a stream when another request comes).
        self.parallel = settings.parallel if "parallel" in settings.model_fields_set else 1
        self.name = settings.name or settings.model
        self._model = settings.model
        self._base = settings.base_url.rstrip("/")
        key = settings.api_key.get_secret_value() if settings.api_key else None
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=httpx.Timeout(
                connect=settings.connect_timeout_s,
                read=settings.first_token_timeout_s,
                write=settings.first_token_timeout_s,
                pool=settings.first_token_timeout_s,
            ),
            transport=transport,
        )
        self._counter = RemoteTokenCounter(self._client, self._base, self._model_id_or_empty)

    # --- discovery -----------------------------------------------------------------------------

    def _model_id_or_empty(self) -> str:
        return self._model

    def _discover(self) -> None:
        """Ask ``/models`` for the model id (when none is configured) and its context length."""
        url = f"{self._base}/models"
        try:
            resp = self._client.get(url, timeout=self._probe_timeout())
        except httpx.HTTPError as e:
            raise LLMUnavailable(f"model server {url} unreachable: {_describe(e)}") from e
        if resp.status_code != 200:
            raise LLMUnavailable(f"model server {url} answered {resp.status_code}: {_body(resp)}")
        models = resp.json().get("data") or []
        if not models:
            raise LLMUnavailable(f"model server {url} lists no models")
        chosen = next((m for m in models if m.get("id") == self._model), models[0])
        self._model = self._model or str(chosen["id"])
        self.name = self.name or self._model
        # vLLM reports max_model_len; trusting a larger configured value would only earn 400s.
        if isinstance(chosen.get("max_model_len"), int):
            self.context_window = min(self.context_window, chosen["max_model_len"])

    def _probe_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(_PROBE_TIMEOUT_S, connect=self._s.connect_timeout_s)

    def ready(self) -> bool:
        """True when ``/models`` answers (and lists the model); never raises."""
        try:
            self._discover()
        except LLMUnavailable:
            return False
        return True

    def count_tokens(self, text: str) -> int:
        return self._counter.count(text)

    @property
    def token_counter(self) -> str:
        """How counts are made: the server endpoint in use, "estimate" or "unprobed"."""
        return self._counter.method

    def close(self) -> None:
        self._client.close()

    # --- generation ----------------------------------------------------------------------------

    def complete(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Completion:
        """The whole answer, gathered from a stream (see the module docstring for why)."""
        failure = LLMUnavailable(f"{self._base}: stream ended without a finish reason")
        return complete_from(self.stream(prompt, params, cancel), failure)

    def stream(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Generator[Delta, None, None]:
        """Pieces as the server sends them; raises ``LLMUnavailable`` when it fails or stalls.

        ``cancel`` is looked at after each event, so a server stalled before its first token is
        noticed at the first-token timeout, not at once.
        """
        if not self._model:
            self._discover()
        path, body = self._request(prompt, params)
        return self._generate(path, body, cancel, AnswerText(params.stop))

    def _request(self, prompt: Prompt, params: SamplingParams) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self._model,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "stream": True,
            # Usage in the last chunk (OpenAI, vLLM); servers without it ignore the field.
            "stream_options": {"include_usage": True},
        }
        if params.seed is not None:
            body["seed"] = params.seed
        # Extensions go out only when set: OpenAI itself rejects fields it does not know.
        if params.top_k is not None:
            body["top_k"] = params.top_k
        if params.repetition_penalty is not None:
            body["repetition_penalty"] = params.repetition_penalty
        body.update(self._s.extra_body)
        if self.style == "chat":
            if prompt.messages is None:
                raise LLMError("this backend takes chat messages (style='chat')")
            return "/chat/completions", {**body, "messages": list(prompt.messages)}
        if prompt.text is None:
            raise LLMError("this backend takes completion prompts (style='completion')")
        text: str | list[int] = (
            self._prompt_ids(prompt.text) if self._token_prompts else prompt.text
        )
        return "/completions", {**body, "prompt": text}

    def _prompt_ids(self, text: str) -> list[int]:
        """``text`` in llama-server's tokens: BOS where the model takes one, then the text with
        control-token spellings as text. llama-server parses a text prompt's "<eos>" into the
        control token; a prompt of ids is evaluated as given, with no second BOS."""
        url = f"{self._base.removesuffix('/v1')}/tokenize"
        try:
            resp = self._client.post(
                url, json=llama_server_body(text, bos=True), timeout=self._probe_timeout()
            )
        except httpx.HTTPError as e:
            raise LLMUnavailable(f"{url} unreachable: {_describe(e)}") from e
        if resp.status_code != 200:
            raise LLMUnavailable(f"{url} answered {resp.status_code}: {_body(resp)}")
        return [int(t) for t in resp.json()["tokens"]]

    def _generate(
        self,
        path: str,
        body: dict[str, Any],
        cancel: threading.Event | None,
        scan: AnswerText,
    ) -> Generator[Delta, None, None]:
        """Stops are applied here, not sent (see ``service.llm.stops``); at one, the stream closes."""
        start = time.monotonic()
        timings: dict[str, float] = {}
        finish: str | None = None
        usage: dict[str, Any] = {}
        pieces = 0
        events = self._events(path, body, start + self._s.total_timeout_s)
        try:
            for event in events:
                usage = event.get("usage") or usage
                for choice in event.get("choices") or []:
                    raw = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
                    pieces += bool(raw)
                    text = scan.feed(raw)
                    if text:
                        timings.setdefault("first_token", time.monotonic() - start)
                        yield Delta(text)
                    finish = choice.get("finish_reason") or finish
                if scan.ended:
                    finish = "stop"
                    break
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
        finally:
            events.close()  # closes the response: vLLM and llama.cpp abort on disconnect
        if (rest := scan.flush()) and finish != "cancelled":
            timings.setdefault("first_token", time.monotonic() - start)
            yield Delta(rest)
        if finish is None:
            raise LLMUnavailable(f"{self._base}{path}: stream ended without a finish reason")
        timings["total"] = time.monotonic() - start
        yield Delta(
            "",
            finish,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or pieces),
            timings=timings,
            cached_tokens=_cached_tokens(usage),
        )

    def _events(
        self, path: str, body: dict[str, Any], deadline: float
    ) -> Generator[dict[str, Any], None, None]:
        """Parsed SSE events up to ``[DONE]``; failures before the first one are retried."""
        url = f"{self._base}{path}"
        for attempt in range(self._s.retries + 1):
            received = False
            # The read timeout is the first-token timeout, but never past the overall deadline.
            read_s = max(0.001, min(self._s.first_token_timeout_s, deadline - time.monotonic()))
            timeout = httpx.Timeout(
                read_s, connect=min(self._s.connect_timeout_s, read_s), pool=read_s
            )
            # The read timeout only sees silence: a server that keeps sending keep-alives (SSE
            # comments) without a token is caught by these deadlines, checked at every line.
            first_by = time.monotonic() + read_s
            try:
                with self._client.stream("POST", url, json=body, timeout=timeout) as resp:
                    if resp.status_code in _RETRY_STATUS:
                        raise _Retryable(f"answered {resp.status_code}: {_body(resp)}")
                    if resp.status_code >= 400:
                        raise LLMError(f"{url} answered {resp.status_code}: {_body(resp)}")
                    for data in _sse_data(resp.iter_lines()):
                        now = time.monotonic()
                        if now > deadline:
                            raise LLMUnavailable(
                                f"{url}: generation exceeded total_timeout_s="
                                f"{self._s.total_timeout_s:g}"
                            )
                        if data is None:
                            if not received and now > first_by:
                                raise LLMUnavailable(
                                    f"{url}: no token for {read_s:.3g} s, only keep-alives"
                                )
                            continue
                        if data == "[DONE]":
                            return
                        event = _event(url, data)
                        received = True
                        yield event
                    return  # the stream ended without [DONE]: _generate checks the finish reason
            except httpx.ReadTimeout as e:
                # Never retried: a second wait would double the time the client was promised.
                what = "mid-stream" if received else "before the first token"
                raise LLMUnavailable(f"{url}: no data for {read_s:.3g} s {what}") from e
            except (httpx.TransportError, _Retryable) as e:
                problem = _describe(e) if isinstance(e, httpx.HTTPError) else str(e)
                if received:
                    raise LLMUnavailable(
                        f"{url}: stream broke after the first token: {problem}"
                    ) from e
                backoff = _BACKOFF_S * 2**attempt
                if attempt == self._s.retries or time.monotonic() + backoff > deadline:
                    raise LLMUnavailable(
                        f"{url}: {problem} (after {attempt + 1} attempt(s))"
                    ) from e
                time.sleep(backoff)


def _sse_data(lines: Iterator[str]) -> Iterator[str | None]:
    """The ``data:`` payloads of a server-sent-event stream; None for every other line.

    The Nones (blank lines, comments, other fields) let the caller watch its deadlines while a
    server sends bytes but no data.
    """
    for line in lines:
        yield line[5:].strip() if line.startswith("data:") else None


def _event(url: str, data: str) -> dict[str, Any]:
    """One stream event, checked for the shape ``_generate`` reads; garbage is an ``LLMError``.

    A server that sends something else (not JSON, a list, choices that are not objects) is
    broken, not unavailable: the client gets a 503 ``model_error`` instead of a crash.
    """
    try:
        event = json.loads(data)
    except json.JSONDecodeError as e:
        raise LLMError(f"{url}: malformed stream event: {e}") from e
    if isinstance(event, dict) and "error" in event:
        raise LLMError(f"{url} reported an error: {event['error']}")
    if not isinstance(event, dict) or not _well_formed(event):
        raise LLMError(f"{url}: malformed stream event: {data[:200]}")
    return event


def _well_formed(event: dict[str, Any]) -> bool:
    choices = event.get("choices") or []
    if not isinstance(choices, list) or not isinstance(event.get("usage") or {}, dict):
        return False
    for choice in choices:
        delta = choice.get("delta") or {} if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            return False
        if not all(isinstance(t, str | None) for t in (delta.get("content"), choice.get("text"))):
            return False
    return True


def _body(resp: httpx.Response) -> str:
    try:
        text = resp.read().decode("utf-8", "replace")
    except httpx.HTTPError:
        return "(no body)"
    return text[:500]


def _describe(e: httpx.HTTPError) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _cached_tokens(usage: dict[str, Any]) -> int | None:
    """``usage.prompt_tokens_details.cached_tokens`` (OpenAI's field; vLLM and llama-server
    report it too), or None when the server does not say."""
    details = usage.get("prompt_tokens_details")
    value = details.get("cached_tokens") if isinstance(details, dict) else None
    return value if isinstance(value, int) and value >= 0 else None
