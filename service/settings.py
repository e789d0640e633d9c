"""The one settings model: defaults < ragtune.toml < RAGTUNE_* environment < command-line flags.

Built in ``main()`` (or a test) and passed down; nothing reads settings at import time.
Nested sections use ``__`` in the environment: ``RAGTUNE_EMBED__BACKEND=torch``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ingest.settings import (
    ChunkSettings,
    EmbedSettings,
    IndexSettings,
    IngestSettings,
    RetrievalSettings,
)
from service.llm.settings import LLMSettings, SamplingSettings

CONFIG_ENV = "RAGTUNE_CONFIG"
DEFAULT_CONFIG = Path("ragtune.toml")


# The built-in template for each prompt style: what an unset ``rag.template`` means.
DEFAULT_TEMPLATES = {"completion": "grounded-qa@1", "chat": "grounded-chat@1"}


def template_for(template: str | None, style: str) -> str:
    """``template``, or the built-in one for ``style`` when it is unset."""
    return template or DEFAULT_TEMPLATES[style]


def _template_ref(v: str) -> str:
    if v.count("@") != 1 or not all(v.split("@")):
        raise ValueError(f"{v!r} is not a template 'id@version'")
    return v


TemplateRef = Annotated[str, AfterValidator(_template_ref)]


def _network(v: str) -> str:
    """An address or CIDR network, as uvicorn's forwarded_allow_ips takes it (never ``*``)."""
    try:
        ipaddress.ip_network(v, strict=False)
    except ValueError:
        raise ValueError(f"{v!r} is not an IP address or network (CIDR)") from None
    return v


Network = Annotated[str, AfterValidator(_network)]


class ConversationSettings(BaseModel):
    """How a follow-up question is read in its conversation (``service.conversation``).

    Retrieval searches for a condensed question, since a follow-up such as "and under which
    licence?" finds nothing on its own; the prompt shows the recent turns, so the model can read
    the follow-up as the user meant it. A request with one user message is unaffected.
    """

    model_config = ConfigDict(extra="forbid")

    condense: Literal["none", "concat", "llm"] = Field(
        "concat",
        description="What retrieval searches for when the conversation has earlier turns. none: "
        "the last user message alone; concat: the earlier user questions (newest kept first, "
        "within condense_tokens) followed by the last one; llm: the answering model rewrites the "
        "last message as a standalone question, falling back to concat when the rewrite is "
        "empty, garbled, too long or late. Chosen on bench/conversation.py.",
        json_schema_extra={"label": "condense", "absent": "none"},
    )
    condense_tokens: int = Field(
        96,
        ge=16,
        le=1024,
        description="Token budget of the condensed question: concat keeps earlier questions "
        "while the whole fits; an llm rewrite may generate this many tokens and is rejected "
        "when longer.",
        json_schema_extra={"label": "condense tokens", "absent": 96},
    )
    condense_timeout_s: float = Field(
        10.0,
        gt=0,
        le=120,
        description="Seconds an llm rewrite may take (it is cancelled then, and concat used).",
        json_schema_extra={"label": "condense timeout", "absent": 10.0},
    )
    history_tokens: int = Field(
        256,
        ge=0,
        le=8192,
        description="Tokens of earlier turns shown in the prompt (question and answer pairs, "
        "newest kept first; dropped before any passage when the window is short). 0: none.",
        json_schema_extra={"label": "history tokens", "absent": 0},
    )


# Short names from before tunables had paths: sweep files' axes, rows' columns and promotion
# files written then (``k``, ``min_score``...) keep working through this one table.
ALIASES = {
    "template": "rag.template",
    "retrieval_k": "rag.retrieval.k",
    "k": "rag.retrieval.k",
    "min_score": "rag.retrieval.min_score",
    "retrieval_mode": "rag.retrieval.mode",
    "fusion": "rag.retrieval.fusion",
    "dense_weight": "rag.retrieval.dense_weight",
    "temperature": "rag.sampling.temperature",
    "top_p": "rag.sampling.top_p",
    "top_k": "rag.sampling.top_k",
    "max_tokens": "rag.sampling.max_tokens",
    "chunk_size": "chunk.size",
    "chunk_overlap": "chunk.overlap",
}


class VerifySettings(BaseModel):
    """How answers are checked against their passages (``service.verify``) and what follows."""

    model_config = ConfigDict(extra="forbid")

    min_support: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Support (0-1: content words of a sentence found in a passage, with the "
        "encoder's similarity) at which a passage backs a sentence; below it the sentence is "
        "unsupported and that passage is not cited for it.",
        json_schema_extra={"label": "min support", "absent": 0.6},
    )
    fix_markers: bool = Field(
        True,
        description="A [n] whose passage does not back its sentence is rewritten to the passage "
        "that does (the model's text is kept in ragtune.verification); without one it stays, "
        "flagged. Small models pick the wrong number often (Qwen2.5-Coder 0.5B: a third of its "
        "[n] point at evidence). Never in a streamed answer, whose text went out already.",
        json_schema_extra={"label": "fix markers", "absent": False},
    )
    on_unsupported: Literal["flag", "refuse"] = Field(
        "flag",
        description="An answer with under half its sentences supported: 'flag' sends it as "
        "written, marked unsupported in ragtune.verification; 'refuse' answers the template's "
        "\"I don't know\" instead, keeping the model's text in the verification. A streamed "
        "answer is flagged either way (its text went out before it could be checked).",
        json_schema_extra={"label": "on unsupported", "absent": "flag"},
    )


class RagSettings(BaseModel):
    """The serving configuration the eval loop tunes: every field below it is a tunable.

    A tunable is addressed by its path (``rag.template``, ``rag.retrieval.k``,
    ``rag.sampling.temperature``); ``service.tunables`` derives sweep axes, configuration ids,
    promotion files, report labels and the chat request's extension fields from these fields.
    """

    model_config = ConfigDict(extra="forbid")

    template: TemplateRef | None = Field(
        None,
        description="Prompt template, 'id@version'. Empty: the built-in one for the model's "
        "prompt style, grounded-qa@1 for completion (base models such as gemma-3-270m), "
        "grounded-chat@1 for chat (instruct models).",
        json_schema_extra={"label": "template"},
    )
    retrieval: RetrievalSettings = Field(
        default_factory=RetrievalSettings,
        description="How many passages, how they are searched and the score floor.",
    )
    conversation: ConversationSettings = Field(
        default_factory=ConversationSettings,
        description="How follow-up questions are searched for and what of the conversation "
        "the prompt shows.",
    )
    sampling: SamplingSettings = Field(
        default_factory=SamplingSettings, description="Sampling defaults of the answering model."
    )
    verify: VerifySettings = Field(
        default_factory=VerifySettings,
        description="Support per answer sentence, what is cited, and unsupported answers.",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any) -> Any:
        """Flat keys of older settings and promotion files (``k``, ``temperature``) nest."""
        return nest_legacy(data) if isinstance(data, dict) else data


def nest_legacy(data: Mapping[str, Any]) -> dict[str, Any]:
    """A ``rag`` table with its pre-path flat keys (``k``, ``top_p``) moved where they live now.

    A flat key wins over the same field in a nested table: it is the more specific of the two.
    """
    out = dict(data)
    for key in [k for k in data if k not in RagSettings.model_fields]:
        path = ALIASES.get(key, "")
        if path.startswith("rag.") and path.count(".") == 2:
            _, section, name = path.split(".")
            current = out.get(section)
            nested = current.model_dump() if isinstance(current, BaseModel) else dict(current or {})
            nested[name] = out.pop(key)
            out[section] = nested
    return out


class ServiceSettings(BaseModel):
    """HTTP server, access control and request limits."""

    host: str = Field("127.0.0.1", description="Address `ragtune serve` binds.")
    port: int = Field(8000, ge=0, le=65535, description="Port `ragtune serve` binds.")
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="API keys with the query role: chat, retrieve, feedback, /v1/models, "
        "/v1/serving and reading templates. With no keys at all (here, admin_keys or keys_file) "
        "the API is open, which `ragtune serve` allows on a loopback address only.",
    )
    admin_keys: list[SecretStr] = Field(
        default_factory=list,
        description="API keys with the admin role: everything a query key may, plus documents, "
        "template writes and previews, the feedback list, evaluation (datasets, runs, sweeps, "
        "promotion, rollback) and /metrics.",
    )
    keys_file: Path | None = Field(
        None,
        description="File of accepted keys' SHA-256 hex digests, one per line, each optionally "
        "followed by its role, 'query' or 'admin'; a bare digest is a query key.",
    )
    allow_open: bool = Field(
        False,
        description="Let `ragtune serve` bind a non-loopback address with no keys configured "
        "(`--allow-open`): anyone who reaches it may do everything, delete documents included.",
    )
    trusted_proxies: list[Network] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty: the client is the TCP peer and those headers "
        "are ignored (rate limits and failed-key throttling go by the client's address).",
    )
    rate_limit_per_minute: int = Field(
        0,
        ge=0,
        description="Requests per key per minute (per client address when the API is open); "
        "0: off.",
    )
    auth_failures_per_minute: int = Field(
        10,
        ge=0,
        description="Wrong API keys accepted from one client address per minute; past it every "
        "request from there gets 429 with Retry-After, a right key included, until the budget "
        "refills. A missing key is not counted. 0: off.",
    )
    rate_limit_clients: int = Field(
        10_000,
        ge=1,
        description="Most clients (keys or addresses) whose rate-limit and failed-key budgets "
        "are remembered. Only a budget left alone for a minute (full again) is forgotten; while "
        "more clients are active, newcomers share one budget, so no client gets past its limit.",
    )
    docs: Literal["key", "open", "off"] = Field(
        "key",
        description="/docs, /redoc and /openapi.json. key: they need a key like the API (none "
        "when the API is open); open: served to anyone; off: not served.",
    )
    max_body_bytes: int = Field(
        1_000_000,
        ge=1024,
        description="Largest request body, counted on the bytes received (chunked bodies too); "
        "the upload routes have their own limits instead.",
    )
    max_messages: int = Field(64, ge=1, description="Most messages in one chat request.")
    max_question_tokens: int = Field(512, ge=8, description="Longest question, in model tokens.")
    max_tokens: int = Field(1024, ge=1, description="Largest max_tokens a client may ask for.")
    max_k: int = Field(50, ge=1, description="Most passages a client may ask to retrieve.")
    max_upload_mb: float = Field(
        50.0,
        gt=0,
        description="Largest document upload (`POST /v1/documents`); the route's body limit "
        "in place of max_body_bytes, with 64 KiB more for the multipart envelope.",
    )
    response_retention_days: float | None = Field(
        30.0,
        gt=0,
        description="Days an answer nobody rated is kept in feedback.sqlite; null: forever. "
        "Rated answers and all feedback are kept.",
    )
    max_responses: int | None = Field(
        100_000,
        ge=1,
        description="Most unrated answers kept in feedback.sqlite (the newest); null: no limit.",
    )
    writer_wait_s: float = Field(
        2.0,
        ge=0,
        le=30,
        description="How long an upload or delete waits for the index writer lock another "
        "process holds (an ingest run committing) before answering 503 with Retry-After.",
    )
    max_dataset_bytes: int = Field(
        1_000_000,
        ge=1024,
        description="Largest evaluation dataset `POST /v1/eval/datasets` stores; that route's "
        "body limit is twice this (JSON escaping) plus 64 KiB, in place of max_body_bytes.",
    )


class EvalSettings(BaseModel):
    """The eval loop: its judge model, its statistics and where its runs go (flags override)."""

    judge_base_url: str | None = Field(
        None,
        description="OpenAI-compatible judge base URL with /v1, used with judge_model when "
        "--judge is not given; empty: no judge (the metrics that need none).",
    )
    judge_model: str | None = Field(None, description="Judge model id sent to the server.")
    judge_api_key: SecretStr | None = Field(None, description="Bearer token for the judge, if any.")
    judge_timeout_s: float = Field(
        60.0, gt=0, description="Seconds per judge request; a score gets this times its requests."
    )
    judge_max_tokens: int = Field(
        1024, ge=16, description="Judge answer budget in tokens (statement lists need room)."
    )
    judge_strictness: int = Field(
        3, ge=1, description="Questions answer_relevancy generates per answer (one request each)."
    )
    judge_metrics: list[str] = Field(
        default_factory=lambda: [
            "answer_accuracy",
            "faithfulness",
            "answer_relevancy",
            "llm_context_precision",
            "llm_context_recall",
        ],
        description="The judge metrics a judged run asks for. Each costs requests per answer "
        "(answer_accuracy 2, faithfulness 2, answer_relevancy judge_strictness, "
        "llm_context_precision one per passage, llm_context_recall 1); a local judge on 2 cores "
        'is best kept to answer_accuracy (README: "A local judge").',
    )
    judge_json_schema: bool = Field(
        False,
        description="Send each judge request's JSON schema in response_format (llama.cpp's "
        "servers then constrain the output to it, so every judgement parses); off: plain JSON "
        "mode, what OpenAI and vLLM accept. The local judge always sends it.",
    )
    local_judge: str = Field(
        "qwen2.5-coder-1.5b-instruct",
        description="The instruct preset `--judge local` runs (`local:NAME` picks another): "
        "served by llama_cpp.server on a private loopback port for the run, with schema-"
        'constrained output (README: "A local judge").',
    )
    local_judge_n_ctx: int = Field(
        4096, ge=1024, description="Context window of the local judge (ragas' prompts are long)."
    )
    bootstrap_resamples: int = Field(
        2000, ge=100, description="Paired bootstrap resamples per metric comparison."
    )
    confidence_level: float = Field(
        0.95, gt=0.5, lt=1, description="Confidence level of the intervals that decide 'better'."
    )
    bootstrap_seed: int = Field(
        20240601, ge=0, description="Bootstrap seed: the same rows always give the same intervals."
    )
    runs_dir: Path | None = Field(
        None, description="Where run folders go when --out is not given; empty: HOME/eval/runs."
    )
    concurrency: int | None = Field(
        None,
        ge=1,
        description="Questions of one configuration `eval run` and `eval models` answer at once "
        "(rows stay in dataset order and match a one-at-a-time run at temperature 0); empty: "
        "what the backend batches (1 in-process, llm.parallel for the server engine, and for openai "
        "llm.parallel if set, else 1). "
        "More than that wait at the backend's gate (llm.queue_size, llm.queue_timeout_s).",
    )
    judge_concurrency: int | None = Field(
        None,
        ge=1,
        description="Judge requests in flight at once; empty: eval.concurrency's value for a "
        "judge server, 1 for `--judge local` (its server answers one request at a time, and a "
        "queued request's timeout runs while it waits).",
    )
    sweep_threads: int = Field(
        1,
        ge=0,
        description="LLM threads of a sweep started over the API (`POST /v1/eval/sweeps`): it "
        "runs in a child process with a model of its own, beside the serving one, so this many "
        "cores are shared with serving while it runs (0: llm.threads).",
    )


class Settings(BaseSettings):
    """Everything configurable about ragtune, one section per concern."""

    model_config = SettingsConfigDict(
        env_prefix="RAGTUNE_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    home: Path = Field(
        Path(".ragtune"), description="Data directory: index versions, docstore, caches of a run."
    )
    embed: EmbedSettings = Field(default_factory=EmbedSettings, description="Sentence encoder.")
    chunk: ChunkSettings = Field(default_factory=ChunkSettings, description="Chunking.")
    index: IndexSettings = Field(default_factory=IndexSettings, description="Vector index.")
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="Ingest workers.")
    llm: LLMSettings = Field(default_factory=LLMSettings, description="The answering model.")
    rag: RagSettings = Field(default_factory=RagSettings, description="Answering defaults.")
    service: ServiceSettings = Field(default_factory=ServiceSettings, description="HTTP API.")
    eval: EvalSettings = Field(default_factory=EvalSettings, description="Evaluation loop.")

    # rag.template was unset and follows the model's prompt style (see ``with_llm``).
    _auto_template: bool = PrivateAttr(False)

    @model_validator(mode="after")
    def _template_follows_the_model(self) -> Settings:
        """An unset template becomes the built-in one for the model's prompt style, here, so
        every configuration, sweep and promotion names a real template."""
        if self.rag.template is None:
            style = self.llm.prompt_style
            self.rag = self.rag.model_copy(update={"template": template_for(None, style)})
            self._auto_template = True
        return self

    def with_llm(self, llm: LLMSettings) -> Settings:
        """These settings answering with ``llm``: a template that followed the model follows it."""
        out = self.model_copy(update={"llm": llm})
        if self._auto_template:
            template = template_for(None, llm.prompt_style)
            out.rag = self.rag.model_copy(update={"template": template})
        return out

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file comes from model_config["toml_file"]; load_settings() sets it.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment and TOML file, with explicit ``overrides`` on top.

    The file is ``config``, else ``$RAGTUNE_CONFIG``, else ``./ragtune.toml`` when it exists.
    """
    toml = config or Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    if (config is not None or os.environ.get(CONFIG_ENV)) and not toml.is_file():
        raise FileNotFoundError(f"config file not found: {toml}")
    values = {k: v for k, v in overrides.items() if v is not None}
    if not toml.is_file():
        return Settings(**values)

    class FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=toml)

    return FileSettings(**values)
