"""``ingest --watch``: keep the index in step with folders that documents are dropped into.

Polling (not inotify) so it works the same on network mounts and in containers. A change is
ingested once the folder looked the same on two consecutive polls, so a file still being copied
in is not converted half-written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from ingest.pipeline import Ingestor, Summary
from ingest.scan import scan

Snapshot = frozenset[tuple[str, int, int]]


def snapshot(roots: Sequence[Path]) -> Snapshot:
    entries, skipped = scan(roots)
    return frozenset((e.source, e.size, e.mtime_ns) for e in entries) | frozenset(
        (source, -1, -1) for source, _ in skipped
    )


def watch(
    ingestor: Ingestor,
    roots: Sequence[Path],
    *,
    interval_s: float,
    on_summary: Callable[[Summary], None],
    stop: threading.Event | None = None,
) -> None:
    """Ingest ``roots`` with sync semantics now and after every settled change, until ``stop``."""
    stop = stop or threading.Event()
    indexed = snapshot(roots)
    on_summary(ingestor.run(roots, sync=True))
    candidate = indexed
    while not stop.wait(interval_s):
        current = snapshot(roots)
        if current == indexed or current != candidate:
            candidate = current  # nothing new, or still changing: look again next poll
            continue
        on_summary(ingestor.run(roots, sync=True, trust_stat=True))
        indexed = current
