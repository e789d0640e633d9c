"""One typed record of an answer: its text, citations, provenance and verification.

The chat route (plain and streamed), ``ragtune ask``, the feedback store and the eval rows all
serialize this record, so what an answer says about how it was produced is declared once (as
simonw/llm's ``Response.to_dict``/``from_dict``). The JSON of ``Citation`` and ``Provenance`` is
the ``citations`` and ``ragtune`` extensions of the chat API, which clients read as they are;
``Verification`` rides inside ``ragtune`` as ``ragtune.verification``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


def omitted_if_none() -> Any:
    """An optional field left out of the JSON when unset, rather than sent as null.

    Per field, not per model: a citation's ``page: null`` stays where clients expect it.
    """
    return Field(None, exclude_if=lambda v: v is None)


class Citation(BaseModel):
    """A passage the answer rests on; ``index`` is its [n] in the prompt."""

    index: int
    chunk_id: int
    doc_id: str
    source: str
    page: int | None
    heading: str
    score: float
    text: str  # the passage the model read: the retrieved chunk's window
    # Where ``text`` sits in the document's text, and [start, end) of each retrieved chunk inside
    # ``text`` (to highlight what was found); absent from records made before windows.
    start: int | None = omitted_if_none()
    end: int | None = omitted_if_none()
    spans: list[list[int]] | None = omitted_if_none()
    # Whether the passage backs the answer: a sentence marked [index] is supported by it (for
    # [n] the text wrote), or it is a sentence's best support (cited for want of markers).
    # Absent from records made before verification.
    supported: bool | None = omitted_if_none()


class RetrievalInfo(BaseModel):
    """How passages were found; the JSON names only the settings the search used.

    ``fusion`` and ``dense_weight`` are there for hybrid search, ``mmr_lambda`` when results were
    diversified.
    """

    mode: Literal["dense", "bm25", "hybrid"]
    fusion: Literal["rrf", "blend"] | None = omitted_if_none()
    dense_weight: float | None = omitted_if_none()
    mmr_lambda: float | None = omitted_if_none()


class ConversationInfo(BaseModel):
    """What a follow-up was retrieved for: present when the request had earlier turns.

    ``condense`` is what ``query`` is (the last message as is, earlier questions joined before
    it, or the model's rewrite); ``fallback`` says why a rewrite was asked for and not used;
    ``history_turns`` counts the earlier exchanges the prompt showed.
    """

    condense: Literal["none", "concat", "llm"]
    query: str
    fallback: str | None = omitted_if_none()
    history_turns: int


class PassageInfo(BaseModel):
    """A passage the prompt showed the model, as [index]: which chunk, where in its document.

    Every passage, cited or not, so two answers' retrievals can be told apart (the console's
    Compare view marks the passages one configuration found and another did not): a passage is
    its ``doc_id`` with ``start``/``end`` (the window's offsets, as in a citation) and the best
    retrieved ``chunk_id`` in it. No text: a citation carries that for the passages cited.
    """

    index: int
    chunk_id: int
    doc_id: str
    source: str
    page: int | None
    heading: str
    score: float
    start: int | None = omitted_if_none()
    end: int | None = omitted_if_none()


class SamplingInfo(BaseModel):
    """The sampling parameters the answer was generated with (stop sequences are the template's)."""

    temperature: float
    top_p: float
    top_k: int | None
    max_tokens: int
    seed: int | None


class Provenance(BaseModel):
    """What produced an answer: enough to reproduce it, or to tell two answers' setups apart."""

    prompt: str  # the template as 'id@version'
    retrieval_k: int
    retrieval: RetrievalInfo
    conversation: ConversationInfo | None = omitted_if_none()  # only for follow-ups
    index_version: int
    serving_version: int  # the promoted configuration in force (0: the settings)
    backend: str
    params: SamplingInfo
    timings: dict[str, float]  # seconds per stage, rounded to 0.1 ms
    # Every passage the prompt showed, in [n] order; absent from records made before it was
    # kept (and left out of the JSON then, so older answers read back byte for byte).
    passages: list[PassageInfo] | None = omitted_if_none()


class MarkerSupport(BaseModel):
    """A [n] a sentence carries: passage n's support for that sentence (None: no passage n)."""

    n: int
    support: float | None
    backed: bool  # support >= the threshold
    # The passage written in its place (rag.verify.fix_markers): the one that backs the sentence.
    fixed_to: int | None = omitted_if_none()


class SentenceSupport(BaseModel):
    """One sentence of the answer, ``text == answer[start:end]``, and the passage that backs it."""

    text: str
    start: int
    end: int
    passage: int | None  # the [n] that supports it best
    support: float  # that passage's support, in [0, 1]
    supported: bool  # support >= the threshold
    markers: list[MarkerSupport] = Field(default_factory=list)
    # Content words only the prompt's few-shot examples held: they may have leaked from one.
    borrowed: list[str] = Field(default_factory=list)


class Verification(BaseModel):
    """How well the answer's sentences are supported by the passages it was given.

    ``verdict``: every scored sentence supported, at least half ("partial"), fewer
    ("unsupported"), or not checked: the answer declines ("declined") or had no passages
    ("ungrounded"). ``action``: what ``rag.verify.on_unsupported`` did to an unsupported answer:
    "flagged" (sent as written), or "refused" (the text became the template's "I don't know",
    the model's text is ``original``, and offsets index into it). ``original`` is also kept when
    markers were fixed (a marker's ``fixed_to``). A streamed answer is only ever flagged, and its
    markers never fixed: its text was sent before it could be checked.
    """

    min_support: float
    supported_share: float  # share of scored sentences with support >= min_support
    verdict: Literal["supported", "partial", "unsupported", "declined", "ungrounded"]
    action: Literal["none", "flagged", "refused"] = "none"
    original: str | None = omitted_if_none()
    sentences: list[SentenceSupport] = Field(default_factory=list)


class Ragtune(Provenance):
    """The ``ragtune`` extension of a chat response: provenance, and verification when checked."""

    verification: Verification | None = omitted_if_none()


class PromptTokensDetails(BaseModel):
    cached_tokens: int  # prompt tokens taken from the model's KV cache (a shared prefix)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    # OpenAI's field; present when the backend said how much of the prompt came from its cache.
    prompt_tokens_details: PromptTokensDetails | None = omitted_if_none()

    @classmethod
    def of(
        cls, prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None
    ) -> Usage:
        details = (
            None if cached_tokens is None else PromptTokensDetails(cached_tokens=cached_tokens)
        )
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            prompt_tokens_details=details,
        )


class Answer(BaseModel):
    """An answer to one question as it was given, with what it cites and what produced it."""

    question: str
    text: str
    finish_reason: str
    citations: list[Citation]
    provenance: Provenance
    usage: Usage
    cached: bool = False  # served from the eval cache, not generated for this request
    # Support per sentence; absent from records made before verification.
    verification: Verification | None = None

    def explicit_citations(self) -> list[int]:
        """The [n] the text itself writes, in the order first cited.

        ``citations`` also holds passages found to back an answer that cites none (and, in
        records made before verification, every passage given), which a metric of the model's
        own citing must not count.
        """
        return [c.index for c in self.citations if f"[{c.index}]" in self.text]

    def ragtune(self) -> Ragtune:
        """The ``ragtune`` extension as a chat response carries it."""
        return Ragtune(**dict(self.provenance), verification=self.verification)

    @classmethod
    def from_legacy(
        cls, question: str, text: str, citations: list[dict[str, Any]], info: dict[str, Any]
    ) -> Answer:
        """A record from the feedback store's columns before the record existed.

        Those rows kept the ``ragtune`` info and citations as they were sent; the first ones
        predate hybrid retrieval and promoted configurations (dense search, serving version 0).
        Only finished answers were stored, but neither their finish reason nor token counts.
        """
        return cls(
            question=question,
            text=text,
            finish_reason="stop",
            citations=[Citation.model_validate(c) for c in citations],
            provenance=Provenance.model_validate(
                {"retrieval": {"mode": "dense"}, "serving_version": 0, **info}
            ),
            usage=Usage.of(0, 0),
        )
