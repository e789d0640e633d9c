"""Hand-off from a generation thread to the event loop that wakes the loop per batch, not per token.

On a small CPU the model's threads and the server share cores: waking the event loop, writing an
SSE event and parsing it in the client for every token measurably slows generation. Deltas are
collected here and flushed at most every ``linger`` seconds; the first delta and the end of the
stream are delivered at once, so time to first token and total time are not delayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from typing import Any

LINGER_S = 0.04


class Mailbox:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[Any] = deque()
        self._lock = threading.Lock()
        self._event = asyncio.Event()
        self._waiting = True  # the consumer starts out waiting for the first item

    def put(self, item: Any, *, urgent: bool = False) -> None:
        """From the producer thread; ``urgent`` items (end, errors) wake the consumer at once."""
        with self._lock:
            self._items.append(item)
            wake = self._waiting or urgent
            self._waiting = False
        if wake:
            self._loop.call_soon_threadsafe(self._event.set)

    async def take(self) -> list[Any]:
        """Everything delivered so far; waits for at least one item."""
        while True:
            with self._lock:
                if self._items:
                    items = list(self._items)
                    self._items.clear()
                    return items
                self._waiting = True
                self._event.clear()
            await self._event.wait()

    async def linger(self, seconds: float = LINGER_S) -> None:
        """Let deltas accumulate for up to ``seconds``; an urgent item ends the wait early."""
        with self._lock:
            self._event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
