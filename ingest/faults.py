"""Named crash points so tests can SIGKILL a process at an exact step of a commit.

Crash safety is only believable if it is tested by really killing the writer mid-commit; sleeping
at a named point (and announcing it through a file) lets a test do that without races. In normal
runs the environment variable is unset and a call costs one dict lookup.
"""

from __future__ import annotations

import os
import time

FAULT_ENV = "RAGTUNE_FAULT"
SIGNAL_ENV = "RAGTUNE_FAULT_SIGNAL"
_MAX_SLEEP_S = 600.0


def fault_point(name: str) -> None:
    """Park the process at ``name`` when ``RAGTUNE_FAULT`` selects it, so a test can kill it here.

    The signal file is written (and fsynced) before sleeping so the test knows the process has
    reached the point, not merely started.
    """
    if os.environ.get(FAULT_ENV) != name:
        return
    signal_path = os.environ.get(SIGNAL_ENV)
    if signal_path:
        with open(signal_path, "w", encoding="utf-8") as fh:
            fh.write(name)
            fh.flush()
            os.fsync(fh.fileno())
    # Sleep in slices: a bounded wait, so a forgotten fault env cannot hang a process forever.
    deadline = time.monotonic() + _MAX_SLEEP_S
    while time.monotonic() < deadline:
        time.sleep(0.5)
