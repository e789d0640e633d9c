"""LLM settings: documented fields, sane defaults, and a factory that does not connect eagerly."""

from __future__ import annotations

import time

from service.llm import LLMSettings, load_llm
from service.llm.openai_compat import OpenAICompatLLM
from tests.conftest import free_port


def test_every_field_is_described() -> None:
    missing = [n for n, f in LLMSettings.model_fields.items() if not f.description]
    assert missing == []


def test_defaults() -> None:
    s = LLMSettings()
    assert (s.backend, s.model_path, s.n_ctx, s.threads) == ("llamacpp", None, 4096, 0)
    assert (s.queue_size, s.queue_timeout_s) == (8, 60)
    assert (s.base_url, s.model, s.style, s.retries) == ("http://127.0.0.1:8001/v1", "", None, 2)
    assert (s.connect_timeout_s, s.first_token_timeout_s, s.total_timeout_s) == (5, 60, 300)


def test_api_key_is_secret() -> None:
    s = LLMSettings.model_validate({"api_key": "sk-very-secret"})
    assert "sk-very-secret" not in repr(s) and "sk-very-secret" not in s.model_dump_json()
    assert s.api_key is not None and s.api_key.get_secret_value() == "sk-very-secret"


def test_openai_backend_builds_while_server_is_down() -> None:
    """The service must start (and report not-ready) even when vLLM is still loading."""
    url = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.monotonic()
    llm = load_llm(LLMSettings(backend="openai", base_url=url, connect_timeout_s=0.5))
    assert isinstance(llm, OpenAICompatLLM)
    assert not llm.ready()
    assert time.monotonic() - t0 < 2
    llm.close()
