"""The single writer of a vector index store: staged changes and the commit protocol.

A commit builds its new chunks into one new segment and its deletions into tombstones, writes
the segment and then a new version directory naming all segments (each tmp, fsync, rename, fsync
parent), and only then flips ``meta.current_version`` in the same SQLite transaction that writes
the rows, so a kill -9 at any instant leaves either the old version or the new one, never a mix.
Its cost follows the commit, not the collection: existing segments are never rewritten. A merge
(``ingest.compact``) publishes through the same protocol. The writer sits above the store: it
builds on ``VectorIndex``'s public snapshot/publish methods (``snapshot``, ``Snapshot.derive``,
``write_version``, ``publish``) and never touches FAISS or the directory layout, and
``ingest.index`` does not import it. Take one with ``Writer.acquire(index)``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from ingest.docstore import CommitBatch, DocumentRecord, PendingPut
from ingest.faults import fault_point
from ingest.index import IndexCorrupt, IndexStoreError, VectorIndex, WriterBusy
from ingest.index.errors import storage_failure
from ingest.index.segment import Segment
from ingest.lexical import lexical_text
from ingest.model import Chunk

__all__ = ["StagedChanges", "Writer"]


def _acquire_lock(path: Path, timeout: float) -> int:
    """Take the exclusive writer lock, polling so the wait is bounded and the holder is named."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise WriterBusy(
                    f"could not take the writer lock {path} within {timeout:.1f}s: held by pid "
                    f"{holder}; wait for that ingest to finish or stop it"
                ) from None
            time.sleep(0.05)
    # flock dies with the process, so a kill -9 never leaves a stale lock; the pid is only
    # there for the error message above.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class Writer:
    """Pending changes for one commit, held under the store's writer lock.

    Changes are only recorded here and applied to a copy of the index at ``commit()``, so an
    exit without commit (or an exception) discards them without touching what readers use.
    """

    def __init__(self, owner: VectorIndex, lock_fd: int) -> None:
        """Use ``acquire``: this assumes the lock is held and ``owner`` is up to date."""
        self._owner = owner
        self._store = owner.docstore
        self._fd: int | None = lock_fd
        self._next_id = int(self._store.meta()["next_chunk_id"])
        self._reset()

    @classmethod
    def acquire(cls, owner: VectorIndex, timeout: float = 30.0) -> Self:
        """Take ``owner``'s single writer lock and start from its latest committed version.

        The lock is released again if anything after taking it fails, so a failed start never
        blocks the next writer.
        """
        fd = _acquire_lock(owner.root / "LOCK", timeout)
        try:
            owner.refresh()
            owner.collect_garbage()  # orphans of a writer killed mid-commit
            return cls(owner, fd)
        except BaseException:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise

    def _reset(self) -> None:
        self._puts: dict[str, PendingPut] = {}
        self._removes: set[str] = set()
        self._quarantines: dict[str, tuple[str | None, str, float]] = {}
        self._merge: tuple[list[str], Segment] | None = None
        self._ops = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _discard_unpublished(self) -> None:
        """Free the space of a version that failed to publish, now rather than at the next commit.

        Only when the pointer provably did not move: a COMMIT that failed late may still have
        landed, and then that version is the current one. Best effort, since the disk is failing;
        the next writer's garbage collection removes whatever is left.
        """
        with contextlib.suppress(Exception):
            if self._store.current_version() == self._owner.version:
                self._owner.collect_garbage()

    def close(self) -> None:
        """Discard anything uncommitted and release the lock."""
        self._reset()
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _check(self) -> None:
        if self._fd is None:
            raise IndexStoreError("this writer is closed; take a new one with Writer.acquire()")
        if self._merge is not None:
            raise IndexStoreError("a merge is staged: commit it on its own")

    def replace_segments(self, sources: Sequence[str], merged: Segment) -> bool:
        """Stage a merge: ``merged`` (already written) replaces the segments named ``sources``.

        Returns False, staging nothing, when the current version no longer holds all of them
        (a commit dropped one whose rows were all deleted): the merge is then moot.
        """
        self._check()
        if self._ops:
            raise IndexStoreError("a merge is committed on its own; commit the changes first")
        if not set(sources) <= set(self._owner.snapshot().names()):
            return False
        self._merge = (list(sources), merged)
        self._ops = 1
        return True

    @property
    def pending(self) -> int:
        return self._ops

    def put(
        self,
        doc: DocumentRecord,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        texts: Sequence[str] | None = None,
    ) -> None:
        """Stage ``doc`` (identified by its source), replacing any earlier version of it.

        ``texts`` is what BM25 indexes for each chunk: the text the vectors were embedded from
        (default: heading path and text), so both sides of hybrid search see the same context.
        """
        self._check()
        if texts is None:
            texts = [lexical_text(c.heading, c.text) for c in chunks]
        if len(texts) != len(chunks):
            raise ValueError(f"{doc.source}: {len(texts)} index texts for {len(chunks)} chunks")
        dim = self._owner.dim
        vecs = np.array(vectors, dtype=np.float32, copy=True)  # caller may reuse its buffer
        if vecs.shape != (len(chunks), dim):
            raise ValueError(f"vectors must have shape ({len(chunks)}, {dim}), got {vecs.shape}")
        if not np.isfinite(vecs).all():
            raise ValueError(f"{doc.source}: vectors contain NaN or inf")
        owner = self._store.source_of_doc_id(doc.doc_id)
        clash = [p.doc.source for p in self._puts.values() if p.doc.doc_id == doc.doc_id]
        if owner not in (None, doc.source) and owner not in self._removes:
            clash.append(owner)
        if any(s != doc.source for s in clash):
            raise IndexStoreError(f"doc_id {doc.doc_id!r} of {doc.source} is also used by {clash}")
        ids = np.arange(self._next_id, self._next_id + len(chunks), dtype=np.int64)
        self._next_id += len(chunks)  # ids are never reused, so stale search hits cannot alias
        self._removes.discard(doc.source)
        self._quarantines.pop(doc.source, None)
        self._puts[doc.source] = PendingPut(doc, tuple(chunks), vecs, ids, tuple(texts))
        self._ops += 1

    def remove(self, source: str) -> bool:
        """Stage removal of ``source`` (document or quarantine record); returns whether one existed."""
        self._check()
        committed = source not in self._removes and (
            self._store.document(source) is not None
            or self._store.quarantine_entry(source) is not None
        )
        pending = self._puts.pop(source, None) is not None
        pending = self._quarantines.pop(source, None) is not None or pending
        existed = pending or committed
        if committed:
            self._removes.add(source)  # also forgets its quarantine row
        if existed:
            self._ops += 1
        return existed

    def quarantine(self, source: str, content_hash: str | None, reason: str) -> None:
        """Record why ``source`` failed; its last good version, if any, stays searchable."""
        self._check()
        self._quarantines[source] = (content_hash, reason, time.time())
        self._ops += 1

    def commit(self) -> int:
        """Publish pending changes as a new version (see the module docstring for the protocol)."""
        if self._fd is None:
            raise IndexStoreError("this writer is closed; take a new one with Writer.acquire()")
        owner, store = self._owner, self._store
        if self._ops == 0:
            return owner.version
        if store.current_version() != owner.version:  # cannot happen while we hold the lock
            raise IndexStoreError("store moved under the writer lock; is LOCK on a shared FS?")
        version = owner.version + 1
        touched = list(self._puts) + sorted(self._removes)
        n_docs, n_chunks, _ = store.counts()
        n_replaced = sum(store.document(s) is not None for s in touched)
        stale = np.array(store.chunk_ids_of_sources(touched), dtype=np.int64)

        # 1. The next snapshot, shared segments plus a new one: readers keep the current one.
        adds = None
        puts = list(self._puts.values())
        if puts:
            adds = (
                np.concatenate([p.vectors for p in puts]),
                np.concatenate([p.ids for p in puts]),
            )
        texts = [
            (int(i), text) for p in puts for i, text in zip(p.ids.tolist(), p.texts, strict=True)
        ]
        if self._merge is not None:
            snap = owner.snapshot().replaced(*self._merge)
        else:
            snap = owner.snapshot().derive(stale, adds, texts, owner.settings)
        n_docs += len(self._puts) - n_replaced
        n_chunks += sum(len(p.chunks) for p in puts) - int(stale.size)
        if snap.ntotal != n_chunks:
            # FAISS, BM25 and SQLite would drift apart: stop before anything is published.
            raise IndexCorrupt(f"the index would hold {snap.ntotal} chunks, SQLite {n_chunks}")

        try:
            # 2. Write the version directory (tmp, fsync, rename, fsync parent).
            created_at = time.time()
            digest = owner.write_version(
                snap, created_at=created_at, n_documents=n_docs, n_chunks=n_chunks
            )

            # 3. The switch: rows and current_version in one SQLite transaction.
            batch = CommitBatch(
                version=version,
                created_at=created_at,
                puts=puts,
                removes=sorted(self._removes),
                quarantines=dict(self._quarantines),
                next_chunk_id=self._next_id,
                ntotal=snap.ntotal,
                sha256=digest,
            )
            store.apply(batch, lambda: fault_point("commit-sqlite-open"))
        except (OSError, sqlite3.Error) as e:
            failure = storage_failure(e, version, owner.version)
            if failure is None:
                raise
            self._discard_unpublished()
            raise failure from e
        # The new version serves from memory: it is what we just built, and the next commit
        # clones it instead of re-reading the file.
        owner.publish(snap)
        self._reset()

        # 4. Garbage-collect; a failure here costs disk space, never correctness.
        owner.collect_garbage()
        return version


class StagedChanges:
    """Changes gathered without the writer lock, applied and committed under it in one go.

    An ingest run converts and embeds for minutes; holding the store's single writer lock all that
    time would make an API upload wait behind it and time out. Staging takes the lock only for the
    moment of each commit, so other writers get their turn between an ingest run's commits.
    """

    def __init__(self, index: VectorIndex, lock_timeout_s: float = 30.0) -> None:
        self._index = index
        self._timeout = lock_timeout_s
        self._ops: list[tuple[str, tuple[object, ...]]] = []
        self._owners: dict[str, str] = {}  # doc_id -> source of every put staged by this run

    @property
    def pending(self) -> int:
        return len(self._ops)

    def put(
        self,
        doc: DocumentRecord,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        texts: Sequence[str] | None = None,
    ) -> None:
        # Copied: the caller may reuse its buffer before the commit.
        vecs = np.array(vectors, np.float32, copy=True)
        self._ops.append(
            ("put", (doc, tuple(chunks), vecs, None if texts is None else tuple(texts)))
        )
        self._owners[doc.doc_id] = doc.source

    def claim(self, doc_id: str, source: str) -> str | None:
        """Reserve ``doc_id`` for ``source`` before its put; returns the other owner if taken.

        Owners are this run's claims and puts, then the store's committed documents.
        """
        owner = self._owners.get(doc_id) or self._index.source_of_doc_id(doc_id)
        if owner not in (None, source):
            return owner
        self._owners[doc_id] = source
        return None

    def remove(self, source: str) -> None:
        self._ops.append(("remove", (source,)))

    def quarantine(self, source: str, content_hash: str | None, reason: str) -> None:
        self._ops.append(("quarantine", (source, content_hash, reason)))

    def commit(self) -> int:
        """Take the lock, replay the staged changes in order, commit; returns the version."""
        if not self._ops:
            self._index.refresh()
            return self._index.version
        with Writer.acquire(self._index, self._timeout) as writer:
            for op, args in self._ops:
                getattr(writer, op)(*args)
            version = writer.commit()
        self._ops.clear()
        return version
