"""Feedback becomes cases and few-shot candidates; a run's configuration becomes the serving one."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from eval.dataset import load_dataset, write_dataset
from eval.feedback import accept_examples, cases_from_feedback, example_candidates, feedback_rows
from eval.promote import history, promote, rollback
from prompts.registry import TemplateRegistry, builtin_dir
from service.answer import Answer
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
# The ragtune info of an answer as the first service version sent and stored it.
INFO = {
    "prompt": "grounded-qa@1",
    "retrieval_k": 5,
    "index_version": 1,
    "backend": "llamacpp",
    "params": {"temperature": 0.2, "top_p": 1.0, "top_k": None, "max_tokens": 256, "seed": None},
    "timings": {"retrieval": 0.01, "prompt": 0.001, "generation": 1.5},
}


def answer(question: str, text: str) -> Answer:
    return Answer.from_legacy(question, text, CITED, INFO)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    store.record_response("r1", answer("What does MQA share?", "Queries."))
    store.record_response("r2", answer("What does MQA share?", "Keys and values [1]."))
    store.record_response("r3", answer("Unrated?", "Whatever."))
    store.add_feedback("r1", "down", "wrong", "Keys and values are shared across heads.")
    store.add_feedback("r2", "up", None, None)
    store.add_feedback("r3", "down", "no correction given", None)
    store.close()
    return tmp_path


def test_a_store_from_before_the_record_reads_as_records(tmp_path: Path) -> None:
    """feedback.sqlite as the first service wrote it: citations and info as JSON columns."""
    path = tmp_path / "feedback.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE responses (
                id TEXT PRIMARY KEY, created REAL, question TEXT, answer TEXT, citations TEXT,
                info TEXT);
            CREATE TABLE feedback (
                id INTEGER PRIMARY KEY AUTOINCREMENT, response_id TEXT REFERENCES responses(id),
                rating TEXT CHECK (rating IN ('up', 'down')), comment TEXT,
                corrected_answer TEXT, created REAL);
            """
        )
        db.execute(
            "INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?)",
            ("old", 1.0, "What does MQA share?", "Queries.", json.dumps(CITED), json.dumps(INFO)),
        )
        db.execute(
            "INSERT INTO feedback(response_id, rating, comment, corrected_answer, created) "
            "VALUES ('old', 'down', NULL, 'Keys and values.', 2.0)"
        )
    db.close()
    store = FeedbackStore(path)
    store.record_response("new", answer("Unrated?", "Whatever."))  # the old table takes new rows
    assert store.add_feedback("new", "up", None, None) == 2
    old, new = store.feedback()
    store.close()
    assert old.response_id == "old" and old.corrected_answer == "Keys and values."
    assert old.answer.question == "What does MQA share?" and old.answer.text == "Queries."
    assert [c.model_dump() for c in old.answer.citations] == CITED
    prov = old.answer.provenance
    assert prov.prompt == "grounded-qa@1" and prov.params.max_tokens == 256
    assert prov.retrieval.model_dump() == {"mode": "dense"} and prov.serving_version == 0
    assert new.answer == answer("Unrated?", "Whatever.")
    reopened = FeedbackStore(path)  # converted once: the new row's record stays as written
    [case] = cases_from_feedback(reopened.feedback())
    reopened.close()
    assert case.extra["prompt"] == "grounded-qa@1" and case.ground_truth == "Keys and values."


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
    # a results.json written with the short names of older runs: promoted by path
    assert params == {
        "template": "grounded-qa@2",
        "retrieval": {"k": 3},
        "sampling": {"temperature": 0.5, "top_k": 20, "top_p": 1.0, "max_tokens": 64},
    }
    rag, v = ServingStore(tmp_path).effective(RagSettings())
    assert v == 1 and rag.template == "grounded-qa@2" and rag.retrieval.k == 3
    [entry] = history(tmp_path)
    assert entry["config"] == "cafe" and entry["current"] and entry["metrics"] == {"m": 0.6}
    assert promote(tmp_path, tmp_path / "run", "base")[0] == 2
    assert rollback(tmp_path) == 1
    with pytest.raises(ValueError, match="no configuration 'nope'"):
        promote(tmp_path, tmp_path / "run", "nope")
    with pytest.raises(ValueError, match=r"results\.json not found"):
        promote(tmp_path, tmp_path)
