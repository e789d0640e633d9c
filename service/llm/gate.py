"""A gate of N holders at a time with a bounded FIFO of waiters and a wait timeout.

The in-process model can generate for one request at a time (one KV cache, all cores busy); the
llama-server engine for one per slot. Queueing the rest keeps latency honest; bounding the queue and the wait turns overload into a quick 503
instead of an ever-growing backlog of requests whose clients have long given up.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from service.llm.base import LLMBusy

# While a waiter has a cancel event it wakes this often to look at it: a Condition cannot wait on
# an Event too, and 0.1 s is far below the time a generation takes.
_CANCEL_POLL_S = 0.1


class Gate:
    """Admit ``slots`` holders at a time; at most ``queue_size`` wait, each at most ``timeout_s``."""

    def __init__(self, queue_size: int, timeout_s: float, slots: int = 1) -> None:
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.slots = slots
        self._cond = threading.Condition()
        self._holders = 0
        self._waiters: deque[object] = deque()

    @property
    def waiting(self) -> int:
        """Requests queued now (for metrics)."""
        with self._cond:
            return len(self._waiters)

    def acquire(self, cancel: threading.Event | None = None) -> bool:
        """Take the gate, first come first served; False when ``cancel`` was set while waiting.

        Raises ``LLMBusy`` at once when the queue is full and after ``timeout_s`` of waiting.
        """
        with self._cond:
            if self._holders < self.slots and not self._waiters:
                self._holders += 1
                return True
            if len(self._waiters) >= self.queue_size:
                raise LLMBusy(
                    f"model busy: {len(self._waiters)} request(s) already waiting "
                    f"(queue_size={self.queue_size})"
                )
            me = object()
            self._waiters.append(me)
            deadline = time.monotonic() + self.timeout_s
            try:
                while self._holders >= self.slots or self._waiters[0] is not me:
                    if cancel is not None and cancel.is_set():
                        return False
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise LLMBusy(f"model busy: waited {self.timeout_s:g} s for a turn")
                    self._cond.wait(min(left, _CANCEL_POLL_S) if cancel is not None else left)
                self._holders += 1
                return True
            finally:
                self._waiters.remove(me)
                # The head may have changed (we left or took the gate): let the others re-check.
                self._cond.notify_all()

    def release(self) -> None:
        """Free a place for the next waiter, if any."""
        with self._cond:
            self._holders -= 1
            self._cond.notify_all()
