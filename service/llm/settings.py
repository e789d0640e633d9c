"""Settings of the LLM seam: which backend, and how to reach or load its model.

One flat section rather than one class per backend: a vLLM, llama.cpp-server or OpenAI deployment
differs only in values (base URL, style, extra parameters), so a new backend is a settings profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from service.llm.presets import DEFAULT_PRESET, PRESETS


class LLMSettings(BaseModel):
    """The ``llm`` section: backend choice plus the knobs of each backend."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["llamacpp", "openai"] = Field(
        "llamacpp",
        description="llamacpp: the model runs in this process on the CPU; "
        "openai: any OpenAI-compatible HTTP server (vLLM, llama.cpp server, OpenAI).",
    )
    name: str | None = Field(
        None,
        description="Model name reported to clients; defaults to the file stem (llamacpp) "
        "or the server's model id (openai).",
    )

    model: str = Field(
        "",
        description="Which model. openai: the model id sent to the server (empty: the first one "
        "/models lists). llamacpp: a preset name, installed with `ragtune models install NAME` "
        f"({', '.join(PRESETS)}; empty: {DEFAULT_PRESET}).",
    )
    style: Literal["chat", "completion"] | None = Field(
        None,
        description="chat: messages, rendered by the model's chat template (instruct models); "
        "completion: one rendered prompt (base models). Empty: chat for openai, the preset's "
        "style for llamacpp (completion for gemma-3-270m, chat for the Qwen instruct models).",
    )

    # --- llamacpp ---
    engine: Literal["in-process", "server"] = Field(
        "in-process",
        description="How the llamacpp model runs. in-process: llama-cpp-python in this process, "
        "one generation at a time; server: llama.cpp's llama-server as a managed child on a "
        "private 127.0.0.1 port (continuous batching over `parallel` slots, prompt cache), "
        "restarted if it dies and stopped with the service.",
    )
    parallel: int = Field(
        4,
        ge=1,
        description="server engine: slots that generate at once (each holds n_ctx tokens of KV "
        "cache); `queue_size` more wait. openai, when set: requests the server batches (vLLM's "
        "max_num_seqs, llama-server's --parallel), what eval sends at once by default; unset, "
        "eval sends one at a time (llama-cpp-python's server interrupts a stream when another "
        "request comes). The in-process engine generates one at a time.",
    )
    server_binary: Path | None = Field(
        None,
        description="server engine: the llama-server program; empty: the one next to this "
        "Python (`make install` builds it there), else the first on PATH.",
    )
    server_args: list[str] = Field(
        default_factory=list,
        description="server engine: more llama-server flags, e.g. "
        '["--cache-reuse", "256"] or ["--kv-unified"].',
    )
    model_path: Path | None = Field(
        None,
        description="GGUF file to load instead of the preset's (any GGUF; `style` applies as "
        "for the preset named in `model`).",
    )
    n_ctx: int = Field(4096, ge=64, description="Context window in tokens (prompt and answer).")
    threads: int = Field(
        0,
        ge=0,
        description="CPU threads for generation and prompt processing; 0 = all usable CPUs.",
    )
    queue_size: int = Field(
        8,
        ge=0,
        description="Requests that may wait while one generates (`parallel` with the server "
        "engine); more get a 503 at once.",
    )
    queue_timeout_s: float = Field(
        60.0, gt=0, description="Longest a request waits for its turn before it gets a 503."
    )

    # --- openai (HTTP); the timeouts and retries apply to the llamacpp server engine too ---
    base_url: str = Field(
        "http://127.0.0.1:8001/v1", description="Base URL of the server's OpenAI API, with /v1."
    )
    api_key: SecretStr | None = Field(None, description="Bearer token for the server, if any.")
    context_window: int = Field(
        8192,
        ge=64,
        description="Tokens the served model takes, prompt and answer; lowered to the server's "
        "max_model_len when it reports one (vLLM).",
    )
    connect_timeout_s: float = Field(5.0, gt=0, description="Seconds to open a connection.")
    first_token_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Seconds to wait for the first streamed token, and for any later gap.",
    )
    total_timeout_s: float = Field(300.0, gt=0, description="Seconds one generation may take.")
    retries: int = Field(
        2,
        ge=0,
        description="Retries on connection errors and 5xx, only before the first token arrives.",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra request fields merged into every request, e.g. "
        '{"repeat_penalty": 1.1} for llama.cpp servers or {"min_p": 0.05} for vLLM.',
    )

    @property
    def prompt_style(self) -> Literal["chat", "completion"]:
        """How prompts are rendered for this model: ``style``, else the backend's or preset's."""
        if self.style is not None:
            return self.style
        return "chat" if self.backend == "openai" else PRESETS[self.model or DEFAULT_PRESET].style

    @model_validator(mode="after")
    def _known_preset(self) -> LLMSettings:
        if self.backend == "llamacpp" and self.model and self.model not in PRESETS:
            raise ValueError(
                f"llm.model {self.model!r} is not a llamacpp preset ({', '.join(PRESETS)}); "
                "set llm.model_path for any other GGUF"
            )
        return self


class SamplingSettings(BaseModel):
    """How answers are sampled by default: the ``rag.sampling`` section, every field a tunable.

    A chat request overrides each with the OpenAI field of the same name; ``SamplingParams``
    (what a backend receives) takes its defaults from here, so there is one default per knob.
    """

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(
        0.1, ge=0, le=2, description="Sampling temperature.", json_schema_extra={"label": "T"}
    )
    top_p: float = Field(
        1.0, gt=0, le=1, description="Nucleus sampling.", json_schema_extra={"label": "top-p"}
    )
    top_k: int | None = Field(
        None,
        ge=0,
        description="Sampling top-k (empty: the backend's default).",
        json_schema_extra={"label": "top-k"},
    )
    max_tokens: int = Field(
        128, ge=1, description="Answer budget in tokens.", json_schema_extra={"label": "max tokens"}
    )
