"""Merging segments: a size-tiered policy, built outside the writer lock, published through it.

Every commit adds a segment, so without merges a collection fed one document at a time would be
searched over thousands of them. Segments are grouped in tiers of sizes within ``merge_factor`` of
each other (like Lucene's tiered and Cassandra's size-tiered policies); when a tier holds
``merge_factor`` segments they become one of the next tier, so each chunk is rewritten about
log_factor(n / FLOOR) times in its life and a version has at most ``merge_factor - 1`` segments per
tier. A segment with more than half its rows deleted is rewritten without them.

Segments built on the collection's quantizer merge by copying their IVF lists (no k-means, no
decoding); other parts' vectors are assigned to the same lists. A merge reads immutable segments
and writes a new one under the store's merge lock (one merge at a
time, across processes), without the writer lock, so commits go on meanwhile. It then takes the
writer lock only to publish a version naming the merged segment instead of its sources; rows
deleted in between stay deleted (tombstones are chunk ids). Readers are never blocked: they keep
the snapshot they hold. A merge killed at any point leaves the last version serving; its unnamed
segment is removed by the next garbage collection once the merge lock is free.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict

from ingest.index import VectorIndex
from ingest.index.segment import Segment
from ingest.index.snapshot import Snapshot
from ingest.versions import MERGED_PREFIX, merge_lock
from ingest.writer import Writer

__all__ = ["FLOOR", "compact", "plan"]

FLOOR = 1000  # rows: segments smaller than this are one tier, however small


def plan(snap: Snapshot, factor: int) -> list[str]:
    """Names of the segments to merge next (empty: none), smallest tier first."""
    tiers: dict[int, list[str]] = defaultdict(list)
    for s in snap.segments:
        if 2 * s.dead_ids.size > len(s):
            return [s.segment.name]  # mostly deleted: rewrite it alone, without the dead rows
        tier = int(math.log(max(s.live_count, FLOOR) / FLOOR, factor) + 1e-9)
        tiers[tier].append(s.segment.name)
    for tier in sorted(tiers):
        if len(tiers[tier]) >= factor:
            return tiers[tier]
    return []


def compact(index: VectorIndex, *, lock_timeout_s: float = 30.0) -> int:
    """Merge until the policy is satisfied; returns how many merges were published.

    Returns 0 at once when another process is merging this store.
    """
    merges = 0
    with merge_lock(index.root) as mine:
        if not mine:
            return 0
        while True:
            index.refresh()
            snap = index.snapshot()
            names = plan(snap, index.settings.merge_factor)
            if not names:
                return merges
            parts = [s for s in snap.segments if s.segment.name in names]
            name = f"{MERGED_PREFIX}{uuid.uuid4().hex[:16]}"
            merged = Segment.merge(name, parts, index.settings, snap.quantizer)
            merged = index.write_segment(merged)
            with Writer.acquire(index, lock_timeout_s) as writer:
                if not writer.replace_segments(names, merged):
                    return merges  # a commit changed them meanwhile; the next run replans
                writer.commit()
            merges += 1
