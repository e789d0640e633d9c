"""Answers and the feedback on them, in SQLite beside the index: the eval loop's raw material.

Every answer is recorded with what produced it (question, passages, template, parameters, index
version), so a thumbs-down with a corrected answer can become an evaluation case later.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY, created REAL, question TEXT, answer TEXT, citations TEXT, info TEXT
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, response_id TEXT REFERENCES responses(id),
    rating TEXT CHECK (rating IN ('up', 'down')), comment TEXT, corrected_answer TEXT, created REAL
);
"""


class FeedbackStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def record_response(
        self,
        rid: str,
        question: str,
        answer: str,
        citations: list[dict[str, Any]],
        info: dict[str, Any],
    ) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                (rid, time.time(), question, answer, json.dumps(citations), json.dumps(info)),
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

    def feedback(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT f.id, f.response_id, f.rating, f.comment, f.corrected_answer, f.created, "
                "r.question, r.answer, r.citations, r.info FROM feedback f "
                "JOIN responses r ON r.id = f.response_id ORDER BY f.id"
            ).fetchall()
        keys = (
            "id",
            "response_id",
            "rating",
            "comment",
            "corrected_answer",
            "created",
            "question",
            "answer",
            "citations",
            "info",
        )
        out = [dict(zip(keys, row, strict=True)) for row in rows]
        for o in out:
            o["citations"], o["info"] = json.loads(o["citations"]), json.loads(o["info"])
        return out

    def close(self) -> None:
        with self._lock:
            self._conn.close()
