"""Answer many questions at once, hand the results back in input order, batch by batch.

Generation calls block, and a backend with slots (llama-server, vLLM) answers several requests in
about the time of one, so the eval keeps that many questions in flight on a thread pool. What
comes out must not depend on which answer finished first: results are collected by input
position and released one batch at a time, in order, so rows are written in the order and with
the content of a one-at-a-time run, and a killed run still resumes from whole batches. One worker
is the plain loop in the caller's thread, with no pool at all.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import accumulate
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def in_batches(
    work: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int,
    batch: int | Sequence[int],
    tick: Callable[[], None],
) -> Generator[list[R], None, None]:
    """``work(item)`` for every item, yielded as consecutive batches in input order: of
    ``batch`` items each, or of the given sizes (which add up to ``len(items)``).

    Up to ``workers`` items are worked on at once and the pool runs ahead of the batch being
    yielded, so it stays busy while the caller scores one. ``tick`` runs in the caller's thread
    once per finished item, in completion order. The first error in input order is raised when
    its batch is due, as the sequential loop would raise it; items not started by then are
    cancelled. Close the iterator (``contextlib.closing``) when leaving it early, so the pool
    stops there rather than when the iterator is collected.
    """
    bounds = _bounds(len(items), batch)
    if workers <= 1:
        for start, end in bounds:
            out = []
            for item in items[start:end]:
                out.append(work(item))
                tick()
            yield out
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="eval-answer") as pool:
        futures = [pool.submit(work, item) for item in items]
        pending: set[Future[R]] = set(futures)

        def settle(done: set[Future[R]]) -> None:
            pending.difference_update(done)
            for f in done:
                if f.exception() is None:  # a failed item never ticked in the sequential loop
                    tick()

        try:
            for start, end in bounds:
                due = futures[start:end]
                while not all(f.done() for f in due):
                    settle(wait(pending, return_when=FIRST_COMPLETED).done)
                settle({f for f in pending if f.done()})
                yield [f.result() for f in due]
        finally:
            for f in futures:
                f.cancel()


def _bounds(n: int, batch: int | Sequence[int]) -> list[tuple[int, int]]:
    """(start, end) of each batch of ``n`` items."""
    if isinstance(batch, int):
        if batch < 1:
            raise ValueError(f"a batch of {batch} items")
        return [(start, min(n, start + batch)) for start in range(0, n, batch)]
    if sum(batch) != n or any(size < 1 for size in batch):
        raise ValueError(f"batches of {list(batch)} items do not make {n}")
    ends = list(accumulate(batch))
    return list(zip([0, *ends[:-1]], ends, strict=True))
