"""The multi-turn dev set: follow-ups whose evidence is really in the dev documents."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from eval.dataset import Case, DatasetError, load_dataset, write_dataset
from eval.strings import has_evidence
from ingest.convert import convert_file
from tests.conftest import REPO

DIALOGUES = REPO / "eval" / "data" / "dialogues.jsonl"


@cache
def converted(path: Path) -> str:
    return convert_file(path).text


def test_the_dialogues_are_two_turns_about_the_dev_documents(shared_data: Path) -> None:
    cases = load_dataset(DIALOGUES)
    assert len(cases) >= 10
    corpus = {p.name for p in (shared_data / "corpus").iterdir()}
    for case in cases:
        assert [role for role, _ in case.history] == ["user", "assistant"], case.id
        assert case.extra["source"] in corpus, case.id
        assert case.evidence and case.ground_truth.strip(), case.id
        # A follow-up is short: it leans on the first turn for its subject.
        assert len(case.question.split()) <= 12, case.id


def test_every_follow_ups_evidence_is_in_its_converted_document(shared_data: Path) -> None:
    for case in load_dataset(DIALOGUES):
        text = converted(shared_data / "corpus" / case.extra["source"])
        for evidence in case.evidence:
            assert has_evidence(text, [evidence]), f"{case.id}: {evidence!r} not in the document"


def test_history_survives_a_round_trip_and_bad_history_is_refused(tmp_path: Path) -> None:
    case = Case(
        "c1",
        "And the trailer?",
        "Four bytes.",
        history=(("user", "How large is the header?"), ("assistant", "Two bytes.")),
    )
    write_dataset(tmp_path / "d.jsonl", [case])
    line = json.loads((tmp_path / "d.jsonl").read_text())
    assert line["history"][0] == {"role": "user", "content": "How large is the header?"}
    assert load_dataset(tmp_path / "d.jsonl") == [case]
    for bad in (
        "hello",
        [{"role": "system", "content": "x"}],
        [{"role": "user"}],
        [{"role": "user", "content": "x", "name": "n"}],
    ):
        (tmp_path / "bad.jsonl").write_text(
            json.dumps({"id": "c", "question": "q", "ground_truth": "g", "history": bad}) + "\n"
        )
        with pytest.raises(DatasetError, match="history"):
            load_dataset(tmp_path / "bad.jsonl")
