"""Context budget: passages packed best first, dropped whole, examples before the top passage."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prompts.registry import Example, Template
from prompts.render import Passage, PromptBudgetError, RenderedPrompt, Style, build_prompt
from tests.prompts.conftest import words

Q = "What does the report say about the budget?"
MARK = " […]"


def text_of(*sentence_lengths: int, tag: str = "w") -> str:
    """Sentences of the given word counts: ``w0 w1 w2.`` and so on."""
    return " ".join(" ".join(f"{tag}{i}" for i in range(n)) + "." for n in sentence_lengths)


def passages(*sizes: Sequence[int]) -> tuple[Passage, ...]:
    return tuple(
        Passage(text_of(*s, tag=f"p{i}w"), f"doc{i}.txt", ref=i) for i, s in enumerate(sizes)
    )


def build(t: Template, ps: Sequence[Passage], window: int, **kw: object) -> RenderedPrompt:
    args: dict = {"style": "completion", "count_tokens": words, "answer_tokens": 50}
    return build_prompt(t, Q, ps, context_window=window, **(args | kw))


def size(
    t: Template, ps: Sequence[Passage], shots: Sequence[Example], style: Style = "completion"
) -> int:
    """Tokens of the prompt with exactly these passages and examples (no budget pressure)."""
    r = build_prompt(
        t,
        Q,
        ps,
        style=style,
        count_tokens=words,
        context_window=10**9,
        answer_tokens=0,
        examples=shots,
    )
    assert r.passages == tuple(ps) and r.examples == tuple(shots)
    return r.prompt_tokens


def test_everything_fits(v1: Template) -> None:
    ps = passages([10], [10, 10], [5])
    r = build(v1, ps, 4096)
    assert (r.passages, r.dropped, r.examples) == (ps, (), v1.examples[: v1.fewshot.k])
    assert r.text is not None and r.prompt_tokens == words(r.text)


@pytest.mark.parametrize("style", ["completion", "chat"])
def test_passages_are_dropped_whole_in_relevance_order(v1: Template, style: Style) -> None:
    ps = passages([20], [20], [20], [20])
    shots = v1.examples[: v1.fewshot.k]
    window = size(v1, ps[:2], shots, style) + 50
    r = build(v1, ps, window, style=style)
    assert r.passages == ps[:2] and r.dropped == ps[2:]
    assert r.examples == shots
    assert r.prompt_tokens + 50 <= window
    r = build(v1, ps, window - 1, style=style)
    assert r.passages == ps[:1] and r.dropped == ps[1:]


def test_a_shorter_lower_ranked_passage_does_not_jump_the_queue(v1: Template) -> None:
    ps = passages([5], [40], [5])
    shots = v1.examples[: v1.fewshot.k]
    window = size(v1, (ps[0], ps[2]), shots) + 50  # room for 0 and 2, not for 0 and 1
    r = build(v1, ps, window)
    assert r.passages == ps[:1] and r.dropped == ps[1:]


def test_examples_go_last_first_before_the_top_passage(v1: Template) -> None:
    ps = passages([30], [30])
    one, two = v1.examples[:1], v1.examples[:2]
    r = build(v1, ps, size(v1, ps[:1], one) + 50)
    assert (r.passages, r.dropped, r.examples) == (ps[:1], ps[1:], one)
    r = build(v1, ps, size(v1, ps[:1], ()) + 50)
    assert (r.passages, r.examples) == (ps[:1], ())
    # With every example in, a second passage is preferred over nothing: examples stay.
    r = build(v1, ps, size(v1, ps[:1], two) + 50)
    assert (r.passages, r.examples) == (ps[:1], two)


def test_examples_dropped_when_the_bare_prompt_does_not_fit(v1: Template) -> None:
    r = build(v1, (), size(v1, (), v1.examples[:1]) + 50)
    assert r.examples == v1.examples[:1] and r.passages == ()


def test_top_passage_is_cut_at_a_sentence_and_marked(v1: Template) -> None:
    ps = passages([10, 10, 10, 10, 10], [5])
    cut = Passage(text_of(10, 10, tag="p0w") + MARK, "doc0.txt", ref=0)
    window = size(v1, (cut,), ()) + 50
    r = build(v1, ps, window)
    assert r.examples == () and r.dropped == ps[1:]
    (shown,) = r.passages
    assert shown == cut and shown.ref == 0
    assert shown.text.endswith("." + MARK)
    assert ps[0].text.startswith(shown.text.removesuffix(MARK))
    assert r.text is not None and f"p0w9.{MARK}\n</passage>" in r.text


def test_cut_at_paragraph_breaks_too(v1: Template) -> None:
    p = Passage("A heading without a stop\n\n" + text_of(60), "doc.txt")
    window = size(v1, (Passage("A heading without a stop" + MARK, "doc.txt"),), ()) + 50
    (shown,) = build(v1, (p,), window).passages
    assert shown.text == "A heading without a stop" + MARK


def test_unsplittable_top_passage_is_dropped(v1: Template) -> None:
    ps = passages([200], [3])
    r = build(v1, ps, size(v1, (), ()) + 50 + 10)
    assert r.passages == () and r.dropped == ps and r.examples == ()


def test_bare_prompt_too_long_is_an_error(v1: Template) -> None:
    with pytest.raises(PromptBudgetError, match="window"):
        build(v1, passages([5]), size(v1, (), ()) + 50 - 1)


def test_counts_the_whole_prompt_a_few_times(v1: Template) -> None:
    calls: list[str] = []

    def counting(text: str) -> int:
        calls.append(text)
        return words(text)

    ps = passages(*([[15]] * 30))
    window = size(v1, ps[:13], v1.examples[: v1.fewshot.k]) + 50
    r = build(v1, ps, window, count_tokens=counting)
    assert len(r.passages) == 13
    assert len(calls) <= 7  # all 30, then bisection over 0..30
    assert calls[-1] == r.text or r.text in calls


sentences = st.lists(st.integers(1, 40), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(sentences, max_size=6),
    window=st.integers(50, 900),
    answer=st.integers(0, 120),
    style=st.sampled_from(["completion", "chat"]),
)
def test_budget_properties(
    v1: Template, sizes: list[list[int]], window: int, answer: int, style: Style
) -> None:
    ps = passages(*sizes)
    shots = v1.examples[: v1.fewshot.k]
    budget = window - answer
    try:
        r = build(v1, ps, window, answer_tokens=answer, style=style)
    except PromptBudgetError:
        assert size(v1, (), (), style) > budget
        return
    # Never over the window, and the count is of the whole prompt as rendered.
    assert r.prompt_tokens + answer <= window
    counted = r.text if r.text is not None else None
    if counted is not None:
        assert r.prompt_tokens == words(counted)
    # Shown passages are a best-first prefix (the first possibly cut); the rest are dropped.
    n = len(r.passages)
    assert r.dropped == ps[n:]
    truncated = n == 1 and r.passages[0] != ps[0]
    if truncated:
        assert r.examples == () and r.passages[0].text.endswith("." + MARK)
        assert ps[0].text.startswith(r.passages[0].text.removesuffix(MARK))
    else:
        assert r.passages == ps[:n]
    # Examples are a prefix of the template's; fewer only when the top passage needed the room.
    assert r.examples == shots[: len(r.examples)]
    if r.examples != shots:
        assert size(v1, ps[:1], shots, style) > budget
    # Maximal: with the examples kept, one more passage would not have fit.
    if r.dropped and not truncated:
        assert size(v1, ps[: n + 1], r.examples, style) > budget
