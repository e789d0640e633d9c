"""Answers and the feedback on them, in SQLite beside the index: the eval loop's raw material.

Every answer is stored as its record (``service.answer.Answer``: question, passages, template,
parameters, index version), so a thumbs-down with a corrected answer can become an evaluation
case later.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from service.answer import Answer

# question and answer are the record's, repeated so the table reads well in the sqlite3 shell.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY, created REAL, question TEXT, answer TEXT, record TEXT
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, response_id TEXT REFERENCES responses(id),
    rating TEXT CHECK (rating IN ('up', 'down')), comment TEXT, corrected_answer TEXT, created REAL
);
"""


@dataclass(frozen=True)
class Feedback:
    """A rating on an answer, with the answer's record as it was given."""

    id: int
    response_id: str
    rating: Literal["up", "down"]
    comment: str | None
    corrected_answer: str | None
    created: float
    answer: Answer


class FeedbackStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        _migrate(self._conn)
        self._lock = threading.Lock()

    def record_response(self, rid: str, answer: Answer) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses(id, created, question, answer, record) "
                "VALUES (?, ?, ?, ?, ?)",
                (rid, time.time(), answer.question, answer.text, answer.model_dump_json()),
            )

    def add_feedback(
        self, rid: str, rating: str, comment: str | None, corrected_answer: str | None
    ) -> int | None:
        """The feedback id, or None when ``rid`` is not a response this service gave."""
        with self._lock:
            if (
                self._conn.execute("SELECT 1 FROM responses WHERE id = ?", (rid,)).fetchone()
                is None
            ):
                return None
            cur = self._conn.execute(
                "INSERT INTO feedback(response_id, rating, comment, corrected_answer, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (rid, rating, comment, corrected_answer, time.time()),
            )
            return int(cur.lastrowid or 0)

    def feedback(self) -> list[Feedback]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT f.id, f.response_id, f.rating, f.comment, f.corrected_answer, f.created, "
                "r.record FROM feedback f JOIN responses r ON r.id = f.response_id ORDER BY f.id"
            ).fetchall()
        return [
            Feedback(fid, rid, rating, comment, corrected, created, Answer.model_validate_json(rec))
            for fid, rid, rating, comment, corrected, created, rec in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _migrate(conn: sqlite3.Connection) -> None:
    """Give a store from before the record one: its rows' citations and info become records.

    Checked again inside the write transaction, so a service and an eval command opening the
    same old store convert it once.
    """
    if _has_record(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _has_record(conn):
            conn.execute("ALTER TABLE responses ADD COLUMN record TEXT")
            old = conn.execute("SELECT id, question, answer, citations, info FROM responses")
            for rid, question, text, citations, info in old.fetchall():
                answer = Answer.from_legacy(question, text, json.loads(citations), json.loads(info))
                conn.execute(
                    "UPDATE responses SET record = ? WHERE id = ?", (answer.model_dump_json(), rid)
                )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _has_record(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "record" for row in conn.execute("PRAGMA table_info(responses)"))
