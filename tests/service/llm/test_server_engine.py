"""The llamacpp ``server`` engine against a real llama-server child serving the packaged Gemma.

The in-process model stays idle meanwhile (only the ``llama`` fixture's tokenizer is used).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.llm import LLMSettings, LLMUnavailable, Prompt, SamplingParams, load_llm
from service.llm.server_engine import LlamaServerLLM
from tests.conftest import TEST_MODEL, alive, wait_until
from tests.service.llm.conftest import FRANCE, THREADS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GREEDY = SamplingParams(temperature=0, max_tokens=8, stop=("\n",))


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaServerLLM]:
    settings = LLMSettings(
        model=TEST_MODEL, engine="server", n_ctx=512, parallel=2, threads=THREADS, queue_size=1
    )
    llm = load_llm(settings)
    assert isinstance(llm, LlamaServerLLM)
    yield llm
    pid = llm.server.pid
    llm.close()
    assert pid is not None and not alive(pid)


def _root(llm: LlamaServerLLM) -> str:
    return llm.server.health_url.removesuffix("/health")


def _slots_busy(llm: LlamaServerLLM) -> list[bool]:
    slots = httpx.get(f"{_root(llm)}/slots", timeout=10).json()
    return [bool(s["is_processing"]) for s in slots]


def test_a_missing_program_or_a_broken_model_is_a_clear_error(tmp_path: Path) -> None:
    missing = LLMSettings(model=TEST_MODEL, engine="server", server_binary=tmp_path / "nope")
    with pytest.raises(LLMUnavailable, match=r"no llama-server program at .*make install"):
        load_llm(missing)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf" * 100)
    broken = LLMSettings(engine="server", model_path=junk, model=TEST_MODEL, threads=1)
    with pytest.raises(LLMUnavailable, match="llama-server exited with"):
        load_llm(broken)


def test_completion_and_stream_answer_paris(engine: LlamaServerLLM) -> None:
    assert engine.ready() and engine.name == "gemma-3-270m-q4_k_m" and engine.parallel == 2
    out = engine.complete(Prompt(text=FRANCE), GREEDY)
    assert (out.text, out.finish_reason) == (" Paris", "stop")
    assert out.timings["queue"] <= out.timings["first_token"] <= out.timings["total"]
    deltas = list(engine.stream(Prompt(text=FRANCE), GREEDY))
    assert "".join(d.text for d in deltas) == " Paris" and deltas[-1].finish_reason == "stop"


def test_prompt_tokens_are_the_in_process_ones(engine: LlamaServerLLM, llama: Any) -> None:
    """Regression: llama-server parses control-token spellings in a text prompt, so a passage
    quoting "<start_of_turn>" or "<eos>" became the control token (an "<eos>" ends the prompt's
    meaning for the model). The prompt goes as ids: BOS once, then the text as text."""
    text = "Passage: the template writes <start_of_turn>user and ends with <eos>.\nAnswer:"
    expected = [llama.token_bos(), *llama.tokenize(text.encode(), add_bos=False, special=False)]
    out = engine.complete(Prompt(text=text), SamplingParams(temperature=0, max_tokens=1))
    assert out.prompt_tokens == len(expected)
    assert engine.count_tokens(text) == len(expected) - 1  # counts are without BOS, as in-process


def test_identical_requests_at_temperature_zero_answer_identically(engine: LlamaServerLLM) -> None:
    """The second request finds its prompt in the slot's cache; the answer must not change."""
    params = SamplingParams(temperature=0, max_tokens=24)
    prompt = Prompt(text="The three primary colours are")
    first, second = (engine.complete(prompt, params).text for _ in range(2))
    assert first and first == second


def test_a_seed_repeats_a_sampled_answer(engine: LlamaServerLLM) -> None:
    prompt = Prompt(text="Once upon a time")
    seeded = SamplingParams(temperature=1.0, max_tokens=16, seed=1234)
    assert engine.complete(prompt, seeded).text == engine.complete(prompt, seeded).text


def test_closing_a_stream_frees_the_slot(engine: LlamaServerLLM) -> None:
    """A client that leaves mid-answer: the HTTP stream is closed and llama-server cancels the
    slot, instead of generating the remaining tokens for nobody."""
    deltas = engine.stream(Prompt(text="Write a long story about a dragon."),
                           SamplingParams(temperature=0, max_tokens=400))  # fmt: skip
    assert next(deltas).text
    assert any(_slots_busy(engine))
    deltas.close()
    wait_until(lambda: not any(_slots_busy(engine)), 60, "the slot to be released")
    assert engine.waiting == 0


def test_a_killed_server_is_reported_down_restarted_and_answers_again(
    engine: LlamaServerLLM,
) -> None:
    pid = engine.server.pid
    assert pid is not None and engine.ready()
    restarts = engine.server.restarts
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not engine.ready(), 10, "the engine to report the server down")
    wait_until(engine.ready, 120, "the server to be restarted")
    assert engine.server.restarts == restarts + 1 and engine.server.pid != pid
    assert engine.complete(Prompt(text=FRANCE), GREEDY).text == " Paris"
