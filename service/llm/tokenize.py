"""Token counts from a remote model server's own tokenizer, or a safe over-estimate.

Prompt packing needs counts in the serving model's tokenizer, and the OpenAI API has no such
endpoint. The servers we target each add one outside ``/v1``: llama-cpp-python has
``POST /extras/tokenize/count`` ({"input"} -> {"count"}), vLLM ``POST /tokenize`` ({"prompt"} ->
{"count", "tokens"}) and llama.cpp's ``llama-server`` ``POST /tokenize`` ({"content"} ->
{"tokens"}). The first that answers is remembered. When none exists (OpenAI) the fallback is
bytes/3: ~30 % over for English prose, about right for CJK, but under for digit- or
punctuation-dense text (many vocabularies split digits one by one), so callers keep a margin.

Counts sit on the request path (the question's length check, prompt packing), so a server that
fails to answer is left alone for ``RETRY_AFTER_S`` and counts are estimated meanwhile, instead of
every request waiting out a timeout; and counts already made are kept per model (the same
passages are packed again and again).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

_TIMEOUT_S = 10.0
RETRY_AFTER_S = 30.0  # after a failed request, estimate for this long before asking again
CACHE_SIZE = 4096  # (model, text) counts kept


def estimate_tokens(text: str) -> int:
    """An over-estimate for any BPE/SentencePiece vocabulary: one token per 3 UTF-8 bytes."""
    return len(text.encode("utf-8")) // 3 + 1


@dataclass(frozen=True)
class _Endpoint:
    path: str
    body: Callable[[str, str], dict[str, Any]]
    parse: Callable[[dict[str, Any]], int]


def _count(j: dict[str, Any]) -> int:
    return int(j["count"])


def _tokens(j: dict[str, Any]) -> int:
    return len(j["tokens"])


def _vllm_body(text: str, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": text, "add_special_tokens": False}
    return {**body, "model": model} if model else body


_ENDPOINTS = (
    # llama-cpp-python counts with add_bos=True: one token over, which errs on the safe side.
    _Endpoint("/extras/tokenize/count", lambda text, _model: {"input": text}, _count),
    _Endpoint("/tokenize", _vllm_body, _count),
    # llama-server answers the vLLM body with {"tokens": []}: the probe's non-empty text
    # rejects that, and this body, named its way, is tried next.
    _Endpoint("/tokenize", lambda text, _model: llama_server_body(text, bos=False), _tokens),
)


def llama_server_body(text: str, *, bos: bool) -> dict[str, Any]:
    """llama-server's ``/tokenize`` body for ``text`` as text: a passage that spells a control
    token ("<start_of_turn>", "<eos>") is tokenized as the characters it is, as the in-process
    backend does (the server's default parses such spellings into the control tokens)."""
    return {"content": text, "add_special": bos, "parse_special": False}


# What endpoints are probed with: any real tokenizer gives it at least one token.
_PROBE_TEXT = "Hello world"


class RemoteTokenCounter:
    """Counts with the first tokenize endpoint the server offers, remembered after one probe."""

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        model: Callable[[], str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        base = base_url.rstrip("/")
        self._root = base.removesuffix("/v1")
        self._client = client
        self._model = model
        self._clock = clock
        self._lock = threading.Lock()
        self._chosen: _Endpoint | None = None
        self._none = False  # every endpoint answered "not here": estimate from now on
        self._quiet_until = 0.0  # the server failed: estimate without asking until then
        self._counts: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._counts_lock = threading.Lock()

    @property
    def method(self) -> str:
        """Which way counts are made now (for /readyz and logs)."""
        if self._chosen is not None:
            return self._chosen.path
        return "estimate" if self._none else "unprobed"

    def count(self, text: str) -> int:
        if not text:
            return 0
        key = (self._model(), text)
        with self._counts_lock:
            n = self._counts.get(key)
            if n is not None:
                self._counts.move_to_end(key)
                return n
        n = self._count(text)
        if n is None:
            return estimate_tokens(text)
        with self._counts_lock:
            self._counts[key] = n
            if len(self._counts) > CACHE_SIZE:
                self._counts.popitem(last=False)
        return n

    def _count(self, text: str) -> int | None:
        """The server's count, or None where it cannot give one now (estimate instead)."""
        if self._none or self._clock() < self._quiet_until:
            return None
        chosen = self._chosen
        if chosen is None:
            with self._lock:
                if self._chosen is None and not self._none and self._clock() >= self._quiet_until:
                    self._probe()
            chosen = self._chosen
            if chosen is None:
                return None
        return self._call(chosen, text)

    def _probe(self) -> None:
        unreachable = False
        for endpoint in _ENDPOINTS:
            try:
                n = self._try(endpoint, _PROBE_TEXT)
            except httpx.HTTPError:
                unreachable = True  # the server may be down now: probe again later
                continue
            if n:
                self._chosen = endpoint
                return
        if unreachable:
            self._quiet_until = self._clock() + RETRY_AFTER_S
        else:
            self._none = True

    def _call(self, endpoint: _Endpoint, text: str) -> int | None:
        try:
            return self._try(endpoint, text)
        except httpx.HTTPError:
            self._quiet_until = self._clock() + RETRY_AFTER_S
            return None

    def _try(self, endpoint: _Endpoint, text: str) -> int | None:
        resp = self._client.post(
            self._root + endpoint.path,
            json=endpoint.body(text, self._model()),
            timeout=_TIMEOUT_S,
        )
        if resp.status_code != 200:
            return None
        try:
            return endpoint.parse(resp.json())
        except (ValueError, KeyError, TypeError):
            return None
