"""Token counts from a remote model server's own tokenizer, or a safe over-estimate.

Prompt packing needs counts in the serving model's tokenizer, and the OpenAI API has no such
endpoint. The servers we target each add one outside ``/v1``: llama-cpp-python has
``POST /extras/tokenize/count`` ({"input"} -> {"count"}), vLLM ``POST /tokenize`` ({"prompt"} ->
{"count", "tokens"}) and llama.cpp's ``llama-server`` ``POST /tokenize`` ({"content"} ->
{"tokens"}). The first that answers is remembered. When none exists (OpenAI) the fallback is
bytes/3: ~30 % over for English prose, about right for CJK, but under for digit- or
punctuation-dense text (many vocabularies split digits one by one), so callers keep a margin.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

_TIMEOUT_S = 10.0


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
    _Endpoint("/tokenize", lambda text, _model: {"content": text}, _tokens),
)
# What endpoints are probed with: any real tokenizer gives it at least one token.
_PROBE_TEXT = "Hello world"


class RemoteTokenCounter:
    """Counts with the first tokenize endpoint the server offers, remembered after one probe."""

    def __init__(self, client: httpx.Client, base_url: str, model: Callable[[], str]) -> None:
        base = base_url.rstrip("/")
        self._root = base.removesuffix("/v1")
        self._client = client
        self._model = model
        self._lock = threading.Lock()
        self._chosen: _Endpoint | None = None
        self._none = False  # every endpoint answered "not here": estimate from now on

    @property
    def method(self) -> str:
        """Which way counts are made now (for /readyz and logs)."""
        if self._chosen is not None:
            return self._chosen.path
        return "estimate" if self._none else "unprobed"

    def count(self, text: str) -> int:
        if not text:
            return 0
        chosen = self._chosen
        if chosen is not None:
            n = self._call(chosen, text)
            return estimate_tokens(text) if n is None else n
        if self._none:
            return estimate_tokens(text)
        with self._lock:
            if self._chosen is None and not self._none:
                self._probe()
        return self.count(text) if self._chosen is not None else estimate_tokens(text)

    def _probe(self) -> None:
        unreachable = False
        for endpoint in _ENDPOINTS:
            try:
                n = self._try(endpoint, _PROBE_TEXT)
            except httpx.HTTPError:
                unreachable = True  # the server may be down now: probe again next time
                continue
            if n:
                self._chosen = endpoint
                return
        self._none = not unreachable

    def _call(self, endpoint: _Endpoint, text: str) -> int | None:
        try:
            return self._try(endpoint, text)
        except httpx.HTTPError:
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
