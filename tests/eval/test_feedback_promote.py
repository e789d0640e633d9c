"""Feedback becomes cases and few-shot candidates; a run's configuration becomes the serving one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.dataset import load_dataset, write_dataset
from eval.feedback import accept_examples, cases_from_feedback, example_candidates, feedback_rows
from eval.promote import history, promote, rollback
from prompts.registry import TemplateRegistry, builtin_dir
from service.feedback import FeedbackStore
from service.serving import ServingStore
from service.settings import RagSettings

CITED = [
    {
        "index": 1,
        "text": "MQA shares keys and values across heads.",
        "source": "/d/guide.txt",
        "page": None,
        "chunk_id": 1,
        "doc_id": "x",
        "heading": "",
        "score": 0.7,
    }
]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    info = {"prompt": "grounded-qa@1"}
    store.record_response("r1", "What does MQA share?", "Queries.", CITED, info)
    store.record_response("r2", "What does MQA share?", "Keys and values [1].", CITED, info)
    store.record_response("r3", "Unrated?", "Whatever.", CITED, info)
    store.add_feedback("r1", "down", "wrong", "Keys and values are shared across heads.")
    store.add_feedback("r2", "up", None, None)
    store.add_feedback("r3", "down", "no correction given", None)
    store.close()
    return tmp_path


def test_thumbs_down_with_correction_becomes_a_case(home: Path, tmp_path: Path) -> None:
    [case] = cases_from_feedback(feedback_rows(home))
    assert case.question == "What does MQA share?"
    assert case.ground_truth == "Keys and values are shared across heads."
    assert case.reference_contexts == ("MQA shares keys and values across heads.",)
    assert case.tags == ("feedback",) and case.extra["original_answer"] == "Queries."
    write_dataset(tmp_path / "fb.jsonl", [case])
    assert load_dataset(tmp_path / "fb.jsonl") == [case]
    from datetime import datetime, timedelta

    assert feedback_rows(home, since=datetime.now() + timedelta(days=1)) == []


def test_thumbs_up_answers_become_a_new_template_version(home: Path, tmp_path: Path) -> None:
    [cand] = example_candidates(feedback_rows(home))
    assert cand["answer"] == "Keys and values [1]." and cand["passages"][0]["source"] == "guide.txt"
    path = tmp_path / "candidates.jsonl"
    path.write_text(json.dumps(cand) + "\n")
    user = tmp_path / "prompts"
    registry = TemplateRegistry([builtin_dir(), user])
    target = accept_examples(registry, "grounded-qa@2", path, user)
    latest = TemplateRegistry([builtin_dir(), user]).get("grounded-qa")
    assert target == user / "grounded-qa" / f"{latest.version}.yaml" and latest.version == 3
    assert latest.examples[-1].question == "What does MQA share?"
    assert len(latest.examples) == len(registry.get("grounded-qa@2").examples) + 1


def write_run(run: Path) -> None:
    run.mkdir()
    configs = [
        {
            "id": "base",
            "baseline": True,
            "template": "grounded-qa@1",
            "temperature": 0.1,
            "top_k": None,
            "top_p": 1.0,
            "max_tokens": 128,
            "retrieval_k": 5,
            "metrics": {"m": 0.4},
        },
        {
            "id": "cafe",
            "baseline": False,
            "template": "grounded-qa@2",
            "temperature": 0.5,
            "top_k": 20,
            "top_p": 1.0,
            "max_tokens": 64,
            "retrieval_k": 3,
            "metrics": {"m": 0.6},
        },
    ]
    (run / "results.json").write_text(
        json.dumps(
            {"run": {"dataset": "dev.jsonl"}, "configs": configs, "winner": "cafe", "rows": []}
        )
    )


def test_promote_the_winner_then_roll_back(tmp_path: Path) -> None:
    write_run(tmp_path / "run")
    version, params = promote(tmp_path, tmp_path / "run")
    assert version == 1
    assert params == {
        "template": "grounded-qa@2",
        "temperature": 0.5,
        "top_k": 20,
        "top_p": 1.0,
        "max_tokens": 64,
        "k": 3,
    }
    rag, v = ServingStore(tmp_path).effective(RagSettings())
    assert v == 1 and rag.template == "grounded-qa@2" and rag.k == 3
    [entry] = history(tmp_path)
    assert entry["config"] == "cafe" and entry["current"] and entry["metrics"] == {"m": 0.6}
    assert promote(tmp_path, tmp_path / "run", "base")[0] == 2
    assert rollback(tmp_path) == 1
    with pytest.raises(ValueError, match="no configuration 'nope'"):
        promote(tmp_path, tmp_path / "run", "nope")
    with pytest.raises(ValueError, match=r"results\.json not found"):
        promote(tmp_path, tmp_path)
