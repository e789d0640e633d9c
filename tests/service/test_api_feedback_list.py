"""GET /v1/feedback (filters, order, the answer it rates) and the wrong_citation flag."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from eval.feedback import cases_from_feedback, feedback_rows
from ingest.embed import Embedder
from service.answer import Answer
from service.app import create_app
from service.feedback import FeedbackStore
from service.settings import Settings
from tests.service.conftest import ScriptedLLM
from tests.service.test_api import QUESTION, ask, assert_openai_error

CONTRACT = {
    "id",
    "object",
    "response_id",
    "rating",
    "comment",
    "corrected_answer",
    "created",
    "question",
    "answer",
    "wrong_citation",
}
NEW_YEAR = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())


@pytest.fixture
def client(own_settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    with TestClient(create_app(own_settings, llm=ScriptedLLM(), embedder=embedder)) as c:
        yield c


def give(c: TestClient, **body: Any) -> dict[str, Any]:
    """Ask, then rate the answer with ``body``; the stored feedback object."""
    rid = ask(c).json()["id"]
    resp = c.post("/v1/feedback", json={"response_id": rid, **body})
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


def listed(c: TestClient, **params: Any) -> list[dict[str, Any]]:
    resp = c.get("/v1/feedback", params=params)
    assert resp.status_code == 200, resp.text
    assert resp.json()["object"] == "list"
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def test_feedback_list_filters_and_order(client: TestClient, own_settings: Settings) -> None:
    up = give(client, rating="up")
    fixed = give(client, rating="down", comment="vague", corrected_answer="Keys and values.")
    blank = give(client, rating="down", corrected_answer="  \n\t")  # no correction, really
    cited = give(client, rating="down", wrong_citation=True)
    ids = [up["id"], fixed["id"], blank["id"], cited["id"]]

    everything = listed(client)
    assert [f["id"] for f in everything] == ids[::-1]  # newest first
    for f in everything:
        assert set(f) >= CONTRACT and f["object"] == "feedback"
        assert f["question"] == QUESTION and f["answer"] == ScriptedLLM().answer
        assert isinstance(f["created"], int)
    assert everything[2]["comment"] == "vague"
    assert everything[2]["corrected_answer"] == "Keys and values."

    assert [f["id"] for f in listed(client, rating="up")] == [up["id"]]
    assert [f["id"] for f in listed(client, rating="down")] == ids[:0:-1]
    assert [f["id"] for f in listed(client, has_correction="true")] == [fixed["id"]]
    assert [f["id"] for f in listed(client, has_correction="false")] == [
        cited["id"],
        blank["id"],
        up["id"],
    ]
    down_uncorrected = listed(client, rating="down", has_correction="false")
    assert [f["id"] for f in down_uncorrected] == [cited["id"], blank["id"]]
    assert [f["id"] for f in listed(client, limit=2)] == [cited["id"], blank["id"]]

    # since: the first entry moved to new year's midnight UTC, the others are now
    with sqlite3.connect(own_settings.home / "feedback.sqlite") as db:
        db.execute("UPDATE feedback SET created = ? WHERE id = ?", (NEW_YEAR, up["id"]))
    db.close()
    assert listed(client, rating="up")[0]["created"] == NEW_YEAR
    after = [f["id"] for f in listed(client, since="2026-01-01T00:30:00")]  # no offset: UTC
    assert up["id"] not in after and len(after) == 3
    assert up["id"] in [f["id"] for f in listed(client, since="2026-01-01T00:00:00Z")]
    # the same instant as half past midnight UTC, and as half past ten the evening before
    assert up["id"] not in [f["id"] for f in listed(client, since="2025-12-31T23:30:00-01:00")]
    assert up["id"] in [f["id"] for f in listed(client, since="2026-01-01T00:30:00+02:00")]
    assert listed(client, since="2999-01-01") == []

    for bad in ({"limit": 0}, {"limit": 501}, {"rating": "meh"}, {"since": "last tuesday"}):
        assert_openai_error(client.get("/v1/feedback", params=bad), 422)
    assert len(listed(client, limit=500)) == 4


def test_wrong_citation_round_trip(client: TestClient, own_settings: Settings) -> None:
    flagged = give(client, rating="up", wrong_citation=True)
    plain = give(client, rating="down", corrected_answer="Keys and values.")
    assert flagged["wrong_citation"] is True and plain["wrong_citation"] is False
    assert set(flagged) >= CONTRACT and flagged["question"] == QUESTION
    by_id = {f["id"]: f for f in listed(client)}
    assert by_id[flagged["id"]]["wrong_citation"] is True
    assert by_id[plain["id"]]["wrong_citation"] is False
    assert_openai_error(
        client.post(
            "/v1/feedback",
            json={"response_id": flagged["response_id"], "rating": "up", "wrong_citation": "x"},
        ),
        422,
    )
    # eval from-feedback reads the same store: the correction still becomes a case
    [case] = cases_from_feedback(feedback_rows(own_settings.home))
    assert case.ground_truth == "Keys and values." and case.question == QUESTION


# feedback.sqlite as the service wrote it before wrong_citation (answers already as records)
OLD_SCHEMA = """
CREATE TABLE responses (id TEXT PRIMARY KEY, created REAL, question TEXT, answer TEXT, record TEXT);
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, response_id TEXT REFERENCES responses(id),
    rating TEXT CHECK (rating IN ('up', 'down')), comment TEXT, corrected_answer TEXT, created REAL
);
"""


def old_store(path: Path, record: Answer) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.execute(
            "INSERT INTO responses VALUES ('old', 1.0, ?, ?, ?)",
            (record.question, record.text, record.model_dump_json()),
        )
        db.execute(
            "INSERT INTO feedback(response_id, rating, comment, corrected_answer, created) "
            "VALUES ('old', 'down', 'stale', 'Keys and values.', ?)",
            (NEW_YEAR,),
        )
    db.close()


def columns(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        names = [row[1] for row in db.execute("PRAGMA table_info(feedback)")]
    db.close()
    return names


def test_a_store_from_before_wrong_citation_opens_and_lists(
    client: TestClient, own_settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    # a real answer's record, taken from a working store
    give(client, rating="up")
    [recorded] = FeedbackStore(own_settings.home / "feedback.sqlite").feedback()
    path = tmp_path / "old" / "feedback.sqlite"
    old_store(path, recorded.answer)
    assert "wrong_citation" not in columns(path)

    store = FeedbackStore(path)
    [old] = store.feedback()
    assert old.wrong_citation is False and old.comment == "stale"
    assert store.add_feedback("old", "up", None, None, wrong_citation=True) == 2
    store.close()
    assert "wrong_citation" in columns(path)
    reopened = FeedbackStore(path)  # migrated once; opening again changes nothing
    assert [f.wrong_citation for f in reopened.feedback()] == [False, True]
    reopened.close()
    [case] = cases_from_feedback(feedback_rows(path.parent))
    assert case.ground_truth == "Keys and values."

    # and the service starts on such a store and lists it
    s = own_settings.model_copy(update={"home": tmp_path / "old-home"})
    s.home.mkdir()
    (s.home / "index").symlink_to(own_settings.home / "index")
    old_store(s.home / "feedback.sqlite", recorded.answer)
    with TestClient(create_app(s, llm=ScriptedLLM(), embedder=embedder)) as c:
        [entry] = listed(c)
    assert entry["wrong_citation"] is False and entry["created"] == NEW_YEAR
    assert entry["question"] == recorded.answer.question
    assert json.loads(recorded.answer.model_dump_json())["text"] == entry["answer"]
