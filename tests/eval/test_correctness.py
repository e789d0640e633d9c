"""The correctness metrics that decide: key facts, "I don't know" where it is right, citation
precision, supported answers; and the defaults that rest on them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from eval import strings
from eval.candidates import load_models
from eval.cli import add_run
from eval.dataset import Case
from eval.metrics import METRICS, Observation, answer_metrics, correctness_metrics
from eval.run import DEFAULT_PRIMARY
from ingest.embed import Embedder

GT = "Flash Attention uses tiling and kernel fusion."
CASE = Case(id="flash", question="Which two techniques?", ground_truth=GT, evidence=("tiling",))
UNANSWERABLE = Case(
    id="licence",
    question="Under which licence is booktabs distributed?",
    ground_truth="I don't know based on the provided documents.",
    extra={"kind": "unanswerable"},
)
EVIDENCE, OTHER = "Flash Attention: tiling and kernel fusion.", "zlib compresses with deflate."
EXAMPLE = Path(__file__).resolve().parents[2] / "eval" / "examples" / "models.toml"


def scores(answer: str, case: Case = CASE, **kw: object) -> dict[str, float]:
    return correctness_metrics(Observation(case=case, answer=answer, contexts=(), **kw))  # type: ignore[arg-type]


def fake_embed(texts: list[str]) -> np.ndarray:
    rows = np.ones((len(texts), 4))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


# --- key facts ---------------------------------------------------------------------------------


def test_content_words_normalize_case_punctuation_plurals_and_numbers() -> None:
    assert strings.content_words("The Heads, the KERNELS!") == {"head", "kernel"}
    assert strings.content_words("27B and 128K") == strings.content_words(
        "27 billion, 128 thousand"
    )
    assert strings.content_words("50,000 tokens; version 3.7.0") == {
        "50000",
        "token",
        "version",
        "3.7.0",
    }
    assert strings.content_words("It is a p of the") == frozenset()  # stopwords, one letter
    assert strings.content_words("never 5 x") == {"never", "5"}  # negations and digits stay


def test_key_facts_need_half_of_the_ground_truths_content_words() -> None:
    # GT content words: flash, attention, tiling, kernel, fusion
    assert scores(GT) == {"key_fact_recall": 1.0, "key_facts": 1.0}
    assert scores("tiling and kernel fusion") == {"key_fact_recall": 0.6, "key_facts": 1.0}
    assert scores("It uses tiling and fusion.") == {"key_fact_recall": 0.4, "key_facts": 0.0}
    assert scores("Tiles? Kernels! Fusions.")["key_fact_recall"] == 0.4  # plurals stemmed


def test_empty_and_declining_answers_score_zero_key_facts() -> None:
    assert scores("") == {"key_fact_recall": 0.0, "key_facts": 0.0}
    # declining recalls nothing, even while repeating the ground truth's words
    declined = scores("I don't know whether Flash Attention uses tiling and kernel fusion.")
    assert declined == {"key_fact_recall": 0.0, "key_facts": 0.0}


def test_key_facts_skip_unanswerable_cases_and_empty_ground_truths() -> None:
    assert "key_facts" not in scores("BSD.", UNANSWERABLE)
    assert scores("anything", dataclasses.replace(CASE, ground_truth="It is the.")) == {}


def test_bench_decoding_uses_the_one_definition() -> None:
    source = (Path(__file__).resolve().parents[2] / "bench" / "decoding.py").read_text()
    assert "from eval.strings import key_fact" in source and "def key_fact" not in source
    assert strings.key_fact("27B", "27 billion") and not strings.key_fact("", "27 billion")


# --- "I don't know" where it is right --------------------------------------------------------


def test_dont_know_unanswerable_only_on_unanswerable_cases() -> None:
    assert scores("I don't know.", UNANSWERABLE) == {"dont_know_unanswerable": 1.0}
    assert scores("It is distributed under the GPLv3.", UNANSWERABLE) == {
        "dont_know_unanswerable": 0.0
    }
    assert scores("", UNANSWERABLE) == {"dont_know_unanswerable": 0.0}
    assert "dont_know_unanswerable" not in scores("I don't know.")  # answerable: key facts 0
    # a ground truth that declines makes a case unanswerable without its kind ...
    declining = dataclasses.replace(UNANSWERABLE, extra={})
    assert scores("I do not know.", declining) == {"dont_know_unanswerable": 1.0}
    # ... but no evidence alone does not (a case made from feedback has a real answer)
    assert scores(GT, dataclasses.replace(CASE, evidence=()))["key_facts"] == 1.0


# --- citation precision ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cited", "precision"),
    [((2,), 1.0), ((1, 2), 0.5), ((2, 9), 0.5), ((2, 2), 1.0), ((1,), 0.0), ((), None)],
)
def test_citation_precision(cited: tuple[int, ...], precision: float | None) -> None:
    o = Observation(case=CASE, answer=GT, contexts=(OTHER, EVIDENCE), cited=cited)
    assert correctness_metrics(o).get("citation_precision") == precision


def test_citation_precision_needs_evidence() -> None:
    o = Observation(UNANSWERABLE, "I don't know [1].", (OTHER, EVIDENCE), cited=(1,))
    assert "citation_precision" not in correctness_metrics(o)


# --- supported answers -------------------------------------------------------------------------


def test_supported_is_read_from_the_observation_and_left_out_when_unknown() -> None:
    assert "supported" not in scores(GT)
    assert scores(GT, supported=True)["supported"] == 1.0
    assert scores(GT, supported=False)["supported"] == 0.0


def test_every_metric_survives_an_empty_answer() -> None:
    cases = (CASE, UNANSWERABLE)
    rows = answer_metrics([Observation(c, "", (EVIDENCE,), cited=(1,)) for c in cases], fake_embed)
    assert rows[0]["key_facts"] == 0.0 and rows[0]["citation_precision"] == 1.0
    assert rows[1]["dont_know_unanswerable"] == 0.0
    assert all(np.isfinite(v) for row in rows for v in row.values())


# --- example leaks ------------------------------------------------------------------------------


def test_example_leak_is_scored_only_where_examples_were_shown() -> None:
    assert "example_leak" not in scores(GT)
    assert scores(GT, borrowed=frozenset())["example_leak"] == 0.0
    assert scores(GT, borrowed=frozenset({"kettle"}))["example_leak"] == 1.0
    assert not METRICS["example_leak"].higher_is_better


# --- what ranks correctness --------------------------------------------------------------------


def test_key_facts_rank_a_correct_answer_above_a_keyword_salad_semantic_similarity_does_not(
    embedder: Embedder,
) -> None:
    case = Case(
        id="gemma-sizes",
        question="In which sizes are Gemma models available?",
        ground_truth="2 billion, 9 billion and 27 billion parameters.",
    )
    correct = "Gemma comes in 2B, 9B and 27B."
    salad = "- Gemma:\n- sizes:\n- models:\n- parameters:\n- billion:"
    right, wrong = answer_metrics(
        [Observation(case, correct, ()), Observation(case, salad, ())], embedder.encode
    )
    assert (right["key_facts"], wrong["key_facts"]) == (1.0, 0.0)
    assert right["key_fact_recall"] > wrong["key_fact_recall"]
    # the failure the default moved away from: the salad sounds more like the ground truth
    assert wrong["semantic_similarity"] > right["semantic_similarity"] + 0.1


# --- the defaults that decide ------------------------------------------------------------------


def test_the_primary_metric_is_key_facts_in_the_code_and_on_the_command_line() -> None:
    import argparse

    assert DEFAULT_PRIMARY == "key_facts" and METRICS["key_facts"].higher_is_better
    parser = argparse.ArgumentParser()
    add_run(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))
    args = parser.parse_args(["run", "--dataset", "dev.jsonl"])
    assert args.primary == "key_facts" and args.fail_under == []


def test_the_example_models_file_weights_correctness_first() -> None:
    weights = load_models(EXAMPLE, env={"VLLM_API_KEY": "k"}).weights
    assert max(weights, key=lambda k: weights[k]) == "key_facts"
    others = sum(w for k, w in weights.items() if k != "key_facts")
    assert weights["key_facts"] > others  # no mix of the rest outweighs it
    assert weights["semantic_similarity"] <= weights["key_facts"] / 10
    assert 0 < weights["latency_p50_ms"] < weights["key_facts"]
