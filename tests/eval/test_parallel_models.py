"""Parallel evaluation with the real Gemma at temperature 0: two questions at once, same rows.

Each engine answers the same questions cold (an empty eval cache) one at a time and then two at
a time; the rows must be identical but for the wall-clock latency. The in-process model takes the
second request after the first (its gate has one slot); llama-server decodes its two slots
together. One engine runs at a time (two llama.cpp processes on the same cores slow each other
down fifty-fold).

The server engine's rows differ (an xfail, strict: it fails the day they agree, e.g. with a
batch-invariant build of llama.cpp): its kernels give a sequence decoded beside another slightly
different logits, and a near tie at temperature 0 then picks another token.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eval.dataset import Case, load_dataset
from eval.run import run_sweep
from eval.sweep import baseline_config, parse_sweep
from ingest.embed import Embedder
from service.llm import LLMSettings, load_llm
from service.llm.base import LLM
from service.settings import RagSettings
from tests.conftest import TEST_MODEL
from tests.eval.test_parallel import InFlight, differences, rows_of

pytestmark = pytest.mark.slow

THREADS = int(os.environ.get("RAGTUNE_TEST_THREADS", "2"))
N_CASES = 8  # the server engine parts on 1 to 2 answers in 6: more make its xfail sure
RAG = RagSettings.model_validate({"sampling": {"temperature": 0.0, "max_tokens": 24}})


@pytest.fixture(scope="module")
def cases(shared_data: Path) -> list[Case]:
    return load_dataset(shared_data / "qa" / "dev.jsonl")[:N_CASES]


def common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def answers_apart(llm: LLM, a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[str]:
    """For each answer that differs: the case and the first token where the two part."""
    out = []
    for x, y in zip(a, b, strict=True):
        if x["answer"] != y["answer"]:
            same = common_prefix(x["answer"], y["answer"])
            at = llm.count_tokens(same) if same else 0
            out.append(f"{x['case']}: token {at}: {x['answer']!r} vs {y['answer']!r}")
    return out


def one_then_two(
    cold: Any, cases: list[Case], llm: LLM, embedder: Embedder
) -> tuple[list[str], list[str], int]:
    """Differences between a cold run one question at a time and one two at a time (rows, then
    answers); the most requests the model had at once in the second."""
    runs = []
    for n in (1, 2):
        settings = cold(concurrency=n).model_copy(update={"rag": RAG})
        seen = InFlight(llm)
        out = settings.home / f"c{n}"
        run_sweep(settings, cases, [baseline_config(RAG)], out, llm=seen, embedder=embedder)
        runs.append((rows_of(out), seen.most))
    (one, _), (two, most) = runs
    assert all(r["sampling"]["temperature"] == 0 for r in one)
    assert sum(r["called"] for r in one) >= 3, "most questions must reach the model"
    return differences(one, two), answers_apart(llm, one, two), most


@pytest.fixture(scope="module")
def in_process() -> Iterator[LLM]:
    llm = load_llm(LLMSettings(model=TEST_MODEL, threads=THREADS, n_ctx=2048))
    yield llm
    llm.close()


def test_in_process_rows_at_two_at_once_are_the_sequential_rows(
    cold: Any, cases: list[Case], in_process: LLM, embedder: Embedder
) -> None:
    diff, apart, most = one_then_two(cold, cases, in_process, embedder)
    assert most == 2  # the second request waited at the model's gate
    assert (diff, apart) == ([], [])


@pytest.fixture(scope="module")
def server_engine() -> Iterator[LLM]:
    """llama-server with two slots (``llm.engine = "server"``, ``llm.parallel`` 2)."""
    settings = LLMSettings(
        model=TEST_MODEL, engine="server", parallel=2, threads=THREADS, n_ctx=2048
    )
    llm = load_llm(settings)
    yield llm
    llm.close()


@pytest.mark.integration
@pytest.mark.xfail(
    strict=True,
    reason="llama-server decoding two slots together is not batch-invariant: at temperature 0 "
    "1 to 5 answers in 6 to 8 part from the one-at-a-time answers, a different set each run "
    "(seen: dev-03 and dev-06 at token 0, dev-06 at 4, dev-01 at 7, dev-04 at 9, dev-07 at 12, "
    "dev-05 at 22), while one-at-a-time runs agree; one changed answer also moves the semantic "
    "similarity of its whole scoring batch (answers are embedded together)",
)
def test_server_engine_rows_at_two_at_once_are_the_sequential_rows(
    cold: Any, cases: list[Case], server_engine: LLM, embedder: Embedder
) -> None:
    diff, apart, most = one_then_two(cold, cases, server_engine, embedder)
    assert most == 2  # both slots busy at once
    print("\n".join(["server engine, 1 vs 2 at once:", *diff, *apart]))
    assert (diff, apart) == ([], [])


def test_in_process_rows_are_the_same_in_question_order(
    cold: Any, cases: list[Case], in_process: LLM, embedder: Embedder
) -> None:
    """A sweep asks each question under every configuration in a row (issue 14), so the model
    reuses the prompt they share from its KV cache; whole blocks only, so at temperature 0 the
    rows are those of the configuration-by-configuration order, answer for answer."""
    out: dict[str, list[dict[str, Any]]] = {}
    for order in ("config", "question"):
        settings = cold(concurrency=1).model_copy(update={"rag": RAG})
        configs = parse_sweep(
            {"axes": {"rag.retrieval.k": [3, 4], "rag.sampling.max_tokens": [16]}}, RAG
        ).configs
        run_sweep(
            settings, cases[:4], configs, settings.home / order, llm=in_process,
            embedder=embedder, order=order,
        )  # fmt: skip
        out[order] = sorted(rows_of(settings.home / order), key=lambda r: (r["config"], r["case"]))
    assert sum(r["called"] for r in out["config"]) >= 4, "most questions must reach the model"
    assert differences(out["config"], out["question"]) == []
