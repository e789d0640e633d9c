"""Named fault points so tests can crash, fail or fill the disk at an exact step of a commit.

Crash safety is only believable if it is tested by really killing the writer mid-commit; sleeping
at a named point (and announcing it through a file) lets a test do that without races. The same
points can raise an ``OSError`` (``RAGTUNE_FAULT=commit-tmp-written:ENOSPC``, or ``EIO``), as a
full or failing disk would, or fill the file system of the signal file (``:fill``) so that the
next write really fails, SQLite's included. ``:once`` parks only the first process to get there
(a restarted worker that reaches it again carries on). In normal runs the environment variable is unset and
a call costs one dict lookup.
"""

from __future__ import annotations

import errno
import os
import time

FAULT_ENV = "RAGTUNE_FAULT"
SIGNAL_ENV = "RAGTUNE_FAULT_SIGNAL"
_MAX_SLEEP_S = 600.0
_FILL_BLOCK = 1 << 16


def fault_point(name: str) -> None:
    """Act at ``name`` when ``RAGTUNE_FAULT`` selects it: park, raise an errno, or fill the disk.

    ``name`` parks the process so a test can kill it here; the signal file is written (and
    fsynced) before sleeping so the test knows the process has reached the point, not merely
    started. ``name:once`` parks like ``name`` unless the signal file exists already: a process
    that replaces a killed one (a restarted Ray actor) carries on. ``name:ENOSPC`` (any errno
    name) raises that ``OSError``. ``name:fill`` writes the signal file until its file system is
    full, then carries on.
    """
    point, _, action = os.environ.get(FAULT_ENV, "").partition(":")
    if point != name:
        return
    signal_path = os.environ.get(SIGNAL_ENV)
    if action == "fill":
        if not signal_path:
            raise RuntimeError(f"{FAULT_ENV}={name}:fill needs {SIGNAL_ENV}: the file to grow")
        _fill(signal_path)
        return
    if action == "once":
        if not signal_path:
            raise RuntimeError(f"{FAULT_ENV}={name}:once needs {SIGNAL_ENV}: the file it leaves")
        if os.path.exists(signal_path):
            return
    elif action:
        code = getattr(errno, action)
        raise OSError(code, os.strerror(code), f"fault point {name}")
    if signal_path:
        with open(signal_path, "w", encoding="utf-8") as fh:
            fh.write(name)
            fh.flush()
            os.fsync(fh.fileno())
    # Sleep in slices: a bounded wait, so a forgotten fault env cannot hang a process forever.
    deadline = time.monotonic() + _MAX_SLEEP_S
    while time.monotonic() < deadline:
        time.sleep(0.5)


def _fill(path: str) -> None:
    """Grow ``path`` until its file system refuses another byte (meant for a small tmpfs)."""
    block = b"\0" * _FILL_BLOCK
    with open(path, "ab", buffering=0) as fh:
        while len(block):
            try:
                fh.write(block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                block = block[: len(block) // 2]  # top up the last partial block too
