"""Retrieve -> build prompt -> generate: the plain functions behind the chat and retrieve routes.

Handlers stay thin; everything here takes its collaborators as arguments, so the same code serves
the HTTP API, ``ragtune ask`` and the eval loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ingest import search
from ingest.embed import Embedder
from ingest.index import Hit, IndexReader
from ingest.settings import RetrievalSettings
from ingest.windows import Window, build_windows
from prompts.fewshot import ExampleBank
from prompts.registry import Example, Template, TemplateRegistry
from prompts.render import Passage, RenderedPrompt, build_prompt
from service import conversation, paths
from service.answer import (
    Answer,
    Citation,
    PassageInfo,
    Provenance,
    RetrievalInfo,
    SamplingInfo,
    Usage,
    Verification,
)
from service.llm.base import LLM, Completion, Delta, Prompt, SamplingParams
from service.settings import RagSettings, VerifySettings, template_for
from service.verify import check, cited_passages, example_words


def retrieve_serving(
    embedder: Embedder,
    index: IndexReader,
    query: str,
    serving: RagSettings,
    *,
    filters: search.Filters | None = None,
) -> list[Hit]:
    """Best-first chunks for ``query`` under a serving configuration (with a request's overrides already in it).

    Chat, ``/v1/retrieve`` and ``ragtune search`` all come through here, so the configuration in
    force (the promoted one, if any) means the same passages everywhere.
    """
    options = serving.retrieval
    return search.retrieve(
        embedder, index, query, options.k, options, filters=filters, min_score=options.min_score
    )


def with_retrieval(serving: RagSettings, **overrides: Any) -> RagSettings:
    """``serving`` with a request's or a flag's retrieval ``overrides`` (None: not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return serving
    return serving.model_copy(
        update={"retrieval": search.with_overrides(serving.retrieval, **given)}
    )


def heading_text(hit: Hit) -> str:
    return " > ".join(hit.heading)


def to_passage(window: Window) -> Passage:
    # The model sees the file name only: a long absolute path costs tokens and tells it nothing.
    hit = window.hit
    return Passage(
        text=window.text,
        source=Path(hit.source).name,
        page=hit.page,
        heading=heading_text(hit),
        score=hit.score,
        ref=window,
    )


@dataclass
class Plan:
    """Everything decided before generation; recorded with the answer."""

    question: str
    template: Template
    rendered: RenderedPrompt
    params: SamplingParams
    retrieval_k: int
    index_version: int
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    timings: dict[str, float] = field(default_factory=dict)
    serving_version: int = 0  # the promoted configuration in force (0: the settings)
    verify: VerifySettings = field(default_factory=VerifySettings)
    conversation: conversation.ConversationInfo | None = None  # what a follow-up was retrieved for
    home: Path | None = None  # sources are named relative to it in responses (paths.public_path)

    @property
    def prompt(self) -> Prompt:
        r = self.rendered
        return Prompt(text=r.text, messages=r.messages)

    @property
    def grounded(self) -> bool:
        return bool(self.rendered.passages)


def plan_answer(
    *,
    question: str,
    embedder: Embedder,
    index: IndexReader,
    llm: LLM,
    registry: TemplateRegistry,
    rag: RagSettings,
    template_ref: str | None = None,
    filters: search.Filters | None = None,
    params: SamplingParams,
    banks: dict[str, ExampleBank] | None = None,
    serving_version: int = 0,
    history: Sequence[conversation.Turn] = (),
    condensed: conversation.Condensed | None = None,
    fence_key: bytes | None,
    home: Path | None = None,
) -> Plan:
    """Retrieve and render under ``rag``: the serving configuration with the request's overrides.

    ``template_ref`` is the request's template ('id' or 'id@version'), if it names one.
    ``history`` is the conversation before ``question``: retrieval searches for the question
    condensed with it (``condensed``, when the caller already did that), and the prompt shows
    its recent exchanges. ``fence_key`` keys the passages' fence (``AppState.fence_key``; None:
    the template's own markers). ``home``: the service's HOME, so that responses name sources
    under it relative to it and relative ``source`` filters are read under it (``service.paths``).
    """
    filters = paths.indexed_filters(filters, home)
    template = serving_template(registry, rag, llm.style, template_ref)
    if condensed is None:
        condensed = conversation.condense(question, history, llm, rag.conversation)
    t0 = time.perf_counter()
    query = condensed.query
    examples = select_examples(template, query, embedder, banks if banks is not None else {})
    hits = retrieve_serving(embedder, index, query, rag, filters=filters)
    windows = build_windows(hits, index, rag.retrieval.window_tokens)
    t1 = time.perf_counter()
    rendered = build_prompt(
        template,
        question,
        [to_passage(w) for w in windows],
        style=llm.style,
        count_tokens=llm.count_tokens,
        context_window=llm.context_window,
        answer_tokens=params.max_tokens,
        examples=examples,
        history=conversation.exchanges(history),
        history_tokens=rag.conversation.history_tokens,
        fence_key=fence_key,
    )
    t2 = time.perf_counter()
    # The model must never write a passage fence; small models echo one after their answer.
    fences = (template.context.open, template.context.close, *rendered.fence)
    stops = tuple(dict.fromkeys((*params.stop, *rendered.stop, *fences)))
    return Plan(
        question=question,
        template=template,
        rendered=rendered,
        params=SamplingParams(**{**asdict(params), "stop": stops}),
        retrieval_k=rag.retrieval.k,
        index_version=index.version,
        retrieval=rag.retrieval,
        timings={"retrieval": t1 - t0, "prompt": t2 - t1}
        | ({"condense": condensed.seconds} if history else {}),
        serving_version=serving_version,
        verify=rag.verify,
        conversation=condensed.info(len(rendered.history)) if history else None,
        home=home,
    )


def serving_template(
    registry: TemplateRegistry, rag: RagSettings, style: str, template_ref: str | None = None
) -> Template:
    """The template an answer uses: the request's ``template_ref``, else the configuration's
    (else the built-in one for the model's prompt style), resolved to a concrete version."""
    return registry.get(template_ref or template_for(rag.template, style))


def select_examples(
    template: Template, question: str, embedder: Embedder, banks: dict[str, ExampleBank]
) -> list[Example] | None:
    """Few-shot examples most similar to ``question`` for templates that ask for it.

    ``banks`` caches each template's embedded examples (the app keeps one for its lifetime).
    """
    if template.fewshot.select != "similar" or not template.examples:
        return None
    bank = banks.get(template.ref)
    if bank is None:
        bank = banks[template.ref] = ExampleBank(template.examples, embedder.encode)
    return bank.select(question, template.fewshot.k or len(template.examples))


def generate(plan: Plan, llm: LLM, cancel: threading.Event | None = None) -> Completion:
    """The model's answer; with nothing retrieved, the template's "don't know" without a call."""
    if not plan.grounded:
        return Completion(plan.template.no_answer, "stop", 0, 0)
    t = time.perf_counter()
    out = llm.complete(plan.prompt, plan.params, cancel)
    plan.timings["generation"] = time.perf_counter() - t
    out.text = out.text.strip()
    return out


def stream(plan: Plan, llm: LLM, cancel: threading.Event | None = None) -> Iterator[Delta]:
    if not plan.grounded:
        yield Delta(plan.template.no_answer, "stop")
        return
    t = time.perf_counter()
    first = True
    for delta in llm.stream(plan.prompt, plan.params, cancel):
        if first:
            plan.timings["first_token"] = time.perf_counter() - t
            first = False
        yield delta
    plan.timings["generation"] = time.perf_counter() - t


def record(
    plan: Plan, out: Completion, backend: str, embedder: Embedder, *, streamed: bool = False
) -> Answer:
    """The answer as it is sent, stored and evaluated: text, citations, provenance, verification.

    ``streamed``: the text has already gone out, so an unsupported answer can only be flagged.
    """
    t = time.perf_counter()
    passages = [p.text for p in plan.rendered.passages]
    text, checked = check(
        out.text,
        passages,
        embedder,
        plan.verify,
        plan.template.no_answer,
        streamed=streamed,
        example_words=lendable_words(plan),
    )
    plan.timings["verify"] = time.perf_counter() - t
    return Answer(
        question=plan.question,
        text=text,
        finish_reason=out.finish_reason,
        citations=citations(plan, text, checked),
        provenance=provenance(plan, backend),
        usage=Usage.of(out.prompt_tokens, out.completion_tokens, out.cached_tokens),
        cached=out.cached,
        verification=checked,
    )


def lendable_words(plan: Plan) -> frozenset[str]:
    """Content words that only the few-shot examples the prompt showed could lend the answer."""
    r, t = plan.rendered, plan.template
    if not r.examples:
        return frozenset()

    def shown_as(p: Passage) -> str:  # a passage as the prompt shows it: header and text
        return f"{p.source} {p.heading} {p.text}"

    examples = [
        text for e in r.examples for text in (e.question, e.answer, *map(shown_as, e.passages))
    ]
    shown = [
        plan.question,
        t.instruction,
        t.no_answer,
        t.layout.reminder,
        *map(shown_as, r.passages),
        *(text for turn in r.history for text in turn),
    ]
    return example_words(examples, shown)


def citations(plan: Plan, answer: str, verification: Verification) -> list[Citation]:
    """The passages the answer rests on (``verify.cited_passages``), as clients are sent them."""
    passages = plan.rendered.passages
    out = []
    for n, supported in cited_passages(answer, len(passages), verification):
        window: Window = passages[n - 1].ref  # type: ignore[assignment]
        out.append(
            Citation(
                **_located(n, window, plan.home),
                text=window.text,
                spans=[list(s) for s in window.spans],
                supported=supported,
            )
        )
    return out


def provenance(plan: Plan, backend: str) -> Provenance:
    p, r = plan.params, plan.retrieval
    hybrid = r.mode == "hybrid"
    return Provenance(
        prompt=plan.template.ref,
        retrieval_k=plan.retrieval_k,
        retrieval=RetrievalInfo(
            mode=r.mode,
            fusion=r.fusion if hybrid else None,
            dense_weight=r.dense_weight if hybrid else None,
            mmr_lambda=r.mmr_lambda if r.mmr else None,
        ),
        conversation=plan.conversation,
        index_version=plan.index_version,
        serving_version=plan.serving_version,
        backend=backend,
        params=SamplingInfo(
            temperature=p.temperature,
            top_p=p.top_p,
            top_k=p.top_k,
            max_tokens=p.max_tokens,
            seed=p.seed,
        ),
        timings={k: round(v, 4) for k, v in plan.timings.items()},
        passages=passages(plan),
    )


def passages(plan: Plan) -> list[PassageInfo]:
    """Every passage the prompt showed, in [n] order, as ``ragtune.passages`` lists them."""
    out = []
    for n, p in enumerate(plan.rendered.passages, 1):
        window = p.ref
        if not isinstance(window, Window):  # not a retrieved passage: nothing to identify it by
            continue
        out.append(PassageInfo(**_located(n, window, plan.home)))
    return out


def _located(n: int, window: Window, home: Path | None) -> dict[str, Any]:
    """What identifies passage [n] (a citation and ``ragtune.passages`` alike): its best
    retrieved chunk and where the window sits in the document. A source under ``home`` is named
    relative to it: a response never shows where the server keeps its files."""
    hit = window.hit
    return {
        "index": n,
        "chunk_id": hit.chunk_id,
        "doc_id": hit.doc_id,
        "source": hit.source if home is None else paths.public_path(hit.source, home),
        "page": hit.page,
        "heading": heading_text(hit),
        "score": round(float(hit.score), 4),
        "start": window.start,
        "end": window.end,
    }


def sampling_params(
    rag: RagSettings,
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    max_tokens: int | None = None,
    stop: Sequence[str] | None = None,
    seed: int | None = None,
) -> SamplingParams:
    """Request values over the serving defaults (which the eval loop's promotion changes)."""
    d = rag.sampling
    return SamplingParams(
        temperature=d.temperature if temperature is None else temperature,
        top_p=d.top_p if top_p is None else top_p,
        top_k=d.top_k if top_k is None else top_k,
        max_tokens=d.max_tokens if max_tokens is None else max_tokens,
        stop=tuple(stop or ()),
        seed=seed,
    )


def question_of(messages: Sequence[Any]) -> str:
    """The question is the last user message (earlier turns are the client's business)."""
    for m in reversed(messages):
        if m.role == "user":
            return str(m.text()).strip()
    return ""
