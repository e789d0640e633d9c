"""Conversion worker processes with a time and memory limit per document.

Parsers of untrusted files hang, blow up memory or crash the interpreter; none of that may stop an
ingest run. Each worker is a separate spawned process with an address-space limit; the parent
kills a worker whose document runs past its deadline and starts a fresh one. Results stream back
through a bounded queue fed by a dispatcher thread, so conversion runs ahead while the caller
embeds (the encoder releases the GIL).
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from ingest.convert import convert_bytes
from ingest.model import ConversionError, Document, UnsupportedFile


@dataclass(frozen=True)
class Converted:
    path: Path
    content_hash: str
    document: Document
    seconds: float


@dataclass(frozen=True)
class Failed:
    path: Path
    content_hash: str | None
    reason: str
    skipped: bool = False  # True: not a document we handle (skip); False: broken (quarantine)


Outcome = Converted | Failed
_START_TIMEOUT_S = 60


def text_too_long(chars: int, limit: int) -> str:
    """The quarantine reason of a document whose extracted text passes ``max_text_chars``."""
    return (
        f"extracted text too long ({chars:,} characters > limit {limit:,}; ingest.max_text_chars)"
    )


def convert_path(path: Path, max_bytes: int, max_chars: int | None = None) -> Outcome:
    """Read, hash and convert one file; every failure becomes a ``Failed`` with a reason.

    The text limit is checked here, in the worker, so a small file that expands into megabytes
    of text never crosses the pipe to the parent, let alone reaches the chunker and encoder.
    """
    started = time.perf_counter()
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return Failed(path, None, file_too_large(size))
        data = path.read_bytes()
    except OSError as e:
        return Failed(path, None, f"cannot read: {e.strerror or e}")
    return convert_data(path, data, max_chars, started)


def file_too_large(size: int) -> str:
    """The quarantine reason of a file over ``ingest.max_file_mb``."""
    return f"file too large ({size / 1e6:.1f} MB > limit)"


def convert_data(
    path: Path, data: bytes, max_chars: int | None = None, started: float | None = None
) -> Outcome:
    """Hash and convert the bytes of the file at ``path`` (already read, e.g. by Ray Data)."""
    started = time.perf_counter() if started is None else started
    digest = hashlib.sha256(data).hexdigest()
    try:
        doc = convert_bytes(data, path.name)
    except UnsupportedFile as e:
        return Failed(path, digest, str(e), skipped=True)
    except ConversionError as e:
        return Failed(path, digest, str(e))
    except MemoryError:
        return Failed(path, digest, "conversion exceeded the worker memory limit")
    except RecursionError:
        return Failed(path, digest, "document nesting too deep to convert")
    except Exception as e:  # a parser bug must not stop the run: quarantine with the error
        return Failed(path, digest, f"conversion failed: {type(e).__name__}: {e}")
    if max_chars is not None and len(doc.text) > max_chars:
        return Failed(path, digest, text_too_long(len(doc.text), max_chars))
    return Converted(path, digest, doc, time.perf_counter() - started)


# A worker's task: a path it reads itself, or a path and the bytes already read from it.
Task = Path | tuple[Path, bytes]


def task_path(task: Task) -> Path:
    return task[0] if isinstance(task, tuple) else task


def _convert_task(task: str | tuple[str, bytes], max_bytes: int, max_chars: int | None) -> Outcome:
    if isinstance(task, str):
        return convert_path(Path(task), max_bytes, max_chars)
    path, data = Path(task[0]), task[1]
    if len(data) > max_bytes:
        return Failed(path, None, file_too_large(len(data)))
    return convert_data(path, data, max_chars)


def _worker_main(conn: Connection, memory_mb: int, max_bytes: int, max_chars: int | None) -> None:
    try:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # pragma: no cover - non-POSIX or hard limit lower
        pass
    conn.send("ready")
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        conn.send(_convert_task(task, max_bytes, max_chars))


class _Worker:
    def __init__(self, ctx: Any, memory_mb: int, max_bytes: int, max_chars: int | None) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_worker_main, args=(child, memory_mb, max_bytes, max_chars), daemon=True
        )
        self.proc.start()
        child.close()
        # Wait for the interpreter to start, so start-up time never counts against a document.
        if not self.conn.poll(_START_TIMEOUT_S) or self.conn.recv() != "ready":
            self.kill()
            raise RuntimeError(f"conversion worker did not start within {_START_TIMEOUT_S} s")
        self.task: Task | None = None
        self.deadline = 0.0

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


class ConversionPool:
    """Converts files in worker processes; ``imap`` yields outcomes as they finish."""

    def __init__(
        self,
        workers: int = 1,
        timeout_s: float = 120.0,
        memory_mb: int = 2048,
        max_file_mb: float = 200.0,
        max_text_chars: int | None = None,
    ) -> None:
        self._n = max(1, workers)
        self._max_chars = max_text_chars
        self._timeout = timeout_s
        self._memory_mb = memory_mb
        self._max_bytes = int(max_file_mb * 1e6)
        # spawn, not fork: the parent holds an encoder and its thread pools, which fork would copy
        # into address-space-limited children.
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []

    def imap(self, paths: Iterable[Task]) -> Iterator[Outcome]:
        """Outcomes of ``paths`` (or of ``(path, bytes)`` pairs), in the order they finish."""
        results: queue.Queue[Outcome | BaseException | None] = queue.Queue(maxsize=2 * self._n + 4)
        stop = threading.Event()
        thread = threading.Thread(
            target=self._dispatch, args=(iter(paths), results, stop), daemon=True
        )
        thread.start()
        try:
            while True:
                item = results.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a dispatcher waiting on a full queue
                try:
                    results.get_nowait()
                except queue.Empty:
                    thread.join(0.05)

    def _dispatch(
        self, paths: Iterator[Task], results: queue.Queue[Any], stop: threading.Event
    ) -> None:
        try:
            self._run(paths, results, stop)
            results.put(None)
        except BaseException as e:  # surface dispatcher failures in the consumer
            results.put(e)

    def _run(self, paths: Iterator[Task], results: queue.Queue[Any], stop: threading.Event) -> None:
        backlog: list[Task] = []  # tasks whose worker died before taking them
        exhausted = False
        while not stop.is_set():
            while len(self._workers) < self._n:
                self._workers.append(
                    _Worker(self._ctx, self._memory_mb, self._max_bytes, self._max_chars)
                )
            for w in list(self._workers):
                if w.task is not None:
                    continue
                nxt = backlog.pop() if backlog else (None if exhausted else next(paths, None))
                if nxt is None:
                    exhausted = True
                    break
                try:
                    w.conn.send(_wire(nxt))
                except OSError:  # died while idle: retry the document on a fresh worker
                    self._replace(w)
                    backlog.append(nxt)
                    continue
                w.task, w.deadline = nxt, time.monotonic() + self._timeout
            if backlog:
                continue
            busy = [w for w in self._workers if w.task is not None]
            if not busy:
                return
            wait_s = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait([w.conn for w in busy], timeout=min(wait_s, 0.5))
            for w in busy:
                outcome = self._collect(w, ready)
                if outcome is not None:
                    results.put(outcome)

    def _collect(self, w: _Worker, ready: list[Any]) -> Outcome | None:
        assert w.task is not None
        path = task_path(w.task)
        # poll(): the result may have arrived while this thread waited on a full results queue.
        if w.conn in ready or w.conn.poll():
            try:
                outcome: Outcome = w.conn.recv()
                w.task = None
                return outcome
            except (EOFError, OSError):
                self._replace(w)
                code = w.proc.exitcode
                return Failed(path, None, f"conversion worker died (exit code {code})")
        if time.monotonic() > w.deadline:
            self._replace(w)
            return Failed(path, None, f"conversion timed out after {self._timeout:g} s")
        return None

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self._workers.remove(w)

    def close(self) -> None:
        for w in self._workers:
            with contextlib.suppress(OSError):
                w.conn.send(None)
            w.proc.join(2)
            w.kill()
        self._workers.clear()

    def __enter__(self) -> ConversionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wire(task: Task) -> str | tuple[str, bytes]:
    return (str(task[0]), task[1]) if isinstance(task, tuple) else str(task)


def default_workers() -> int:
    return max(1, (os.cpu_count() or 1) - 1)
