"""Record collections: a ``.jsonl`` file with one document per line, BEIR's ``corpus.jsonl`` layout.

Each line is ``{"_id": ..., "title": ..., "text": ...}`` (other fields ignored). Every record is
its own document: source ``FILE#ID`` (so updates, deletions and ``--sync`` work per record with
the machinery files use), document id the record's ``_id`` (so evaluation qrels and citations
name the same thing). A changed file re-ingests only records whose title or text changed, and
records gone from the file are removed. Parsing is plain JSON in the parent process: no worker
needed, and a bad line is quarantined on its own while the rest ingest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ingest.builder import DocumentBuilder
from ingest.model import Document

RECORD_SUFFIXES = (".jsonl",)
KIND = "record"


@dataclass(frozen=True)
class Record:
    id: str
    title: str
    text: str
    line: int
    content_hash: str


def record_source(collection: str, record_id: str) -> str:
    return f"{collection}#{record_id}"


def in_collection(source: str, collection: str) -> bool:
    return source.startswith(collection + "#")


def container_of(source: str) -> str:
    """The file a source lives in: itself, or the collection a record source names."""
    head, sep, _ = source.partition(".jsonl#")
    return head + ".jsonl" if sep else source


def read_records(path: Path) -> tuple[list[Record], list[tuple[str, str]]]:
    """The records of ``path`` and (label, reason) for each line that is not a usable record."""
    records: list[Record] = []
    problems: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append((f"line-{n}", f"line {n}: not JSON ({e.msg})"))
                continue
            rid = obj.get("_id") if isinstance(obj, dict) else None
            if isinstance(rid, int) and not isinstance(rid, bool):
                rid = str(rid)
            if not isinstance(rid, str) or not rid.strip():
                problems.append((f"line-{n}", f"line {n}: no '_id' string"))
                continue
            title, text = obj.get("title") or "", obj.get("text") or ""
            if not isinstance(title, str) or not isinstance(text, str):
                problems.append((f"line-{n}", f"line {n}: 'title' and 'text' must be strings"))
                continue
            if rid in seen:
                problems.append(
                    (f"line-{n}", f"line {n}: _id {rid!r} already used on line {seen[rid]}")
                )
                continue
            seen[rid] = n
            digest = hashlib.sha256(json.dumps([title, text]).encode()).hexdigest()
            records.append(Record(rid, title, text, n, digest))
    return records, problems


def record_document(record: Record) -> Document:
    """The record as a document: its title as the heading (chunks carry it), then its text."""
    b = DocumentBuilder(KIND)
    b.title = record.title or None
    if record.title:
        b.heading(1, record.title)
    b.paragraph(record.text)
    return b.build()
