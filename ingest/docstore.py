"""SQLite side of the vector index: documents, chunk text, quarantine, versions and the pointer.

SQLite (WAL) rather than pickle or JSON files because one transaction can switch the current
version and the rows it refers to together, readers in other processes never block the writer,
and a killed writer's half-done transaction is rolled back on the next open.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ingest.context import file_title
from ingest.model import Chunk
from ingest.records import KIND as RECORD_KIND

SCHEMA_VERSION = 2  # 2: documents.context (what chunks were indexed with besides their text)
_BATCH = 500  # stays far below SQLite's bound-variable limit on old builds (999)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, source TEXT UNIQUE NOT NULL, content_hash TEXT NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, kind TEXT NOT NULL, title TEXT,
    n_chunks INTEGER NOT NULL, version INTEGER NOT NULL, ingested_at REAL NOT NULL,
    context TEXT);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, page INTEGER,
    heading TEXT NOT NULL, text TEXT NOT NULL, n_tokens INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc_id ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_doc_ordinal ON chunks(doc_id, ordinal);
CREATE TABLE IF NOT EXISTS quarantine (
    source TEXT PRIMARY KEY, content_hash TEXT, reason TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    version INTEGER PRIMARY KEY, created_at REAL NOT NULL, n_documents INTEGER NOT NULL,
    n_chunks INTEGER NOT NULL, ntotal INTEGER NOT NULL, sha256 TEXT NOT NULL);
"""

_DOC_SQL = (
    "SELECT doc_id, source, content_hash, size, mtime_ns, kind, title, n_chunks, version, "
    "ingested_at, context FROM documents "
)
_HIT_SQL = (
    'SELECT c.chunk_id, c.doc_id, d.source, c.page, c.heading, c.start, c."end", c.text, '
    "c.n_tokens FROM chunks c JOIN documents d ON d.doc_id = c.doc_id "
)


@dataclass(frozen=True)
class DocumentRecord:
    """One indexed (or about to be indexed) source file; ``content_hash`` drives re-ingest skips."""

    doc_id: str
    source: str
    content_hash: str
    size: int
    mtime_ns: int
    kind: str
    title: str | None
    n_chunks: int = 0
    version: int = 0
    ingested_at: float = 0.0
    context: str | None = None  # ChunkSettings.context it was indexed with; None: before it existed


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with what a citation needs (source, page, heading path, offsets)."""

    chunk_id: int
    doc_id: str
    source: str
    page: int | None
    heading: tuple[str, ...]
    start: int
    end: int
    text: str
    score: float
    n_tokens: int = 0  # in the embedding model's tokenizer, as the chunker counted them


@dataclass(frozen=True)
class QuarantineRecord:
    """A source that failed to convert; kept so the operator sees why it is not (re)indexed."""

    source: str
    content_hash: str | None
    reason: str
    at: float


@dataclass
class PendingPut:
    """A document waiting for commit, with the chunk ids already assigned to its vectors."""

    doc: DocumentRecord
    chunks: Sequence[Chunk]
    vectors: np.ndarray
    ids: np.ndarray
    texts: Sequence[str]  # what BM25 indexes for each chunk (see ``ingest.context``)


@dataclass
class CommitBatch:
    """Everything one commit writes to SQLite, gathered so it lands in a single transaction."""

    version: int
    created_at: float
    puts: list[PendingPut]
    removes: list[str]
    quarantines: dict[str, tuple[str | None, str, float]]
    next_chunk_id: int
    ntotal: int
    sha256: str


def _document(row: Sequence[Any]) -> DocumentRecord:
    record = DocumentRecord(*row)
    if record.title is None and record.kind != RECORD_KIND:
        # Rows written before titles were always chosen: the file name, as a new ingest would.
        return replace(record, title=file_title(record.source))
    return record


def _hit(row: Sequence[Any], score: float = 0.0) -> Hit:
    return Hit(
        chunk_id=int(row[0]),
        doc_id=row[1],
        source=row[2],
        page=row[3],
        heading=tuple(json.loads(row[4])),
        start=int(row[5]),
        end=int(row[6]),
        text=row[7],
        score=score,
        n_tokens=int(row[8]),
    )


class DocStore:
    """Thread-safe wrapper over one SQLite connection (search threads share it under a lock)."""

    def __init__(self, path: Path) -> None:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE for the commit), so
        # the sqlite3 module never opens one behind our back and holds a read snapshot open.
        self._conn = sqlite3.connect(
            str(path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            # synchronous=FULL: the COMMIT is the version switch, so it must be on disk when
            # commit() returns, not merely ordered.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            self._migrate()

    def _migrate(self) -> None:
        """Bring a store written by an older ragtune up to ``SCHEMA_VERSION`` (idempotent).

        Columns are only ever added, at the end, NULL in existing rows; reads name their
        columns, so rows of either age load. Two processes opening an old store at once both
        get here: the check runs again under the write lock, so only one of them alters it.
        """
        if "context" in self._document_columns():
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            if "context" not in self._document_columns():
                self._conn.execute("ALTER TABLE documents ADD COLUMN context TEXT")
            self._conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version' AND value < ?",
                (SCHEMA_VERSION, SCHEMA_VERSION),
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _document_columns(self) -> set[str]:
        return {row[1] for row in self._conn.execute("PRAGMA table_info(documents)")}

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _all(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    # --- meta -----------------------------------------------------------------------------

    def ensure_meta(self, embed_model: str, dim: int, kind: str) -> dict[str, Any]:
        """Record the store's identity on first open; afterwards just return what is recorded."""
        initial = {
            "schema_version": SCHEMA_VERSION,
            "embed_model": embed_model,
            "dim": dim,
            "index_kind": kind,
            "current_version": 0,
            "next_chunk_id": 1,  # ids start at 1 so -1 (FAISS "no result") is never confusable
        }
        meta = self.meta()
        if "current_version" in meta:
            return meta  # the common case takes no write lock, so readers never wait on a commit
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", initial.items()
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return self.meta()

    def meta(self) -> dict[str, Any]:
        return dict(self._all("SELECT key, value FROM meta"))

    def current_version(self) -> int:
        rows = self._all("SELECT value FROM meta WHERE key = 'current_version'")
        return int(rows[0][0]) if rows else 0

    def version_sha256(self, version: int) -> str | None:
        rows = self._all("SELECT sha256 FROM versions WHERE version = ?", (version,))
        return str(rows[0][0]) if rows else None

    # --- reads ----------------------------------------------------------------------------

    def documents(self, prefix: str = "") -> list[DocumentRecord]:
        """All documents, or those whose source starts with ``prefix`` (a range scan on the
        source index, so a watcher polling one record collection does not read every row)."""
        if not prefix:
            rows = self._all(_DOC_SQL + "ORDER BY source")
        else:
            rows = self._all(
                _DOC_SQL + "WHERE source >= ? AND source < ? ORDER BY source",
                (prefix, prefix + "\U0010ffff"),
            )
        return [_document(row) for row in rows]

    def document(self, source: str) -> DocumentRecord | None:
        rows = self._all(_DOC_SQL + "WHERE source = ?", (source,))
        return _document(rows[0]) if rows else None

    def source_of_doc_id(self, doc_id: str) -> str | None:
        rows = self._all("SELECT source FROM documents WHERE doc_id = ?", (doc_id,))
        return str(rows[0][0]) if rows else None

    def chunks(self, doc_id: str) -> list[Hit]:
        rows = self._all(_HIT_SQL + "WHERE c.doc_id = ? ORDER BY c.ordinal", (doc_id,))
        return [_hit(row) for row in rows]

    def around(self, chunk_id: int, before: int, after: int) -> list[Hit]:
        """``chunk_id`` and up to ``before``/``after`` chunks of its document around it, in order."""
        rows = self._all(
            _HIT_SQL + "JOIN chunks h ON h.chunk_id = ? AND c.doc_id = h.doc_id "
            "AND c.ordinal BETWEEN h.ordinal - ? AND h.ordinal + ? ORDER BY c.ordinal",
            (chunk_id, before, after),
        )
        return [_hit(row) for row in rows]

    def hits(self, ids: Sequence[int]) -> dict[int, Hit]:
        """Rows for ``ids`` from one read snapshot, so a concurrent commit is seen whole or not."""
        found: dict[int, Hit] = {}
        unique = sorted(set(ids))
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                for i in range(0, len(unique), _BATCH):
                    part = unique[i : i + _BATCH]
                    marks = ",".join("?" * len(part))
                    sql = _HIT_SQL + f"WHERE c.chunk_id IN ({marks})"
                    for row in self._conn.execute(sql, part):
                        found[int(row[0])] = _hit(row)
            finally:
                self._conn.execute("COMMIT")
        return found

    def chunk_ids(self) -> np.ndarray:
        rows = self._all("SELECT chunk_id FROM chunks ORDER BY chunk_id")
        return np.array([int(r[0]) for r in rows], dtype=np.int64)

    def lexical_texts(self) -> list[tuple[int, str]]:
        """(chunk id, text BM25 indexes) of every chunk, for stores written before BM25 existed."""
        from ingest.lexical import lexical_text

        rows = self._all("SELECT chunk_id, heading, text FROM chunks ORDER BY chunk_id")
        return [(int(r[0]), lexical_text(json.loads(r[1]), r[2])) for r in rows]

    def chunk_ids_of_sources(self, sources: Iterable[str]) -> list[int]:
        out: list[int] = []
        for source in sources:
            rows = self._all(
                "SELECT c.chunk_id FROM chunks c JOIN documents d ON d.doc_id = c.doc_id "
                "WHERE d.source = ?",
                (source,),
            )
            out.extend(int(r[0]) for r in rows)
        return out

    def quarantined(self) -> list[QuarantineRecord]:
        rows = self._all("SELECT source, content_hash, reason, at FROM quarantine ORDER BY source")
        return [QuarantineRecord(*row) for row in rows]

    def quarantine_entry(self, source: str) -> QuarantineRecord | None:
        rows = self._all(
            "SELECT source, content_hash, reason, at FROM quarantine WHERE source = ?", (source,)
        )
        return QuarantineRecord(*rows[0]) if rows else None

    def counts(self) -> tuple[int, int, int]:
        rows = self._all(
            "SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM chunks), "
            "(SELECT COUNT(*) FROM quarantine)"
        )
        return int(rows[0][0]), int(rows[0][1]), int(rows[0][2])

    # --- the switch -----------------------------------------------------------------------

    def apply(self, batch: CommitBatch, before_commit: Callable[[], None]) -> None:
        """Write a commit's rows and move ``current_version`` in one transaction.

        The COMMIT is the switch: a crash anywhere before it leaves the previous version current
        with all its rows, because SQLite rolls the open transaction back on the next open.
        """
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                for source in [p.doc.source for p in batch.puts] + batch.removes:
                    self._delete_source(source)
                conn.executemany(
                    "DELETE FROM quarantine WHERE source = ?", [(s,) for s in batch.removes]
                )
                for put in batch.puts:
                    self._insert_put(put, batch.version, batch.created_at)
                    conn.execute("DELETE FROM quarantine WHERE source = ?", (put.doc.source,))
                conn.executemany(
                    "INSERT OR REPLACE INTO quarantine(source, content_hash, reason, at) "
                    "VALUES (?, ?, ?, ?)",
                    [(s, h, r, at) for s, (h, r, at) in batch.quarantines.items()],
                )
                n_docs, n_chunks = conn.execute(
                    "SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM chunks)"
                ).fetchone()
                conn.execute(
                    "INSERT OR REPLACE INTO versions VALUES (?, ?, ?, ?, ?, ?)",
                    (batch.version, batch.created_at, n_docs, n_chunks, batch.ntotal, batch.sha256),
                )
                conn.executemany(
                    "UPDATE meta SET value = ? WHERE key = ?",
                    [(batch.version, "current_version"), (batch.next_chunk_id, "next_chunk_id")],
                )
                before_commit()
                conn.execute("COMMIT")
            except BaseException:
                # A full disk (SQLITE_FULL) or an I/O error may already have rolled the
                # transaction back; a second ROLLBACK would raise and hide the real error.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _delete_source(self, source: str) -> None:
        # Chunks first and explicitly: the cascade needs foreign_keys=ON on every connection
        # that ever writes, and being explicit does not depend on that.
        self._conn.execute(
            "DELETE FROM chunks WHERE doc_id IN (SELECT doc_id FROM documents WHERE source = ?)",
            (source,),
        )
        self._conn.execute("DELETE FROM documents WHERE source = ?", (source,))

    def _insert_put(self, put: PendingPut, version: int, at: float) -> None:
        d = put.doc
        self._conn.execute(
            "INSERT INTO documents(doc_id, source, content_hash, size, mtime_ns, kind, title, "
            "n_chunks, version, ingested_at, context) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (d.doc_id, d.source, d.content_hash, d.size, d.mtime_ns, d.kind, d.title,
             len(put.chunks), version, at, d.context),
        )  # fmt: skip
        self._conn.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (int(cid), d.doc_id, c.ordinal, c.start, c.end, c.page,
                 json.dumps(list(c.heading), ensure_ascii=False), c.text, c.n_tokens)
                for cid, c in zip(put.ids.tolist(), put.chunks, strict=True)
            ],
        )  # fmt: skip
