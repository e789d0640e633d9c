"""``ingest --watch``: keep the index in step with folders that documents are dropped into.

Polling (not inotify) so it works the same on network mounts and in containers. A change is
ingested once the folder looked the same on two consecutive polls, so a file still being copied
in is not converted half-written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from ingest.index import IndexStoreError
from ingest.pipeline import Ingestor, Summary
from ingest.scan import scan

Snapshot = frozenset[tuple[str, int, int]]
_MAX_BACKOFF = 16  # polls between retries at most, after repeated failures


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
    on_error: Callable[[IndexStoreError], None] = lambda e: None,
    stop: threading.Event | None = None,
) -> None:
    """Ingest ``roots`` with sync semantics now and after every settled change, until ``stop``.

    A run the store refuses (a full disk, another writer holding the lock) is reported through
    ``on_error`` and tried again at a later poll (backing off while it keeps failing): the last
    good version keeps serving, and a watcher left running overnight recovers once space is
    freed instead of having died.
    """
    stop = stop or threading.Event()
    indexed: Snapshot | None = None  # what the last successful run saw; None: none succeeded
    candidate = current = snapshot(roots)
    failures = 0
    while True:
        if current != indexed and (indexed is None or current == candidate):
            try:
                on_summary(ingestor.run(roots, sync=True, trust_stat=indexed is not None))
                indexed, failures = current, 0
            except IndexStoreError as e:
                on_error(e)
                failures += 1
        candidate = current  # still changing, or nothing new: look again next poll
        # Back off while the store keeps refusing: each retry converts and embeds again.
        if stop.wait(interval_s * min(2**failures, _MAX_BACKOFF)):
            return
        current = snapshot(roots)
