"""The installation's secret for keying prompt fences, made once under HOME and kept 0600.

``prompts.fence`` marks each request's passages with an HMAC of the request under this key: a
document's author cannot predict the marker without it, while the same request always renders
the same prompt (temperature-0 answers, eval caches). Losing or replacing the file only changes
the markers (and so invalidates cached generations); nothing else depends on it.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

FILE = "fence.key"
KEY_BYTES = 32


def load_fence_key(home: Path) -> bytes:
    """``HOME/fence.key``'s key, created (owner-only) by the first process that asks for it."""
    path = home / FILE
    home.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secrets.token_hex(KEY_BYTES) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return _read(path)


def _read(path: Path) -> bytes:
    # A process that lost the creation race may read before the winner wrote: wait for the line.
    for _ in range(100):
        text = path.read_text(encoding="ascii").strip()
        if len(text) == 2 * KEY_BYTES:
            return bytes.fromhex(text)
        time.sleep(0.01)
    raise ValueError(
        f"{path} does not hold a {KEY_BYTES}-byte hex key; remove it to make a new one"
    )
