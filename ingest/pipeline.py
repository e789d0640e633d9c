"""One ingest run: scan -> convert (worker processes) -> chunk -> embed -> commit to the index.

Conversion runs ahead in the pool while this thread chunks and embeds; chunks of several small
documents share encoder batches. Commits happen every ``commit_every`` documents (or
``commit_interval_s``), so a killed run loses at most the documents since the last commit, and a
rerun skips everything committed (same content hash) and finishes the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ingest.batch import Batcher, Item, Pending, Progress, Summary, document_id
from ingest.compact import compact
from ingest.context import LEGACY_CONTEXT
from ingest.embed import Embedder
from ingest.index import DocumentRecord, VectorIndex
from ingest.model import Chunk, Document
from ingest.pool import ConversionPool, Converted, Failed
from ingest.prepare import DocumentPrep
from ingest.records import (
    container_of,
    in_collection,
    read_records,
    record_document,
    record_source,
)
from ingest.scan import FileEntry, file_hash, scan, under
from ingest.settings import ChunkSettings, IngestSettings
from ingest.writer import StagedChanges

__all__ = ["Ingestor", "Summary", "document_id"]  # Summary and document_id live in batch


class Ingestor:
    """Keeps an index in step with a set of files and folders."""

    def __init__(
        self,
        index: VectorIndex,
        embedder: Embedder,
        chunking: ChunkSettings,
        settings: IngestSettings,
        *,
        lock_timeout_s: float = 30.0,
        merge: bool = True,
    ) -> None:
        self.index = index
        self.lock_timeout_s = lock_timeout_s  # an API request waits briefly, a CLI run longer
        # Merge segments after a run (ingest.compact); the service merges in the background.
        self.merge = merge
        self.embedder = embedder
        self.chunking = chunking
        self.settings = settings
        self.prep = DocumentPrep(embedder.tokenizer, embedder.max_tokens, chunking, settings)

    def current(self, record: DocumentRecord | None, content_hash: str | None = None) -> bool:
        """Whether ``record`` is this content (any, if None) indexed the way this ingestor would.

        A changed ``chunk.context`` changes what every chunk is embedded and BM25-indexed with,
        so the next run re-processes each document although its content is unchanged.
        """
        return (
            record is not None
            and content_hash in (None, record.content_hash)
            and (record.context or LEGACY_CONTEXT) == self.chunking.context_key
        )

    def index_texts(self, title: str | None, chunks: Sequence[Chunk]) -> list[str]:
        """What BM25 reads for each chunk of a document titled ``title``: prefix, then text."""
        return self.prep.index_texts(title, chunks)

    def embed(self, docs: Sequence[tuple[str | None, Sequence[Chunk]]]) -> np.ndarray:
        """One vector per chunk of ``docs`` (title, chunks), in order (``DocumentPrep.embed``)."""
        return self.prep.embed(self.embedder.encode, docs)

    def plan(
        self, roots: Sequence[Path], *, retry_quarantined: bool = False, trust_stat: bool = False
    ) -> tuple[list[FileEntry], list[FileEntry], Summary]:
        """Scanned entries, the ones needing conversion, and a summary of what is already done.

        ``trust_stat`` takes an unchanged size and mtime as an unchanged file without hashing it
        (for the watcher's frequent polls; a plain run always compares content hashes).
        """
        summary = Summary()
        entries, skipped = scan(roots)
        for source, reason in skipped:
            summary.skipped += 1
            summary.problems.append({"source": source, "status": "skipped", "reason": reason})
        todo: list[FileEntry] = []
        for entry in entries:
            if entry.records:
                todo.append(entry)  # compared record by record when it is read
                continue
            record = self.index.document(entry.source)
            same_stat = record is not None and (record.size, record.mtime_ns) == (
                entry.size,
                entry.mtime_ns,
            )
            if trust_stat and same_stat and self.current(record):
                summary.unchanged += 1
                continue
            digest = file_hash(entry.path)
            if self.current(record, digest):
                summary.unchanged += 1
                continue
            held = self.index.quarantine_entry(entry.source)
            if held is not None and held.content_hash == digest and not retry_quarantined:
                summary.quarantined += 1
                summary.problems.append(
                    {"source": entry.source, "status": "quarantined", "reason": held.reason}
                )
                continue
            todo.append(entry)
        return entries, todo, summary

    def run(
        self,
        roots: Sequence[Path],
        *,
        sync: bool = False,
        retry_quarantined: bool = False,
        trust_stat: bool = False,
        progress: Progress | None = None,
        on_plan: Callable[[int, int], None] | None = None,
        quarantine: bool = True,
    ) -> Summary:
        """Ingest ``roots``; with ``sync``, also drop indexed documents that vanished from them.

        ``quarantine=False`` reports failures in the summary without recording them in the store:
        for a caller that hands the reason back and discards the file (an API upload), so a
        rejected document writes no index version.
        """
        started = time.perf_counter()
        entries, todo, summary = self.plan(
            roots, retry_quarantined=retry_quarantined, trust_stat=trust_stat
        )
        if on_plan:
            on_plan(len(entries), len(entries) - len(todo))
        files = {e.path: e for e in todo if not e.records}
        collections = [e for e in todo if e.records]
        # The store's writer lock is taken only while committing (see StagedChanges).
        writer = StagedChanges(self.index, self.lock_timeout_s)
        batcher = Batcher(self, writer, summary, progress, quarantine)
        if files:
            self._ingest_files(files, batcher)
        for entry in collections:
            batcher.consume(self._record_items(entry, writer, summary, trust_stat))
            if progress:
                progress(1)
        batcher.flush()
        if sync:
            present = {e.source for e in entries}
            for record in self.index.documents():
                if under(record.source, roots) and container_of(record.source) not in present:
                    writer.remove(record.source)
                    summary.removed += 1
            for held in self.index.quarantined():
                if under(held.source, roots) and container_of(held.source) not in present:
                    writer.remove(held.source)  # forget why a file that is gone failed
        summary.version = writer.commit()
        if self.merge:
            summary.merges = compact(self.index, lock_timeout_s=self.lock_timeout_s)
            summary.version = self.index.version
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _chunks(self, doc: Document) -> list[Chunk] | str:
        """The document's chunks, or why it is refused (``DocumentPrep.chunks``)."""
        return self.prep.chunks(doc)

    def _ingest_files(self, files: dict[Path, FileEntry], batcher: Batcher) -> None:
        """Convert, chunk and embed ``files`` (in scan order) into ``batcher``: here, locally.

        The engine's seam: ``ingest.ray_engine.RayIngestor`` does this on a Ray cluster.
        """
        s = self.settings
        with ConversionPool(
            s.workers, s.timeout_s, s.memory_mb, s.max_file_mb, s.max_text_chars
        ) as pool:
            batcher.consume(self._file_items(pool, files))

    def _file_items(self, pool: ConversionPool, by_path: dict[Path, FileEntry]) -> Iterator[Item]:
        for outcome in pool.imap(list(by_path)):
            entry = by_path[outcome.path]
            if isinstance(outcome, Failed):
                yield entry, outcome
                continue
            chunks = self._chunks(outcome.document)
            if isinstance(chunks, str):
                yield entry, Failed(entry.path, outcome.content_hash, chunks)
                continue
            replaces = self.index.document(entry.source) is not None
            yield Pending(entry, outcome, chunks, replaces)

    def _record_items(
        self, entry: FileEntry, writer: StagedChanges, summary: Summary, trust_stat: bool
    ) -> Iterator[Item]:
        """Changed and new records of a collection; removes the records gone from it."""
        stored = {d.source: d for d in self.index.documents(record_source(entry.source, ""))}
        stat = (entry.size, entry.mtime_ns)
        if (
            trust_stat
            and stored
            and all((d.size, d.mtime_ns) == stat and self.current(d) for d in stored.values())
        ):
            summary.unchanged += len(stored)
            return
        try:
            records, problems = read_records(entry.path)
        except OSError as e:
            yield entry, Failed(entry.path, None, f"cannot read: {e.strerror or e}")
            return
        current: set[str] = set()
        for rec in records:
            source = record_source(entry.source, rec.id)
            current.add(source)
            old = stored.get(source)
            if self.current(old, rec.content_hash):
                summary.unchanged += 1
                continue
            item = FileEntry(entry.path, source, entry.size, entry.mtime_ns)
            owner = writer.claim(rec.id, source)
            if owner is not None:  # the _id is the document id: it must stay unique
                reason = f"line {rec.line}: _id {rec.id!r} is already the document id of {owner}"
                yield item, Failed(entry.path, rec.content_hash, reason)
                continue
            doc = record_document(rec)
            chunks = self._chunks(doc)
            if isinstance(chunks, str):
                yield item, Failed(entry.path, rec.content_hash, chunks)
                continue
            converted = Converted(entry.path, rec.content_hash, doc, 0.0)
            yield Pending(item, converted, chunks, old is not None, doc_id=rec.id)
        held = {
            q.source: q.reason
            for q in self.index.quarantined()
            if in_collection(q.source, entry.source)
        }
        for label, reason in problems:
            source = record_source(entry.source, label)
            current.add(source)
            if held.get(source) == reason:  # known and unchanged: report, do not rewrite
                summary.quarantined += 1
                summary.problems.append(
                    {"source": source, "status": "quarantined", "reason": reason}
                )
                continue
            item = FileEntry(entry.path, source, entry.size, entry.mtime_ns)
            yield item, Failed(entry.path, None, reason)
        for source in sorted(stored.keys() - current):
            writer.remove(source)
            summary.removed += 1
        for source in sorted(held.keys() - current):
            writer.remove(source)  # a line that was broken is fixed or gone
