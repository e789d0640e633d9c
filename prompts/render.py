"""Turn a template, a question and retrieved passages into the prompt a model sees.

Stable parts come first (instruction, few-shot examples), what varies last (passages, then the
question), so vLLM's prefix cache and llama.cpp's KV reuse skip the shared prefix. The budget is
checked by counting the whole rendered prompt with the serving model's own tokenizer (pieces do
not add up exactly), a handful of times per request thanks to a binary search over passages.
Retrieved text is fenced, with a marker keyed per request when the caller has a key, and whatever
in it looks like the prompt's structure is defanged (``prompts.fence``), so a document can neither
escape its fence nor pose as another passage, a question or another chat turn. Earlier turns of a conversation go after the stable
prefix too: chat messages before the last user turn, or a "Conversation so far" block before the
question; they are the first thing dropped when the window is short (before any passage).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from prompts.fence import Cleaner, Fence, cleaner, neutralize, request_fence
from prompts.template import ContextLayout, Example, Passage, Template

__all__ = [
    "Exchange",
    "Passage",
    "PromptBudgetError",
    "RenderedPrompt",
    "build_prompt",
    "cleaner",
    "format_rendered",
    "neutralize",
    "recent",
    "request_fence",
]

Style = Literal["completion", "chat"]
Messages = tuple[dict[str, str], ...]
Exchange = tuple[str, str]  # an earlier turn of the conversation: (question, answer)

# End of a sentence (punctuation, optional closing quote/bracket, then whitespace) or a blank line.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s)|\n[ \t]*\n")


class PromptBudgetError(ValueError):
    """Even the instruction and the question alone do not fit the context window."""


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt ready for a model, with what it contains and what did not fit.

    ``passages`` are the ones shown, in order: citation ``[n]`` is ``passages[n-1]`` (the first
    one may be a sentence-cut copy whose text ends with the template's truncation mark).
    """

    style: Style
    text: str | None
    messages: Messages | None
    passages: tuple[Passage, ...]
    dropped: tuple[Passage, ...]
    prompt_tokens: int
    stop: tuple[str, ...]
    template: str
    examples: tuple[Example, ...] = ()
    history: tuple[Exchange, ...] = ()  # the earlier turns shown, oldest first
    fence: Fence = ("", "")  # the markers around this request's own passages


def _passage(ctx: ContextLayout, n: int, p: Passage, fence: Fence, clean: Cleaner) -> str:
    page = ctx.page.format(page=p.page) if p.page is not None else ""
    heading = ctx.heading.format(heading=clean.inline(p.heading)) if p.heading else ""
    header = ctx.header.format(n=n, source=clean.inline(p.source), page=page, heading=heading)
    return f"{header}\n{fence[0]}\n{clean.block(p.text.strip())}\n{fence[1]}"


def _turn(
    t: Template,
    passages: Sequence[Passage],
    question: str,
    history: Sequence[Exchange] = (),
    fence: Fence | None = None,
) -> str:
    """The passages and the question: one example's input, or the real request.

    ``history`` (completion style only) goes between the passages and the question, one line
    each for its questions and answers, labelled as the examples label theirs. ``fence`` is the
    request's (default: the template's, as for an example).
    """
    ctx, lay = t.context, t.layout
    clean = cleaner(t)
    fence = fence or (ctx.open, ctx.close)
    block = (
        ctx.separator.join(_passage(ctx, n, p, fence, clean) for n, p in enumerate(passages, 1))
        or ctx.empty
    )
    turns = "".join(
        f"{lay.question} {clean.inline(q)}\n{lay.answer} {clean.inline(a)}\n" for q, a in history
    )
    conversation = f"{lay.conversation}\n{turns}\n" if turns else ""
    turn = f"{lay.passages}\n{block}\n\n{conversation}{lay.question} {question}"
    return f"{turn}\n{lay.reminder}" if lay.reminder else turn


def _completion(
    t: Template,
    shots: Sequence[Example],
    passages: Sequence[Passage],
    q: str,
    history: Sequence[Exchange] = (),
    fence: Fence | None = None,
) -> str:
    lay = t.layout
    sections = [t.instruction]
    sections += [f"{_turn(t, ex.passages, ex.question)}\n{lay.answer} {ex.answer}" for ex in shots]
    # a base model continues from here
    sections.append(f"{_turn(t, passages, q, history, fence)}\n{lay.answer}")
    sep = f"\n\n{lay.example_separator}\n\n" if lay.example_separator else "\n\n"
    return sep.join(sections)


def _chat(
    t: Template,
    shots: Sequence[Example],
    passages: Sequence[Passage],
    q: str,
    history: Sequence[Exchange] = (),
    fence: Fence | None = None,
) -> Messages:
    messages = [{"role": "system", "content": t.instruction}]
    for ex in shots:
        messages.append({"role": "user", "content": _turn(t, ex.passages, ex.question)})
        messages.append({"role": "assistant", "content": ex.answer})
    clean = cleaner(t)
    for question, answer in history:  # after the stable prefix, before the passages
        messages.append({"role": "user", "content": clean.block(question.strip())})
        messages.append({"role": "assistant", "content": clean.block(answer.strip())})
    messages.append({"role": "user", "content": _turn(t, passages, q, fence=fence)})
    return tuple(messages)


def recent(
    history: Sequence[Exchange], count_tokens: Callable[[str], int], budget: int
) -> tuple[Exchange, ...]:
    """The newest exchanges of ``history`` whose questions and answers fit ``budget`` tokens.

    Whole exchanges only, oldest dropped first: a chat template wants user and assistant turns
    to alternate, and an answer without its question misleads more than it helps.
    """
    kept: list[Exchange] = []
    used = 0
    for q, a in reversed(history):
        used += count_tokens(q) + count_tokens(a)
        if used > budget:
            break
        kept.append((q, a))
    return tuple(reversed(kept))


def _chat_text(messages: Messages) -> str:
    """What a chat prompt is counted as: contents plus a role line each, a stand-in for the
    model's chat template (whose few special tokens per message the window should leave room for).
    """
    return "\n\n".join(f"{m['role']}:\n{m['content']}" for m in messages)


def _sentence_cuts(p: Passage, mark: str) -> list[Passage]:
    """Copies of ``p`` cut after its 1st, 2nd, ... sentence (never the whole), marked as cut."""
    text = p.text.strip()
    ends = sorted(
        {m.start() if m.group().startswith("\n") else m.end() for m in _SENTENCE_END.finditer(text)}
    )
    return [replace(p, text=text[:e].rstrip() + mark) for e in ends if 0 < e < len(text)]


def _largest(pred: Callable[[int], bool], lo: int, hi: int) -> int:
    """The largest ``k`` in ``[lo, hi]`` with ``pred(k)`` (assumed true, then false), else ``lo-1``.

    Tries ``hi`` first (everything fits: one call), then bisects; the answer is always a value
    ``pred`` actually accepted, so the budget holds even for a tokenizer that is not monotone.
    """
    if hi < lo:
        return lo - 1
    if pred(hi):
        return hi
    good, bad = lo - 1, hi
    while bad - good > 1:
        mid = (good + bad) // 2
        if pred(mid):
            good = mid
        else:
            bad = mid
    return good


def build_prompt(
    template: Template,
    question: str,
    passages: Sequence[Passage],
    *,
    style: Style,
    count_tokens: Callable[[str], int],
    context_window: int,
    answer_tokens: int,
    examples: Sequence[Example] | None = None,
    history: Sequence[Exchange] = (),
    history_tokens: int = 0,
    fence_key: bytes | None = None,
) -> RenderedPrompt:
    """Render ``question`` with the best-first ``passages`` that fit ``context_window``.

    Passages are kept as a best-first prefix; the rest are dropped whole. When not even the top
    passage fits, few-shot examples go first (last one first); then the top passage is cut at a
    sentence boundary and visibly marked; only then is it dropped. ``examples`` default to the
    template's first ``fewshot.k`` (pass an ``ExampleBank`` selection for ``select: similar``).
    ``history``, the conversation's earlier (question, answer) exchanges, is shown as far as
    ``history_tokens`` allows (``recent``) and the window has room once the passages that fit
    without it are in: older exchanges give way to any passage. ``fence_key`` keys the
    request's fence markers (``request_fence``). Raises ``PromptBudgetError`` when the
    instruction and question alone exceed the budget.
    """
    if style not in ("completion", "chat"):
        raise ValueError(f"style must be 'completion' or 'chat', not {style!r}")
    if context_window <= 0 or answer_tokens < 0:
        raise ValueError("context_window must be positive and answer_tokens non-negative")
    shots = tuple(template.examples[: template.fewshot.k] if examples is None else examples)
    ranked = tuple(passages)
    # The question is the user's own, but control tokens in it would still become real ones.
    q = neutralize(question.strip(), ())
    budget = context_window - answer_tokens
    counts: dict[str, int] = {}
    turns = recent(history, count_tokens, history_tokens) if history_tokens > 0 else ()
    n_turns = len(turns)  # the newest ones shown; read by render() when called
    fence = request_fence(template, fence_key, q, ranked, history)

    def render(n_shots: int, shown: Sequence[Passage]) -> tuple[str, Messages | None]:
        hist = turns[len(turns) - n_turns :]
        if style == "completion":
            return _completion(template, shots[:n_shots], shown, q, hist, fence), None
        messages = _chat(template, shots[:n_shots], shown, q, hist, fence)
        return _chat_text(messages), messages

    def tokens(n_shots: int, shown: Sequence[Passage]) -> int:
        text, _ = render(n_shots, shown)
        if text not in counts:
            counts[text] = count_tokens(text)
        return counts[text]

    def fits(n_shots: int, shown: Sequence[Passage]) -> bool:
        return tokens(n_shots, shown) <= budget

    n_shots = len(shots)
    if turns:  # passages first: the turns get what room the passages that fit alone leave

        def fits_with(h: int) -> bool:
            nonlocal n_turns
            n_turns = h
            return fits(n_shots, kept)

        n_turns = 0
        kept = ranked[: max(_largest(lambda k: fits(n_shots, ranked[:k]), 0, len(ranked)), 0)]
        n_turns = max(_largest(fits_with, 0, len(turns)), 0)
    n = _largest(lambda k: fits(n_shots, ranked[:k]), 0, len(ranked))
    shown: tuple[Passage, ...] = ranked[: max(n, 0)]
    if n < min(1, len(ranked)):  # not even the top passage (or, with none, the bare prompt) fits
        need = ranked[:1]
        m = _largest(lambda j: fits(j, need), 0, n_shots - 1)
        if m >= 0:
            n_shots = m
            shown = ranked[: max(1, _largest(lambda k: fits(m, ranked[:k]), 1, len(ranked)))]
        else:
            n_shots = 0
            cuts = _sentence_cuts(ranked[0], template.context.truncated) if ranked else []
            s = _largest(lambda i: fits(0, cuts[i : i + 1]), 0, len(cuts) - 1)
            shown = (cuts[s],) if s >= 0 else ()
            if not fits(0, shown):
                raise PromptBudgetError(
                    f"the prompt needs {tokens(0, shown)} tokens without any passage or example, "
                    f"but a {context_window}-token window minus {answer_tokens} for the answer "
                    f"leaves {budget}"
                )
    text, messages = render(n_shots, shown)
    return RenderedPrompt(
        style=style,
        text=text if style == "completion" else None,
        messages=messages,
        passages=shown,
        dropped=ranked[len(shown) :],
        prompt_tokens=counts[text],
        stop=template.stop if style == "completion" else (),
        template=template.ref,
        examples=shots[:n_shots],
        history=turns[len(turns) - n_turns :],
        fence=fence,
    )


def format_rendered(r: RenderedPrompt) -> str:
    """The completion text as is; chat messages one after another under ``### role`` lines."""
    if r.text is not None:
        return r.text
    return "\n\n".join(f"### {m['role']}\n{m['content']}" for m in r.messages or ())
