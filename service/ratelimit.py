"""Token buckets per client, in a table of bounded size that never lets a client past its limit.

Forgetting a client's bucket hands it a fresh, full one on its next request, so a table that
evicts the least recently used bucket lets a client who spent its budget make room (by making
others arrive) and start over. Here only a full bucket is forgotten, which loses nothing: a bucket
refills in one minute, so any bucket idle that long is full. When every tracked client was active
in the last minute, a newcomer gets no bucket of its own but shares one overflow bucket with the
other newcomers, and any bucket created later starts no fuller than that overflow bucket. So the
cap costs no client any of its limit's protection: what a client may send is never more than its
own bucket alone would allow (newcomers during a flood share a budget, and may get less).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """``per_minute`` requests per key, refilled continuously; at most ``clients`` keys tracked."""

    def __init__(
        self, per_minute: int, clients: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute < 1 or clients < 1:
            raise ValueError("per_minute and clients must be at least 1")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clients = clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # LRU first
        self._overflow = (self.capacity, clock())
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may take a token (0: now), taking none and tracking nothing."""
        with self._lock:
            level = self._level(key, self._clock())
        return self._wait(level)

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0 when allowed; otherwise seconds until one would be."""
        now = self._clock()
        with self._lock:
            level = self._level(key, now)
            wait = self._wait(level)
            if wait == 0:
                level -= 1
            if key in self._buckets or self._make_room(now):
                self._buckets[key] = (level, now)
                self._buckets.move_to_end(key)
            else:
                self._overflow = (level, now)
        return wait

    def _level(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:  # a newcomer starts no fuller than the overflow bucket
            bucket = self._overflow
        tokens, last = bucket
        return min(self.capacity, tokens + (now - last) * self.rate)

    def _wait(self, level: float) -> float:
        return 0.0 if level >= 1 else (1 - level) / self.rate

    def _make_room(self, now: float) -> bool:
        """Whether a new bucket fits: the table has room, or its oldest bucket is full."""
        if len(self._buckets) < self.clients:
            return True
        oldest, (tokens, last) = next(iter(self._buckets.items()))
        if min(self.capacity, tokens + (now - last) * self.rate) < self.capacity:
            return False  # every tracked client was active within the minute
        del self._buckets[oldest]
        return True
