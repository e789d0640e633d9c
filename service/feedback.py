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
from typing import Any, Literal

from service.answer import Answer

# question and answer are the record's, repeated so the table reads well in the sqlite3 shell.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY, created REAL, question TEXT, answer TEXT, record TEXT
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, response_id TEXT REFERENCES responses(id),
    rating TEXT CHECK (rating IN ('up', 'down')), comment TEXT, corrected_answer TEXT, created REAL,
    wrong_citation INTEGER NOT NULL DEFAULT 0
);
"""
_COLUMNS = (
    "f.id, f.response_id, f.rating, f.comment, f.corrected_answer, f.created, r.record, "
    "f.wrong_citation"
)
# A correction is there when it has more than whitespace (as eval from-feedback reads it).
_HAS_CORRECTION = "TRIM(COALESCE(f.corrected_answer, ''), ' ' || char(9, 10, 13)) != ''"


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
    wrong_citation: bool = False  # the user says the answer cites the wrong passage


# Answers nobody rated: the ones retention may drop (rated ones are the eval loop's cases).
_UNRATED = "id NOT IN (SELECT response_id FROM feedback WHERE response_id IS NOT NULL)"
_PRUNE_EVERY = 100  # writes between prunes: each prune scans the table


class FeedbackStore:
    """Answers and feedback; unrated answers are dropped after ``retention_days`` or beyond
    ``max_responses`` (None: kept), at open and every ``_PRUNE_EVERY`` answers recorded."""

    def __init__(
        self, path: Path, *, retention_days: float | None = None, max_responses: int | None = None
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        _migrate(self._conn)
        self._lock = threading.Lock()
        self.retention_days, self.max_responses = retention_days, max_responses
        self._writes = 0
        self.prune()

    def record_response(self, rid: str, answer: Answer) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses(id, created, question, answer, record) "
                "VALUES (?, ?, ?, ?, ?)",
                (rid, time.time(), answer.question, answer.text, answer.model_dump_json()),
            )
            self._writes += 1
        if self._writes % _PRUNE_EVERY == 0:
            self.prune()

    def prune(self) -> int:
        """Drop unrated answers past retention; the number dropped. Feedback rows stay, and so
        do the answers they rate."""
        dropped = 0
        with self._lock:
            if self.retention_days is not None:
                cutoff = time.time() - self.retention_days * 86400
                cur = self._conn.execute(
                    f"DELETE FROM responses WHERE created < ? AND {_UNRATED}", (cutoff,)
                )
                dropped += cur.rowcount
            if self.max_responses is not None:
                cur = self._conn.execute(
                    f"DELETE FROM responses WHERE id IN (SELECT id FROM responses WHERE {_UNRATED} "
                    "ORDER BY created DESC LIMIT -1 OFFSET ?)",
                    (self.max_responses,),
                )
                dropped += cur.rowcount
        return dropped

    def add_feedback(
        self,
        rid: str,
        rating: str,
        comment: str | None,
        corrected_answer: str | None,
        wrong_citation: bool = False,
    ) -> int | None:
        """The feedback id, or None when ``rid`` is not a response this service gave."""
        with self._lock:
            if (
                self._conn.execute("SELECT 1 FROM responses WHERE id = ?", (rid,)).fetchone()
                is None
            ):
                return None
            cur = self._conn.execute(
                "INSERT INTO feedback(response_id, rating, comment, corrected_answer, created, "
                "wrong_citation) VALUES (?, ?, ?, ?, ?, ?)",
                (rid, rating, comment, corrected_answer, time.time(), int(wrong_citation)),
            )
            return int(cur.lastrowid or 0)

    def feedback(
        self,
        *,
        rating: Literal["up", "down"] | None = None,
        has_correction: bool | None = None,
        since: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Feedback]:
        """Feedback with the answers it rates, oldest first unless ``newest_first``.

        Filters (None: any): ``rating``; ``has_correction``, a corrected answer that is more
        than whitespace; ``since``, given at or after this Unix time; at most ``limit`` rows.
        """
        where, args = self._where(rating=rating, has_correction=has_correction, since=since)
        sql = (
            f"SELECT {_COLUMNS} FROM feedback f JOIN responses r ON r.id = f.response_id{where} "
            f"ORDER BY f.id{' DESC' if newest_first else ''}"
        )
        if limit is not None:
            sql, args = sql + " LIMIT ?", [*args, limit]
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [_row(r) for r in rows]

    def get(self, fid: int) -> Feedback | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM feedback f JOIN responses r ON r.id = f.response_id "
                "WHERE f.id = ?",
                (fid,),
            ).fetchone()
        return None if row is None else _row(row)

    @staticmethod
    def _where(
        *, rating: str | None, has_correction: bool | None, since: float | None
    ) -> tuple[str, list[object]]:
        clauses: list[str] = []
        args: list[object] = []
        if rating is not None:
            clauses.append("f.rating = ?")
            args.append(rating)
        if has_correction is not None:
            clauses.append(_HAS_CORRECTION if has_correction else f"NOT ({_HAS_CORRECTION})")
        if since is not None:
            clauses.append("f.created >= ?")
            args.append(since)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _row(row: Any) -> Feedback:
    fid, rid, rating, comment, corrected, created, record, wrong = row
    answer = Answer.model_validate_json(record)
    return Feedback(fid, rid, rating, comment, corrected, created, answer, bool(wrong))


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a store written by an earlier version up to the current schema, in place.

    Each step is checked again inside the write transaction, so a service and an eval command
    opening the same old store convert it once.
    """
    if _has_column(conn, "responses", "record") and _has_column(conn, "feedback", "wrong_citation"):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _has_column(conn, "responses", "record"):
            _add_records(conn)
        if not _has_column(conn, "feedback", "wrong_citation"):
            # Feedback given before the flag existed said nothing about citations: false.
            conn.execute(
                "ALTER TABLE feedback ADD COLUMN wrong_citation INTEGER NOT NULL DEFAULT 0"
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _add_records(conn: sqlite3.Connection) -> None:
    """Give a store from before the record one: its rows' citations and info become records."""
    conn.execute("ALTER TABLE responses ADD COLUMN record TEXT")
    old = conn.execute("SELECT id, question, answer, citations, info FROM responses")
    for rid, question, text, citations, info in old.fetchall():
        answer = Answer.from_legacy(question, text, json.loads(citations), json.loads(info))
        conn.execute(
            "UPDATE responses SET record = ? WHERE id = ?", (answer.model_dump_json(), rid)
        )


def _has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in conn.execute(f"PRAGMA table_info({table})"))
