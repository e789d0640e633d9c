"""Retention of stored answers: unrated ones go after a while; feedback and what it rates stay."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from service.feedback import FeedbackStore
from service.settings import Settings
from tests.eval.test_feedback_promote import answer


def ids(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return sorted(r[0] for r in db.execute("SELECT id FROM responses"))


def test_old_and_surplus_unrated_answers_are_pruned_rated_ones_kept(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite"
    store = FeedbackStore(path)  # no retention: everything is kept
    for rid in ("old-rated", "old", "a", "b", "c"):
        store.record_response(rid, answer(f"Q {rid}?", "A."))
    store.add_feedback("old-rated", "down", "wrong", "Right answer.")
    day = 86400
    store._conn.execute(  # two answers written 40 days ago
        "UPDATE responses SET created = ? WHERE id IN ('old-rated', 'old')",
        (time.time() - 40 * day,),
    )
    store._conn.execute("UPDATE responses SET created = created + 1 WHERE id = 'c'")  # the newest
    store.close()
    assert ids(path) == ["a", "b", "c", "old", "old-rated"]

    pruned = FeedbackStore(path, retention_days=30, max_responses=2)  # pruned as it opens
    assert ids(path) == ["b", "c", "old-rated"] or ids(path) == ["a", "c", "old-rated"]
    [kept] = pruned.feedback()
    assert kept.response_id == "old-rated" and kept.corrected_answer == "Right answer."
    pruned.close()


def test_the_service_settings_reach_the_store(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, service={"response_retention_days": 7, "max_responses": 10})
    assert s.service.response_retention_days == 7 and s.service.max_responses == 10
    assert Settings(home=tmp_path).service.response_retention_days == 30
