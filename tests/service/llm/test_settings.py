"""LLM settings: documented fields, sane defaults, a factory that does not connect eagerly, and
the template an unset ``rag.template`` means for the model."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from service.llm import LLMSettings, load_llm
from service.llm.llamacpp import LlamaCppLLM
from service.llm.openai_compat import OpenAICompatLLM
from service.settings import Settings
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
    # The llama-server engine is opt-in until bench/serve.py has measured it.
    assert (s.engine, s.parallel, s.server_binary, s.server_args) == ("in-process", 4, None, [])


def test_server_engine_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGTUNE_LLM__ENGINE", "server")
    monkeypatch.setenv("RAGTUNE_LLM__PARALLEL", "2")
    monkeypatch.setenv("RAGTUNE_LLM__SERVER_ARGS", '["--cache-reuse", "256"]')
    s = Settings().llm
    assert (s.engine, s.parallel, s.server_args) == ("server", 2, ["--cache-reuse", "256"])
    with pytest.raises(ValueError, match="engine"):
        LLMSettings.model_validate({"engine": "threads"})


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


def test_each_backend_says_what_it_batches(llm: LlamaCppLLM) -> None:
    """What eval answers at once by default: one in-process; over HTTP ``llm.parallel`` when it
    is set, else one (the server engine's slots: tests/service/llm/test_server_engine.py)."""
    url = f"http://127.0.0.1:{free_port()}/v1"
    told = load_llm(LLMSettings(backend="openai", base_url=url, parallel=6))
    unset = load_llm(LLMSettings(backend="openai", base_url=url))
    from_env = Settings.model_validate({"llm": {"backend": "openai", "parallel": 3}}).llm
    assert (llm.parallel, told.parallel, unset.parallel) == (1, 6, 1)
    assert load_llm(from_env).parallel == 3
    told.close()
    unset.close()


@pytest.mark.parametrize(
    ("llm", "template"),
    [
        ({}, "grounded-qa@1"),  # the packaged Gemma 270M: a base model
        ({"model": "qwen2.5-coder-0.5b-instruct"}, "grounded-chat@1"),
        ({"model": "qwen2.5-coder-0.5b-instruct", "style": "completion"}, "grounded-qa@1"),
        ({"backend": "openai"}, "grounded-chat@1"),
        ({"backend": "openai", "style": "completion"}, "grounded-qa@1"),
    ],
)
def test_an_unset_template_follows_the_models_prompt_style(
    tmp_path: Path, llm: dict[str, str], template: str
) -> None:
    s = Settings(home=tmp_path, llm=llm)
    assert s.rag.template == template
    explicit = Settings(home=tmp_path, llm=llm, rag={"template": "grounded-qa@2"})
    assert explicit.rag.template == "grounded-qa@2"


def test_a_candidate_model_brings_its_own_default_template(tmp_path: Path) -> None:
    qwen = LLMSettings(model="qwen2.5-coder-0.5b-instruct")
    assert Settings(home=tmp_path).with_llm(qwen).rag.template == "grounded-chat@1"
    pinned = Settings(home=tmp_path, rag={"template": "grounded-qa@2"}).with_llm(qwen)
    assert pinned.rag.template == "grounded-qa@2" and pinned.llm == qwen
