"""Find the files an ingest run covers and decide which of them need work.

Identity is the resolved path; change is decided by content hash (the size and mtime only let a
watcher skip re-hashing files that certainly did not change).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ingest.convert import SUPPORTED_SUFFIXES
from ingest.records import RECORD_SUFFIXES


@dataclass(frozen=True)
class FileEntry:
    path: Path
    source: str  # the identity recorded in the index
    size: int
    mtime_ns: int
    records: bool = False  # a record collection (one document per line), not one document


def source_of(path: Path) -> str:
    return str(path.resolve())


def walk(roots: Iterable[Path]) -> Iterator[Path]:
    """Files under ``roots`` (files given directly are kept as they are), hidden entries skipped.

    Office's lock files (``~$report.docx``, a few bytes while the document is open) count as
    hidden: they carry a document suffix but no document, and would only be quarantined.
    """
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                rel = p.relative_to(root).parts
                if any(part.startswith((".", "~$")) for part in rel) or not p.is_file():
                    continue
                yield p


def scan(roots: Iterable[Path]) -> tuple[list[FileEntry], list[tuple[str, str]]]:
    """Candidate documents and (source, reason) for files skipped as unsupported."""
    entries: list[FileEntry] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    for path in walk(roots):
        source = source_of(path)
        if source in seen:
            continue
        seen.add(source)
        suffix = path.suffix.lower()
        records = suffix in RECORD_SUFFIXES
        if suffix not in SUPPORTED_SUFFIXES and not records:
            skipped.append((source, f"unsupported file type '{suffix or path.name}'"))
            continue
        try:
            st = path.stat()
        except OSError as e:
            skipped.append((source, f"cannot stat: {e.strerror or e}"))
            continue
        entries.append(FileEntry(path, source, st.st_size, st.st_mtime_ns, records))
    return entries, skipped


def file_hash(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def under(source: str, roots: Iterable[Path]) -> bool:
    """Whether an indexed source lies in one of the given files or folders (for --sync)."""
    for root in roots:
        r = source_of(root)
        if source == r or source.startswith(r.rstrip("/") + "/"):
            return True
    return False
