"""A server child kept running: started, watched, restarted with a bounded backoff, stopped on close.

The ``server`` engine's llama-server is a separate process that may die (the OOM killer, a crash
on a malformed request, an operator's ``kill``). The service must not die with it, nor keep
serving errors until someone restarts it: the supervisor's thread notices the exit at once,
reports the server as down (``/readyz`` answers 503 meanwhile) and starts it again on the same
port, waiting 0.5 s, then 1 s, 2 s ... up to 30 s between attempts while it keeps failing.

The thread also *starts* every child: the parent-death signal follows the thread that forked
(``service.child``), and this thread lives exactly as long as the child should.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from service import child
from service.llm.llama_server import LlamaServerError, spawn, tail, wait_ready

log = logging.getLogger("ragtune.llm.supervisor")

BACKOFF_S = 0.5  # the first restart's delay; doubled after each failed one
MAX_BACKOFF_S = 30.0
STABLE_S = 60.0  # a child up this long resets the backoff: its next death is a fresh failure
_POLL_S = 0.1  # how often the running child is looked at


class ManagedServer:
    """Run ``cmd`` until ``close()``; healthy while the child runs and ``health_url`` answered."""

    def __init__(
        self, cmd: list[str], health_url: str, *, name: str, threads: int, startup_s: float = 120.0
    ) -> None:
        self.cmd = cmd
        self.health_url = health_url
        self.name = name
        self._threads = threads
        self._startup_s = startup_s
        self._tmp = tempfile.TemporaryDirectory(prefix="ragtune-server-")
        self.log_path = Path(self._tmp.name) / "server.log"
        self.restarts = 0  # children started after the first
        self._proc: subprocess.Popen[bytes] | None = None
        self._healthy = threading.Event()
        self._started = threading.Event()
        self._stop = threading.Event()
        self._error: LlamaServerError | None = None
        self._thread = threading.Thread(target=self._run, name=f"supervise-{name}", daemon=True)

    @property
    def pid(self) -> int | None:
        """The running child's pid (None between a death and the restart)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def healthy(self) -> bool:
        proc = self._proc
        return self._healthy.is_set() and proc is not None and proc.poll() is None

    def start(self) -> None:
        """Start the child and wait until it is up; the first failure is raised, not retried
        (a wrong model or flag would fail the same way forever)."""
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            self.close()
            raise self._error

    def close(self) -> None:
        """Stop the child and the supervision; returns once the child is reaped."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._tmp.cleanup()

    def _run(self) -> None:
        failures = 0
        while True:
            proc = self._proc = spawn(self.cmd, self.log_path, self._threads)
            up_since = None
            try:
                wait_ready(
                    proc,
                    self.health_url,
                    self.log_path,
                    self._startup_s,
                    name=self.name,
                    stop=self._stop,
                )
            except LlamaServerError as e:
                if not self._started.is_set():
                    self._error = e
            else:
                up_since = time.monotonic()
                self._healthy.set()
                log.info("%s up on %s (pid %d)", self.name, self.health_url, proc.pid)
            self._started.set()
            while up_since is not None and proc.poll() is None and not self._stop.wait(_POLL_S):
                pass
            self._healthy.clear()
            child.stop(proc)
            if self._stop.is_set() or self._error is not None:
                return
            if up_since is not None and time.monotonic() - up_since >= STABLE_S:
                failures = 0
            delay = min(MAX_BACKOFF_S, BACKOFF_S * 2**failures)
            failures += 1
            log.warning(
                "%s (pid %d) exited with %s; restarting in %.1f s: %s",
                self.name,
                proc.pid,
                proc.returncode,
                delay,
                tail(self.log_path, 500),
            )
            if self._stop.wait(delay):
                return
            self.restarts += 1
