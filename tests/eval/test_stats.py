"""Paired bootstrap comparison and the choice of a winner, on synthetic paired data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from eval.results import summary_markdown
from eval.stats import compare, paired_bootstrap, pick_winner

N = 30


def scores(seed: int = 1) -> np.ndarray:
    """Per-question baseline scores with question difficulty spread widely (the paired case)."""
    return np.random.default_rng(seed).uniform(0.2, 0.9, N)


def test_a_clear_improvement_is_better() -> None:
    base = scores()
    cand = base + 0.08 + np.random.default_rng(2).normal(0, 0.03, N)
    c = paired_bootstrap(cand, base)
    assert c.better and not c.worse
    assert 0 < c.ci_low < c.diff < c.ci_high
    assert c.diff == pytest.approx(float(np.mean(cand - base)))
    assert (c.mean, c.baseline_mean, c.n) == (
        pytest.approx(cand.mean()),
        pytest.approx(base.mean()),
        N,
    )


def test_noise_is_not_better() -> None:
    base = scores()
    cand = base + np.random.default_rng(3).normal(0, 0.1, N)
    c = paired_bootstrap(cand, base)
    assert c.ci_low < 0 < c.ci_high
    assert not c.better and not c.worse


def test_pairing_finds_a_small_shift_that_unpaired_spread_would_hide() -> None:
    base = scores()
    cand = base + 0.02  # far below the spread between questions, but on every question
    assert paired_bootstrap(cand, base).better


def test_identical_answers_give_zero_and_a_zero_interval() -> None:
    base = scores()
    c = paired_bootstrap(base, base)
    assert (c.diff, c.ci_low, c.ci_high) == (0.0, 0.0, 0.0)
    assert not c.better and not c.worse


def test_lower_is_better_metrics_flip_the_direction() -> None:
    base = scores()
    c = paired_bootstrap(base - 0.1, base, higher_is_better=False)
    assert c.better and c.ci_high < 0
    assert paired_bootstrap(base + 0.1, base, higher_is_better=False).worse


def test_intervals_are_reproducible_and_one_question_proves_nothing() -> None:
    base = scores()
    cand = base + np.random.default_rng(4).normal(0.01, 0.05, N)
    assert paired_bootstrap(cand, base) == paired_bootstrap(cand, base)
    one = paired_bootstrap([0.9], [0.1])
    assert one.diff == pytest.approx(0.8) and not one.better
    empty = paired_bootstrap([], [])
    assert empty.n == 0 and not empty.better and empty.as_dict()["diff"] is None


def rows(values: dict[str, float | None]) -> list[dict[str, Any]]:
    return [{"case": case, "metrics": {} if v is None else {"m": v}} for case, v in values.items()]


def test_compare_pairs_only_questions_both_answered() -> None:
    base = rows({"q1": 0.5, "q2": 0.5, "q3": None})
    cand = rows({"q1": 0.7, "q2": None, "q3": 0.9, "q4": 1.0})
    c = compare(cand, base, "m")
    assert c.n == 1 and c.diff == pytest.approx(0.2)


def config(
    cid: str, mean: float, better: bool, *, baseline: bool = False, questions: int = N
) -> dict[str, Any]:
    return {
        "id": cid,
        "baseline": baseline,
        "label": cid,
        "questions": questions,
        "metrics": {"m": mean},
        "vs_baseline": {
            "m": {
                "n": questions,
                "mean": mean,
                "baseline_mean": 0.5,
                "diff": mean - 0.5,
                "ci_low": 0.01 if better else -0.1,
                "ci_high": 0.2,
                "better": better,
            }
        },
        "latency_p50": 1.0,
        "tokens_mean": 20.0,
    }


def test_winner_needs_significance_then_the_best_mean() -> None:
    base = config("base", 0.5, False, baseline=True)
    lucky = config("lucky", 0.9, False)  # the highest mean, but within noise
    good, best = config("good", 0.6, True), config("best", 0.7, True)
    assert pick_winner([base, lucky, good, best], "m", n_questions=N) == "best"
    assert pick_winner([base, lucky], "m", n_questions=N) == "base"
    partial = config("partial", 0.8, True, questions=4)  # left early by successive halving
    assert pick_winner([base, good, partial], "m", n_questions=N) == "good"
    assert pick_winner([base, good], "other", n_questions=N) == "base"
    # for a lower-is-better primary the lowest significant mean wins
    assert pick_winner([base, good, best], "m", higher_is_better=False) == "good"


def test_summary_names_the_winner_with_its_interval() -> None:
    base = config("base", 0.5, False, baseline=True)
    best = config("best", 0.7, True)
    results = {
        "run": {
            "dataset": "dev.jsonl",
            "cases": N,
            "model": "gemma",
            "index_version": 3,
            "primary_metric": "m",
            "baseline": "base",
            "cache": {"generation_hits": 5, "generation_misses": 1},
            "resumed": 0,
            "seconds": 12.0,
        },
        "configs": [base, best],
        "winner": "best",
    }
    text = summary_markdown(results)
    assert "**Winner: `best`**" in text
    assert "+0.200 (95% CI +0.010 to +0.200, 30 paired questions)" in text
    assert "| `best` **(winner)** |" in text
