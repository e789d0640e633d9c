"""Request and response bodies, mirroring OpenAI's field names and order (as vLLM's protocol.py).

ragtune's extensions are separate, optional fields: ``top_k`` (sampling), ``retrieval``,
``conversation``, ``prompt`` and ``verify`` in requests; ``citations`` and ``ragtune`` (with its
``verification``) in responses. Unknown OpenAI fields
(``user``, ``n=1``, ``logit_bias``...) are accepted and ignored, so clients work unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic.fields import FieldInfo

from ingest.settings import RetrievalSettings
from service.answer import Answer, Citation, Ragtune, Usage, omitted_if_none
from service.settings import ConversationSettings, VerifySettings
from service.text import RequestBody


class ChatMessage(RequestBody):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text, whether sent as a string or as OpenAI content parts."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class _RetrievalExtension(RequestBody):
    """ragtune extension: how passages are retrieved for this request.

    Every ``rag.retrieval`` setting is a field here too (derived below, never re-listed), each
    optional: left out, the serving configuration's value applies.
    """

    model_config = ConfigDict(extra="forbid")

    filters: dict[str, str | list[str]] | None = Field(
        None,
        description="Match on metadata: 'source' (a path or a folder prefix, as responses name "
        "it: relative to the service's home for uploads), 'doc_id', 'kind'; a list means any of.",
    )

    def overrides(self) -> dict[str, Any]:
        """The retrieval settings this request sets (the rest keep the serving values)."""
        return self.model_dump(exclude={"filters"}, exclude_none=True)


def _optional_fields(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s fields, each optional with no default: a request sets only what it changes."""
    out: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        annotation: Any = f.annotation
        out[name] = (annotation | None, FieldInfo.merge_field_infos(f, default=None))
    return out


if TYPE_CHECKING:
    RetrievalOptions = _RetrievalExtension
else:
    RetrievalOptions = create_model(
        "RetrievalOptions",
        __base__=_RetrievalExtension,
        __doc__=_RetrievalExtension.__doc__,
        **_optional_fields(RetrievalSettings),
    )


class _SectionExtension(RequestBody):
    """A ragtune extension holding one settings section's fields, each optional (derived below)."""

    model_config = ConfigDict(extra="forbid")

    def overrides(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


if TYPE_CHECKING:
    VerifyOptions = _SectionExtension
    ConversationOptions = _SectionExtension
else:
    VerifyOptions = create_model(
        "VerifyOptions",
        __base__=_SectionExtension,
        __doc__="ragtune extension: how this request's answer is checked (``rag.verify``).",
        **_optional_fields(VerifySettings),
    )
    ConversationOptions = create_model(
        "ConversationOptions",
        __base__=_SectionExtension,
        __doc__="ragtune extension: how a follow-up is searched for and how much history the "
        "prompt shows (``rag.conversation``).",
        **_optional_fields(ConversationSettings),
    )


class ChatCompletionRequest(RequestBody):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    n: int = Field(1, ge=1, le=1, description="Only one choice is generated.")
    # extensions
    top_k: int | None = Field(None, ge=-1, description="Sampling top-k (vLLM's extension).")
    retrieval: RetrievalOptions | None = None
    prompt: str | None = Field(None, description="Prompt template as 'id@version' or 'id'.")
    verify: VerifyOptions | None = None
    conversation: ConversationOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, v: str | list[str] | None) -> list[str] | None:
        if v is None:
            return None
        stops = [v] if isinstance(v, str) else v
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        return stops


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ResponseMessage
    finish_reason: str | None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    citations: list[Citation]
    ragtune: Ragtune

    @classmethod
    def of(cls, rid: str, created: int, model: str, answer: Answer) -> ChatCompletionResponse:
        return cls(
            id=rid,
            created=created,
            model=model,
            choices=[
                Choice(
                    message=ResponseMessage(content=answer.text),
                    finish_reason=answer.finish_reason,
                )
            ],
            usage=answer.usage,
            citations=answer.citations,
            ragtune=answer.ragtune(),
        )


class DeltaMessage(BaseModel):
    """What a chunk adds: the role once, first; then pieces of content; the last one is empty."""

    role: Literal["assistant"] | None = omitted_if_none()
    content: str | None = omitted_if_none()


class ChunkChoice(BaseModel):
    index: int = 0
    delta: DeltaMessage
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    """One SSE event; only the last carries ``usage``, ``citations`` and ``ragtune``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = omitted_if_none()
    citations: list[Citation] | None = omitted_if_none()
    ragtune: Ragtune | None = omitted_if_none()


class RetrieveRequest(RetrievalOptions):
    query: str = Field(min_length=1)


class RetrievedPassage(BaseModel):
    chunk_id: int
    doc_id: str
    source: str
    page: int | None
    heading: str
    score: float
    text: str


class RetrieveResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[RetrievedPassage]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ragtune"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
