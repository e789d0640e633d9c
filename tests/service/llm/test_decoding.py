"""Decoding that does not depend on what was asked before (issue 11, "Correct decoding").

llama-cpp-python reuses every cached prompt token and evaluates only the rest, so one prompt was
evaluated in different batches depending on the previous request; batched and single-token
evaluation round differently, and at temperature 0 an identical request could get another (or an
empty) answer. The backend now keeps only whole, fully evaluated ``n_batch`` blocks.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from service.llm import LLMSettings, Prompt, SamplingParams, load_llm
from service.llm.llamacpp import LlamaCppLLM
from tests.conftest import TEST_MODEL
from tests.service.llm.conftest import THREADS

GREEDY = SamplingParams(temperature=0, max_tokens=32)


def _fake_llama(n_batch: int, cached: list[int]) -> Any:
    ids = cached + [0] * 64
    return SimpleNamespace(
        n_batch=n_batch, n_tokens=len(cached), input_ids=ids, _requires_eval=False
    )


def _backend(llama: Any, aligned: int) -> LlamaCppLLM:
    llm = LlamaCppLLM.__new__(LlamaCppLLM)
    llm._llama = llama
    llm._aligned = aligned
    return llm


@pytest.mark.parametrize(
    ("cached", "aligned", "prompt", "kept"),
    [
        # the identical prompt again: not all-but-one token, only its whole blocks
        (list(range(20)), 16, list(range(18)), 16),
        # a prompt shorter than a block: nothing is kept, it is evaluated as fresh
        (list(range(10)), 8, list(range(9)), 8),
        (list(range(7)), 0, list(range(7)), 0),
        # a shared prefix that ends inside a block: back to the block boundary
        (list(range(40)), 32, [*range(21), 99, 100], 16),
        # tokens generated after the prompt were evaluated one by one: never kept
        (list(range(40)), 16, list(range(39)), 16),
    ],
)
def test_the_cache_keeps_whole_blocks_a_fresh_evaluation_would_compute(
    cached: list[int], aligned: int, prompt: list[int], kept: int
) -> None:
    llama = _fake_llama(8, cached)
    llm = _backend(llama, aligned)
    assert llm._keep_cache(prompt) == kept  # what usage reports as cached
    assert llama.n_tokens == kept
    assert llm._aligned == len(prompt) // 8 * 8


@pytest.fixture(scope="module")
def big_llm() -> Iterator[LlamaCppLLM]:
    """The packaged Gemma with room for prompts longer than one 512-token batch."""
    llm = load_llm(LLMSettings(model=TEST_MODEL, n_ctx=2048, threads=THREADS))
    assert isinstance(llm, LlamaCppLLM)
    yield llm
    llm.close()


@pytest.mark.slow
def test_an_identical_request_gets_the_identical_answer_whatever_came_before(
    big_llm: LlamaCppLLM,
) -> None:
    rng = random.Random(7)
    words = [
        "index",
        "chunk",
        "model",
        "answer",
        "passage",
        "cache",
        "version",
        "writer",
        "reader",
        "query",
        "token",
        "batch",
        "server",
        "client",
        "request",
        "stream",
        "citation",
        "template",
        "prompt",
        "encoder",
    ]

    def para(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."

    # A shared prefix of more than one batch, as a template's instruction and examples are.
    prefix = "Answer from the passages.\n\n" + "\n".join(para(12) for _ in range(40)) + "\n\n"
    tails = ["\n".join(para(10) for _ in range(12)) for _ in range(10)]

    def ask(i: int) -> str:
        text = f"{prefix}{tails[i]}\n\nQuestion: what is item {i}?\nAnswer:"
        return big_llm.complete(Prompt(text=text), GREEDY).text

    for i in range(len(tails)):
        first, again = ask(i), ask(i)  # in a row
        ask((i + 1) % len(tails))  # another question with the same prefix in between
        assert first == again == ask(i), f"question {i}"


@pytest.mark.slow
def test_usage_counts_the_prefix_taken_from_the_cache(big_llm: LlamaCppLLM) -> None:
    """Issue 14: the stable prefix (instruction, examples) is reused across requests, and the
    answer says how much: whole blocks of the shared prefix, none of what differs."""
    prefix = "Answer from the passages.\n\n" + "The writer commits a new version. " * 60
    first = big_llm.complete(
        Prompt(text=f"{prefix}\nQuestion: what is a version?\nAnswer:"), GREEDY
    )
    second = big_llm.complete(Prompt(text=f"{prefix}\nQuestion: who commits?\nAnswer:"), GREEDY)
    shared = big_llm.count_tokens(prefix)
    block = big_llm._llama.n_batch
    assert first.cached_tokens is not None and second.cached_tokens is not None
    assert second.cached_tokens % block == 0
    assert shared - block < second.cached_tokens <= shared + 1  # +1: the BOS token
