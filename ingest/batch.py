"""The batching end of an ingest run: encoder batches across documents, commits at a cadence.

Split from ``ingest.pipeline`` (which decides what to convert and chunk) so each stays small; the
pipeline re-exports ``Summary`` and ``document_id``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from ingest.index import DocumentRecord
from ingest.model import Chunk
from ingest.pool import Converted, Failed
from ingest.records import container_of
from ingest.scan import FileEntry
from ingest.settings import ChunkSettings, IngestSettings
from ingest.writer import StagedChanges

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
    merges: int = 0  # segment merges published after the run's commits
    problems: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


Progress = Callable[[int], None]  # called with the number of files just finished


@dataclass
class Pending:
    entry: FileEntry
    converted: Converted
    chunks: list[Chunk]
    replaces: bool
    doc_id: str | None = None  # default: document_id(entry.source)
    # Index texts and vectors computed elsewhere (the Ray engine's encoder actors): written as is.
    embedded: tuple[list[str], np.ndarray] | None = None


Item = Pending | tuple[FileEntry, Failed]  # what the batching loop consumes


class Embeds(Protocol):
    """What the batcher needs of an ``Ingestor``: its settings and how it embeds chunks."""

    settings: IngestSettings
    chunking: ChunkSettings

    def index_texts(self, title: str | None, chunks: Sequence[Chunk]) -> list[str]: ...

    def embed(self, docs: Sequence[tuple[str | None, Sequence[Chunk]]]) -> np.ndarray: ...


def record_failure(
    writer: StagedChanges | None, entry: FileEntry, failed: Failed, summary: Summary
) -> None:
    """Count and report a failure; quarantine it in ``writer``'s store unless None."""
    if failed.skipped:
        summary.skipped += 1
        status = "skipped"
    else:
        if writer is not None:
            writer.quarantine(entry.source, failed.content_hash, failed.reason)
        summary.quarantined += 1
        status = "quarantined"
    summary.problems.append({"source": entry.source, "status": status, "reason": failed.reason})


class Batcher:
    """Groups chunks of several documents into encoder batches and commits at the cadence.

    Commits happen every ``commit_every`` documents or ``commit_interval_s``, so a killed run
    loses at most the documents since the last commit.
    """

    def __init__(
        self,
        ingestor: Embeds,
        writer: StagedChanges,
        summary: Summary,
        progress: Progress | None,
        quarantine: bool = True,
    ) -> None:
        self._ing, self._writer, self._summary = ingestor, writer, summary
        self._quarantine = quarantine
        self._progress = progress
        self._batch: list[Pending] = []
        self._since_commit, self._last_commit = 0, time.monotonic()

    def consume(self, items: Iterable[Item]) -> None:
        settings = self._ing.settings
        for item in items:
            if isinstance(item, tuple):
                writer = self._writer if self._quarantine else None
                record_failure(writer, *item, self._summary)
                if (
                    self._progress
                    and not item[0].records
                    and container_of(item[0].source) == item[0].source
                ):
                    self._progress(1)
                continue
            if item.embedded is not None:
                self._write([item], [item.embedded[0]], item.embedded[1])
            else:
                self._batch.append(item)
                if sum(len(p.chunks) for p in self._batch) >= EMBED_BATCH_CHUNKS:
                    self.flush()
            interval = time.monotonic() - self._last_commit >= settings.commit_interval_s
            if self._since_commit >= settings.commit_every or (self._since_commit and interval):
                self._writer.commit()
                self._since_commit, self._last_commit = 0, time.monotonic()

    def flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        texts = [self._ing.index_texts(p.converted.document.title, p.chunks) for p in batch]
        vectors = self._ing.embed([(p.converted.document.title, p.chunks) for p in batch])
        self._write(batch, texts, vectors)

    def _write(self, batch: list[Pending], texts: list[list[str]], vectors: np.ndarray) -> None:
        """Stage ``batch`` (``vectors``: all its chunks' rows, in order) and count it."""
        summary = self._summary
        offset = 0
        for p, doc_texts in zip(batch, texts, strict=True):
            n = len(p.chunks)
            doc = p.converted.document
            record = DocumentRecord(
                doc_id=p.doc_id or document_id(p.entry.source),
                source=p.entry.source,
                content_hash=p.converted.content_hash,
                size=p.entry.size,
                mtime_ns=p.entry.mtime_ns,
                kind=doc.kind,
                title=doc.title,
                n_chunks=n,
                ingested_at=time.time(),
                context=self._ing.chunking.context_key,
            )
            self._writer.put(record, p.chunks, vectors[offset : offset + n], doc_texts)
            offset += n
            summary.chunks += n
            summary.bytes += len(doc.text) if p.doc_id else p.entry.size
            if p.replaces:
                summary.updated += 1
            else:
                summary.added += 1
        self._since_commit += len(batch)
        files = sum(p.doc_id is None for p in batch)  # the progress bar counts files
        if self._progress and files:
            self._progress(files)
