"""Stop sequences end an answer only after its first word, and never leak into it."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from service.llm.stops import AnswerText, LoopGuard, StopScanner


def run(pieces: list[str], stops: tuple[str, ...]) -> tuple[list[str], bool]:
    scan = StopScanner(stops)
    out = [scan.feed(p) for p in pieces]
    return [*out, scan.flush()], scan.stopped


def expected(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """The reference: cut at the first stop that starts after the first non-blank character."""
    begin = len(text) - len(text.lstrip())
    if begin == len(text):
        return text, False
    cuts = [i for s in stops if s and (i := text.find(s, begin + 1)) >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def test_a_leading_stop_does_not_end_the_answer() -> None:
    out, stopped = run(["\n", "\nThe app", " runs:\n", "\nmake run"], ("\n\n",))
    assert "".join(out) == "\n\nThe app runs:" and stopped


def test_text_that_may_become_a_stop_is_held_back_until_it_cannot() -> None:
    scan = StopScanner(("</passage>",))
    assert scan.feed("Paris </pas") == "Paris "
    assert scan.feed("t") == "</past"  # not a fence after all
    assert scan.feed(" </passage> more") == " " and scan.stopped
    assert scan.flush() == ""


def test_no_stops_passes_everything_through_at_once() -> None:
    scan = StopScanner(())
    assert scan.feed("a\n\n") == "a\n\n" and scan.flush() == ""


@given(
    text=st.text(alphabet="ab \n<>/", max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=8),
    stops=st.lists(st.sampled_from(["\n\n", "\n", "</a>", "ab", "<"]), max_size=3).map(tuple),
)
def test_any_chunking_gives_the_reference_cut(
    text: str, cuts: list[int], stops: tuple[str, ...]
) -> None:
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    out, stopped = run(pieces, stops)
    assert ("".join(out), stopped) == expected(text, stops)


def guarded(pieces: list[str]) -> tuple[str, bool]:
    guard = LoopGuard()
    out = "".join(guard.feed(p) for p in pieces)
    return out, guard.looped


def test_a_phrase_repeated_a_third_time_ends_the_answer_before_it() -> None:
    text = "The API for the API for the API for the API for the"
    assert guarded([text + " "]) == ("The API for the API for ", True)
    # streamed in small pieces, what was sent before the third repeat was complete stays sent
    out, looped = guarded([text[i : i + 5] for i in range(0, len(text), 5)])
    assert looped and text.startswith(out) and out.count("API") == 3


def test_a_sentence_loop_is_cut() -> None:
    s = "It is licensed under the Apache License. "
    out, looped = guarded([s] * 6)
    assert looped and out == s * 2


def test_answers_that_do_not_loop_pass_unchanged() -> None:
    for text in (
        "Use -p (--persist): it keeps the plot window open after gnuplot exits.",
        "- ALiBi: linear biases\n- RoPE: rotary\n- LLaMA: RoPE\n- GPT-NeoX: RoPE",
        "New York, New York is a song. It is very, very old.",
        "1. make install\n2. make test\n3. make run\n",
    ):
        out, looped = guarded([text[i : i + 3] for i in range(0, len(text), 3)])
        assert (out, looped) == (text, False)


@given(st.lists(st.sampled_from(["alpha", "beta", "gamma", "delta", "x.", "y,"]), max_size=30))
def test_the_guard_only_ever_cuts_a_tail(words: list[str]) -> None:
    text = " ".join(words) + " "
    out, looped = guarded([text])
    assert text.startswith(out)
    if not looped:
        assert out == text


def test_answer_text_applies_stops_then_loops() -> None:
    answer = AnswerText(("\n\n",))
    pieces = ["\n\n", "yes yes yes yes yes ", "more"]
    out = "".join(answer.feed(p) for p in pieces) + answer.flush()
    assert out == "\n\nyes yes yes " and answer.ended
