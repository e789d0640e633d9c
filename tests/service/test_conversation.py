"""Condensing a follow-up with its conversation: the cheap form, its budget, the rewrite's checks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from service import conversation
from service.conversation import Turn, condense
from service.llm.base import Completion, Delta, LLMUnavailable, Prompt, SamplingParams
from service.settings import ConversationSettings
from tests.service.conftest import ScriptedLLM

Q1 = "How large is the header of the zlib format?"
A1 = "Only two bytes [1]."
FOLLOW_UP = "And the trailer?"
HISTORY = [Turn("user", Q1), Turn("assistant", A1)]


class RewritingLLM(ScriptedLLM):
    """Answers every prompt with ``answer`` and a chosen finish reason, optionally slowly."""

    def __init__(
        self, answer: str, finish: str = "stop", delay: float = 0.0, style: str = "completion"
    ):
        super().__init__(answer, delay)
        self.finish = finish
        self.style = style  # type: ignore[assignment]
        self.params: list[SamplingParams] = []

    def complete(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Completion:
        self.prompts.append(prompt)
        self.params.append(params)
        deadline = time.monotonic() + self.delay
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                return Completion("", "cancelled")
            time.sleep(0.01)
        return Completion(self.answer, self.finish)

    def stream(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Iterator[Delta]:
        raise AssertionError("condense does not stream")


def settings(**kw: object) -> ConversationSettings:
    return ConversationSettings.model_validate(kw)


def test_a_single_question_is_searched_as_is_without_a_model_call() -> None:
    llm = RewritingLLM("anything")
    for mode in ("none", "concat", "llm"):
        c = condense("What is zlib?", [], llm, settings(condense=mode))
        assert (c.query, c.method, c.fallback) == ("What is zlib?", "none", None)
    # an assistant greeting before the first question is no earlier question either
    c = condense("What is zlib?", [Turn("assistant", "Hi!")], llm, settings(condense="llm"))
    assert c.query == "What is zlib?" and llm.prompts == []


def test_none_searches_the_follow_up_alone_and_concat_puts_the_earlier_question_first() -> None:
    llm = RewritingLLM("unused")
    assert condense(FOLLOW_UP, HISTORY, llm, settings(condense="none")).query == FOLLOW_UP
    c = condense(FOLLOW_UP, HISTORY, llm, settings(condense="concat"))
    assert (c.query, c.method) == (f"{Q1}\n{FOLLOW_UP}", "concat") and llm.prompts == []


def test_concat_keeps_the_newest_earlier_questions_that_fit_its_budget() -> None:
    count = ScriptedLLM().count_tokens  # one token a word
    earlier = ["one two three four", "five six", "seven eight nine"]
    assert conversation.concat(earlier, "and?", count, 1 + 3 + 2) == (
        "five six\nseven eight nine\nand?"
    )
    assert conversation.concat(earlier, "and?", count, 1 + 3) == "seven eight nine\nand?"
    assert conversation.concat(earlier, "and?", count, 3) == "and?"  # the follow-up always stays
    assert conversation.concat(earlier, "and?", count, 10**6).count("\n") == 3


def test_an_llm_rewrite_is_used_when_it_reads_as_one() -> None:
    llm = RewritingLLM(" How large is the trailer of the zlib format?")
    c = condense(FOLLOW_UP, HISTORY, llm, settings(condense="llm", condense_tokens=40))
    assert (c.query, c.method, c.fallback) == (
        "How large is the trailer of the zlib format?",
        "llm",
        None,
    )
    [prompt], [params] = llm.prompts, llm.params
    assert prompt.text is not None and prompt.text.endswith(
        f"User: {Q1}\nAssistant: Only two bytes.\nFollow-up: {FOLLOW_UP}\nStandalone question:"
    )  # the old answer's [1] is gone
    assert params.max_tokens == 40 and params.stop == ("\n",) and params.temperature == 0.0


def test_an_instruct_model_gets_the_rewrite_as_chat_messages() -> None:
    llm = RewritingLLM("How large is the zlib trailer?", style="chat")
    c = condense(FOLLOW_UP, HISTORY, llm, settings(condense="llm"))
    assert c.method == "llm"
    [prompt] = llm.prompts
    assert prompt.text is None and prompt.messages is not None
    assert prompt.messages[0]["role"] == "system" and prompt.messages[-1]["role"] == "user"
    assert prompt.messages[-1]["content"].endswith(f"Follow-up: {FOLLOW_UP}")


@pytest.mark.parametrize(
    ("output", "finish", "why"),
    [
        ("", "stop", "empty"),
        ("   ", "stop", "empty"),
        ("What is the size of the zlib trailer in bytes and", "length", "too long"),
        (" ".join(["trailer zlib"] * 30), "stop", "too long"),
        ("Question: how large is the zlib trailer?", "stop", "labels"),
        ("And the trailer? Answer: four bytes", "stop", "labels"),
        ("And the trailer?", "stop", "off topic"),  # echoes the follow-up
        (Q1, "stop", "off topic"),  # repeats the earlier question, drops the follow-up
        ("Does the warranty on the kettle cover the trailer?", "stop", "off topic"),  # an example
    ],
)
def test_a_garbled_rewrite_falls_back_to_concat_and_says_why(
    output: str, finish: str, why: str
) -> None:
    llm = RewritingLLM(output, finish)
    c = condense(FOLLOW_UP, HISTORY, llm, settings(condense="llm", condense_tokens=24))
    assert (c.query, c.method, c.fallback) == (f"{Q1}\n{FOLLOW_UP}", "concat", why)
    assert c.info(1).model_dump(exclude_none=True) == {
        "condense": "concat",
        "query": f"{Q1}\n{FOLLOW_UP}",
        "fallback": why,
        "history_turns": 1,
    }


def test_a_rewrite_that_drops_what_the_follow_up_adds_is_rejected() -> None:
    follow_up = "And the trailer of the format?"  # "format" is the conversation's already
    for output, why in ((Q1, "off topic"), ("How large is the trailer of the zlib format?", None)):
        c = condense(follow_up, HISTORY, RewritingLLM(output), settings(condense="llm"))
        assert c.fallback == why


def test_a_slow_rewrite_is_cancelled_at_the_timeout() -> None:
    llm = RewritingLLM("How large is the zlib trailer?", delay=5.0)
    t = time.perf_counter()
    c = condense(FOLLOW_UP, HISTORY, llm, settings(condense="llm", condense_timeout_s=0.2))
    assert time.perf_counter() - t < 2.0
    assert (c.method, c.fallback) == ("concat", "timeout")


def test_an_unavailable_model_falls_back_instead_of_failing() -> None:
    class Down(RewritingLLM):
        def complete(self, *args: object, **kw: object) -> Completion:
            raise LLMUnavailable("model server down")

    c = condense(FOLLOW_UP, HISTORY, Down("x"), settings(condense="llm"))
    assert (c.query, c.fallback) == (f"{Q1}\n{FOLLOW_UP}", "error")


def test_history_is_what_precedes_the_last_user_message() -> None:
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": Q1},
        {"role": "assistant", "content": A1},
        {"role": "user", "content": "  "},
        {"role": "user", "content": FOLLOW_UP},
        {"role": "assistant", "content": "(a prefilled reply)"},
    ]
    assert conversation.history_of(msgs) == HISTORY  # no system turn, no empty one
    assert conversation.history_of(msgs[:2]) == []
    pairs = conversation.exchanges(
        [
            Turn("user", "unanswered?"),
            Turn("user", Q1),
            Turn("assistant", A1),
            Turn("assistant", "x [2]"),
        ]
    )
    assert pairs == ((Q1, "Only two bytes. x"),)
