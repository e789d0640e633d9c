"""The gate: N holders at a time (one by default), bounded queue, FIFO turns, wait timeout, cancel while queued."""

from __future__ import annotations

import threading
import time

import pytest

from service.llm.base import LLMBusy
from service.llm.gate import Gate


def test_queue_size_zero_refuses_at_once() -> None:
    gate = Gate(queue_size=0, timeout_s=10)
    assert gate.acquire()
    t0 = time.monotonic()
    with pytest.raises(LLMBusy, match="queue_size=0"):
        gate.acquire()
    assert time.monotonic() - t0 < 0.1
    gate.release()
    assert gate.acquire()


def test_wait_times_out() -> None:
    gate = Gate(queue_size=1, timeout_s=0.2)
    gate.acquire()
    t0 = time.monotonic()
    with pytest.raises(LLMBusy, match="waited"):
        gate.acquire()
    assert 0.15 < time.monotonic() - t0 < 1.0
    assert gate.waiting == 0


def test_waiters_get_turns_in_arrival_order() -> None:
    gate = Gate(queue_size=5, timeout_s=5)
    gate.acquire()
    order: list[int] = []

    def worker(i: int) -> None:
        gate.acquire()
        order.append(i)
        gate.release()

    threads = []
    for i in range(4):
        t = threading.Thread(target=worker, args=(i,))
        t.start()
        threads.append(t)
        while gate.waiting < i + 1:  # arrival order is the order they queued in
            time.sleep(0.005)
    gate.release()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3]


def test_full_queue_refuses_the_next() -> None:
    gate = Gate(queue_size=1, timeout_s=5)
    gate.acquire()

    def take_and_give_back() -> None:
        gate.acquire()
        gate.release()

    waiter = threading.Thread(target=take_and_give_back)
    waiter.start()
    while gate.waiting < 1:
        time.sleep(0.005)
    with pytest.raises(LLMBusy, match="1 request"):
        gate.acquire()
    gate.release()
    waiter.join(5)
    assert not waiter.is_alive()


def test_cancel_while_queued_leaves_the_queue() -> None:
    gate = Gate(queue_size=2, timeout_s=5)
    gate.acquire()
    cancel = threading.Event()
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(gate.acquire(cancel)))
    t.start()
    while gate.waiting < 1:
        time.sleep(0.005)
    cancel.set()
    t.join(2)
    assert result == [False]
    assert gate.waiting == 0
    gate.release()
    assert gate.acquire()  # the gate still works


def test_slots_admit_that_many_holders_then_queue_then_refuse() -> None:
    """The llama-server engine's gate: ``parallel`` generate at once, ``queue_size`` wait."""
    gate = Gate(queue_size=1, timeout_s=5, slots=2)
    assert gate.acquire() and gate.acquire()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(gate.acquire()))
    waiter.start()
    deadline = time.monotonic() + 5
    while gate.waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gate.waiting == 1 and not got
    with pytest.raises(LLMBusy, match="queue_size=1"):
        gate.acquire()
    gate.release()
    waiter.join(5)
    assert got == [True]
