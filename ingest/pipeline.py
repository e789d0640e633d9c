"""One ingest run: scan -> convert (worker processes) -> chunk -> embed -> commit to the index.

Conversion runs ahead in the pool while this thread chunks and embeds; chunks of several small
documents share encoder batches. Commits happen every ``commit_every`` documents (or
``commit_interval_s``), so a killed run loses at most the documents since the last commit, and a
rerun skips everything committed (same content hash) and finishes the job.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ingest.chunk import chunk_document
from ingest.embed import Embedder
from ingest.index import DocumentRecord, VectorIndex, Writer
from ingest.model import Chunk
from ingest.pool import ConversionPool, Converted, Failed
from ingest.scan import FileEntry, file_hash, scan, under
from ingest.settings import ChunkSettings, IngestSettings

EMBED_BATCH_CHUNKS = 256  # enough to keep the encoder's batches full across small documents


def document_id(source: str) -> str:
    """Stable id of the document at ``source`` (it survives content changes)."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


@dataclass
class Summary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    quarantined: int = 0
    skipped: int = 0
    chunks: int = 0
    bytes: int = 0
    seconds: float = 0.0
    version: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


Progress = Callable[[int], None]  # called with the number of files just finished


@dataclass
class _Pending:
    entry: FileEntry
    converted: Converted
    chunks: list[Chunk]
    replaces: bool


def embed_text(chunk: Chunk, heading_context: bool) -> str:
    """What the encoder reads for a chunk: its heading path (if not already its first line), then text."""
    if not heading_context or not chunk.heading:
        return chunk.text
    path = chunk.heading
    if chunk.text.startswith(path[-1]):
        path = path[:-1]
    return " > ".join(path) + "\n" + chunk.text if path else chunk.text


class Ingestor:
    """Keeps an index in step with a set of files and folders."""

    def __init__(
        self,
        index: VectorIndex,
        embedder: Embedder,
        chunking: ChunkSettings,
        settings: IngestSettings,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.chunking = chunking
        self.settings = settings

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
            record = self.index.document(entry.source)
            same_stat = record is not None and (record.size, record.mtime_ns) == (
                entry.size,
                entry.mtime_ns,
            )
            if trust_stat and same_stat:
                summary.unchanged += 1
                continue
            digest = file_hash(entry.path)
            if record is not None and record.content_hash == digest:
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
    ) -> Summary:
        """Ingest ``roots``; with ``sync``, also drop indexed documents that vanished from them."""
        started = time.perf_counter()
        entries, todo, summary = self.plan(
            roots, retry_quarantined=retry_quarantined, trust_stat=trust_stat
        )
        if on_plan:
            on_plan(len(entries), len(entries) - len(todo))
        by_path = {e.path: e for e in todo}
        s = self.settings
        with self.index.writer() as writer:
            if todo:
                with ConversionPool(s.workers, s.timeout_s, s.memory_mb, s.max_file_mb) as pool:
                    self._convert_all(pool, by_path, writer, summary, progress)
            if sync:
                present = {e.source for e in entries}
                for record in self.index.documents():
                    if under(record.source, roots) and record.source not in present:
                        writer.remove(record.source)
                        summary.removed += 1
                for held in self.index.quarantined():
                    if under(held.source, roots) and held.source not in present:
                        writer.remove(held.source)  # forget why a file that is gone failed
            summary.version = writer.commit()
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _convert_all(
        self,
        pool: ConversionPool,
        by_path: dict[Path, FileEntry],
        writer: Writer,
        summary: Summary,
        progress: Progress | None,
    ) -> None:
        batch: list[_Pending] = []
        since_commit, last_commit = 0, time.monotonic()
        for outcome in pool.imap(list(by_path)):
            entry = by_path[outcome.path]
            if isinstance(outcome, Failed):
                self._record_failure(writer, entry, outcome, summary)
                if progress:
                    progress(1)
                continue
            chunks = chunk_document(
                outcome.document,
                self.embedder.tokenizer,
                size=min(self.chunking.size, self.embedder.max_tokens),
                overlap=self.chunking.overlap,
            )
            if not chunks:
                failed = Failed(entry.path, outcome.content_hash, "no text to index")
                self._record_failure(writer, entry, failed, summary)
                if progress:
                    progress(1)
                continue
            replaces = self.index.document(entry.source) is not None
            batch.append(_Pending(entry, outcome, chunks, replaces))
            if sum(len(p.chunks) for p in batch) >= EMBED_BATCH_CHUNKS:
                since_commit += self._flush(batch, writer, summary, progress)
                batch = []
            interval = time.monotonic() - last_commit >= self.settings.commit_interval_s
            if since_commit >= self.settings.commit_every or (since_commit and interval):
                writer.commit()
                since_commit, last_commit = 0, time.monotonic()
        self._flush(batch, writer, summary, progress)

    def _flush(
        self, batch: list[_Pending], writer: Writer, summary: Summary, progress: Progress | None
    ) -> int:
        if not batch:
            return 0
        texts = [embed_text(c, self.chunking.heading_context) for p in batch for c in p.chunks]
        vectors = self.embedder.encode(texts)
        offset = 0
        for p in batch:
            n = len(p.chunks)
            doc = p.converted.document
            record = DocumentRecord(
                doc_id=document_id(p.entry.source),
                source=p.entry.source,
                content_hash=p.converted.content_hash,
                size=p.entry.size,
                mtime_ns=p.entry.mtime_ns,
                kind=doc.kind,
                title=doc.title,
                n_chunks=n,
                ingested_at=time.time(),
            )
            writer.put(record, p.chunks, vectors[offset : offset + n])
            offset += n
            summary.chunks += n
            summary.bytes += p.entry.size
            if p.replaces:
                summary.updated += 1
            else:
                summary.added += 1
        if progress:
            progress(len(batch))
        return len(batch)

    @staticmethod
    def _record_failure(writer: Writer, entry: FileEntry, failed: Failed, summary: Summary) -> None:
        if failed.skipped:
            summary.skipped += 1
            status = "skipped"
        else:
            writer.quarantine(entry.source, failed.content_hash, failed.reason)
            summary.quarantined += 1
            status = "quarantined"
        summary.problems.append({"source": entry.source, "status": status, "reason": failed.reason})
