"""Few-shot selection by similarity: right examples, deterministic ties, embedded once."""

from __future__ import annotations

import numpy as np

from prompts.fewshot import ExampleBank, hashed_bag_of_words
from prompts.registry import Example, Template
from prompts.render import build_prompt
from tests.prompts.conftest import PASSAGES, words

VOCAB = ("kettle", "password", "bread", "payment", "warranty")


class FakeEmbed:
    """Counts of a few keywords (not normalized: the bank must normalize), and its calls."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array(
            [[float(t.lower().count(w)) for w in VOCAB] for t in texts], dtype=np.float32
        )


def ex(question: str) -> Example:
    return Example(question, (), "I don't know.")


BANK = [
    ex("Is the kettle under warranty?"),
    ex("How do I change my password?"),
    ex("How long does the bread bake?"),
    ex("Which payment cards work?"),
    ex("How do I reset a forgotten password?"),
]


def test_most_similar_first() -> None:
    bank = ExampleBank(BANK, FakeEmbed())
    assert bank.select("what warranty does the kettle have", 1) == [BANK[0]]
    assert bank.select("password help", 2) == [BANK[1], BANK[4]]  # a tie: bank order


def test_ties_and_zero_vectors_keep_bank_order() -> None:
    bank = ExampleBank(BANK, FakeEmbed())
    assert bank.select("nothing in the vocabulary", 3) == BANK[:3]
    assert bank.select("x", 3) == bank.select("x", 3)


def test_k_bounds() -> None:
    bank = ExampleBank(BANK, FakeEmbed())
    assert bank.select("bread", 0) == []
    assert bank.select("bread", 99)[0] == BANK[2] and len(bank.select("bread", 99)) == len(BANK)
    assert ExampleBank([], FakeEmbed()).select("bread", 3) == []


def test_examples_are_embedded_once() -> None:
    embed = FakeEmbed()
    bank = ExampleBank(BANK, embed)
    bank.select("bread", 2)
    bank.select("kettle", 2)
    assert embed.calls == [[e.question for e in BANK], ["bread"], ["kettle"]]


def test_hashed_bag_of_words_is_normalized_and_deterministic() -> None:
    m = hashed_bag_of_words(["Reset the password.", "", "reset THE (password)"])
    assert m.shape == (3, 256)
    assert np.allclose(np.linalg.norm(m[[0, 2]], axis=1), 1.0) and not m[1].any()
    assert np.allclose(m[0], m[2])  # case and punctuation do not matter


def test_selection_feeds_the_prompt(v2: Template) -> None:
    bank = ExampleBank(v2.examples, hashed_bag_of_words)
    chosen = bank.select("I forgot my password, how can I reset it?", v2.fewshot.k)
    assert chosen[0].question == "How do I reset my password?"
    r = build_prompt(
        v2,
        "I forgot my password, how can I reset it?",
        PASSAGES,
        style="chat",
        count_tokens=words,
        context_window=4096,
        answer_tokens=64,
        examples=chosen,
    )
    assert r.examples == tuple(chosen)
    assert r.messages is not None and r.messages[1]["content"].endswith(chosen[0].question)
