"""Conversations: what a follow-up question is searched for, and which earlier turns it comes with.

Retrieval sees one string. For "and under which licence?" the last user message alone finds
nothing useful, so the question is condensed with the conversation first (``condense``):

- ``concat``: the earlier user questions, newest kept first within a token budget, then the
  follow-up. No model call; the earlier question names the subject the follow-up leaves out.
- ``llm``: the answering model rewrites the follow-up as a standalone question under a strict
  token budget and timeout. Small models often fail at this, so a rewrite is used only when it
  looks like one (``check_rewrite``); otherwise ``concat`` is, and the record says why.

The prompt's history is the conversation's earlier question/answer exchanges (``exchanges``),
shown by ``prompts.render`` within ``rag.conversation.history_tokens``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prompts.condense import LABELS, STOP, render_condense
from prompts.render import Exchange, recent
from service.answer import ConversationInfo
from service.llm.base import LLM, LLMError, Prompt, SamplingParams
from service.settings import ConversationSettings, RagSettings

Method = Literal["none", "concat", "llm"]
_ROLES = ("user", "assistant")
_CITE = re.compile(r"\s*\[\d{1,3}\]")
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORD_LIST = (
    "a an the and or but if then so of to in on at by for with from into about as is are was were "
    "be been being do does did done have has had it its this that these those there their them "
    "they he she we you your our his her i me my what which who whom whose when where why how "
    "not no yes can could should would will shall may might must also too very just than more "
    "most other any all some such only own same one ones"
)
_STOPWORDS = frozenset(_STOPWORD_LIST.split())


@dataclass(frozen=True)
class Turn:
    """One message of a conversation: a user or assistant role and its text."""

    role: str
    content: str


@dataclass(frozen=True)
class Condensed:
    """What retrieval searches for, and how it came about.

    ``method`` is what ``query`` is; ``fallback`` says why an llm rewrite was not used
    ("empty", "too long", "labels", "off topic", "timeout", "error"), and ``rewrite`` is that
    rejected output, for benchmarks and logs.
    """

    query: str
    method: Method = "none"
    fallback: str | None = None
    rewrite: str | None = None
    seconds: float = 0.0

    def info(self, history_turns: int) -> ConversationInfo:
        return ConversationInfo(
            condense=self.method,
            query=self.query,
            fallback=self.fallback,
            history_turns=history_turns,
        )


def with_overrides(serving: RagSettings, **given: Any) -> RagSettings:
    """``serving`` with a request's ``conversation`` settings (validated by the request model)."""
    if not given:
        return serving
    return serving.model_copy(
        update={"conversation": serving.conversation.model_copy(update=given)}
    )


def turns_of(messages: Iterable[Any]) -> list[Turn]:
    """Chat messages (request models with ``text()``, or ``{"role", "content"}`` dicts) as turns."""
    out = []
    for m in messages:
        if isinstance(m, dict):
            role, text = m.get("role", ""), m.get("content") or ""
        else:
            role, text = m.role, m.text()
        out.append(Turn(str(role), str(text)))
    return out


def history_of(messages: Sequence[Any]) -> list[Turn]:
    """The user and assistant turns before the last user message (which is the question).

    System and tool messages are the client's business; empty ones carry nothing.
    """
    turns = turns_of(messages)
    last = max((i for i, t in enumerate(turns) if t.role == "user"), default=0)
    return [t for t in turns[:last] if t.role in _ROLES and t.content.strip()]


def exchanges(history: Sequence[Turn]) -> tuple[Exchange, ...]:
    """Earlier (question, answer) pairs for the prompt, citation markers removed from answers.

    The old answers' [n] pointed at passages this prompt does not have. A question left
    unanswered (two user turns in a row) or an answer without a question is not an exchange.
    """
    out: list[Exchange] = []
    question: str | None = None
    answer: list[str] = []
    for t in [*history, Turn("user", "")]:
        if t.role == "user":
            if question is not None and answer:
                text = " ".join(_CITE.sub("", a).strip() for a in answer)
                out.append((question, text))
            question, answer = t.content.strip(), []
        elif t.role == "assistant" and question is not None:
            answer.append(t.content)
    return tuple(out)


def concat(
    earlier: Sequence[str], question: str, count_tokens: Callable[[str], int], budget: int
) -> str:
    """The earlier questions that fit ``budget`` with ``question`` (newest kept first), then it.

    The follow-up itself is always kept: its length is the question cap's business.
    """
    kept: list[str] = []
    used = count_tokens(question)
    for q in reversed(earlier):
        used += count_tokens(q)
        if used > budget:
            break
        kept.append(" ".join(q.split()))
    return "\n".join([*reversed(kept), question])


def _words(text: str) -> set[str]:
    out = set()
    for w in _WORD.findall(text.lower()):
        if w in _STOPWORDS or (len(w) < 2 and not w.isdigit()):
            continue
        out.add(w[:-1] if len(w) > 3 and w.endswith("s") else w)
    return out


def check_rewrite(
    text: str,
    finish_reason: str,
    *,
    question: str,
    earlier: Sequence[str],
    count_tokens: Callable[[str], int],
    budget: int,
) -> tuple[str, str | None]:
    """``(rewrite, None)`` for a usable rewrite, else ``("", why)``.

    Garbled means: empty; cut off or over ``budget`` tokens ("too long"); a prompt label in it
    ("labels": the model continued the prompt); or not a rewrite of this follow-up in this
    conversation ("off topic"): it lacks every content word the follow-up adds to the
    conversation (or, when it adds none, every word of the follow-up), or brings in none from
    the earlier turns. That is how a small model echoes the follow-up, repeats the earlier
    question or copies the prompt's examples.
    """
    if finish_reason == "cancelled":
        return "", "timeout"
    rewrite = " ".join(text.split()).strip("\"'“”‘’ ")
    if not rewrite:
        return "", "empty"
    if finish_reason == "length" or count_tokens(rewrite) > budget:
        return "", "too long"
    if any(label.lower() in rewrite.lower() for label in LABELS):
        return "", "labels"
    words, own, before = _words(rewrite), _words(question), _words(" ".join(earlier))
    fresh = (own - before) or own  # what the follow-up asks beyond the conversation
    if (fresh and not words & fresh) or not (words - own) & before:
        return "", "off topic"
    return rewrite, None


def rewrite(
    question: str,
    history: Sequence[Exchange],
    llm: LLM,
    settings: ConversationSettings,
) -> tuple[str, str]:
    """The model's raw rewrite and its finish reason ("cancelled" past the timeout)."""
    text, messages = render_condense(history, question, llm.style)
    params = SamplingParams(
        temperature=0.0, top_p=1.0, top_k=1, max_tokens=settings.condense_tokens, stop=STOP, seed=0
    )
    cancel = threading.Event()
    timer = threading.Timer(settings.condense_timeout_s, cancel.set)
    timer.start()
    try:
        out = llm.complete(Prompt(text=text, messages=messages), params, cancel)
    finally:
        timer.cancel()
    return out.text, "cancelled" if cancel.is_set() else out.finish_reason


def condense(
    question: str, history: Sequence[Turn], llm: LLM, settings: ConversationSettings
) -> Condensed:
    """What to retrieve for ``question`` given the earlier ``history`` (see the module notes).

    Without earlier user questions, or with ``condense = "none"``, it is the question as is.
    """
    earlier = [t.content for t in history if t.role == "user" and t.content.strip()]
    if settings.condense == "none" or not earlier:
        return Condensed(question)
    t0 = time.perf_counter()
    cheap = concat(earlier, question, llm.count_tokens, settings.condense_tokens)
    if settings.condense == "concat":
        return Condensed(cheap, "concat", seconds=time.perf_counter() - t0)
    # Unanswered questions count too: the rewrite needs the subject, the answer is a bonus.
    pairs = exchanges(history) or tuple((q, "") for q in earlier)
    budget = max(settings.history_tokens, settings.condense_tokens)
    shown = recent(pairs, llm.count_tokens, budget) or pairs[-1:]
    try:
        raw, finish = rewrite(question, shown, llm, settings)
    except LLMError:  # a busy or unreachable model: the answer will say so; retrieval need not
        return Condensed(cheap, "concat", fallback="error", seconds=time.perf_counter() - t0)
    text, why = check_rewrite(
        raw,
        finish,
        question=question,
        earlier=[f"{q} {a}" for q, a in shown],
        count_tokens=llm.count_tokens,
        budget=settings.condense_tokens,
    )
    seconds = time.perf_counter() - t0
    if why is None:
        return Condensed(text, "llm", seconds=seconds)
    return Condensed(cheap, "concat", fallback=why, rewrite=raw or None, seconds=seconds)
