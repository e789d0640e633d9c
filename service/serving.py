"""The serving configuration the eval loop promotes: versioned in the data directory.

``HOME/serving/vNNNN.json`` holds each promoted configuration (the answering parameters plus where
it came from); ``HOME/serving/CURRENT`` names the one in force and is replaced atomically. The
service re-reads it when the file changes, so a promotion or rollback applies to the next request
without a restart. With no promotion yet, the settings' own ``rag`` section serves.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from service import tunables
from service.settings import RagSettings


class ServingError(ValueError):
    pass


class ServingStore:
    def __init__(self, home: Path) -> None:
        self.dir = home / "serving"
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None  # CURRENT's (inode, mtime_ns, size)
        self._cached: tuple[int, dict[str, Any]] | None = None

    # --- writing (ragtune eval promote / rollback) ----------------------------------------

    def promote(self, params: dict[str, Any], provenance: dict[str, Any]) -> int:
        """Record ``params`` (a partial ``rag`` table) as the current version; returns it."""
        try:
            tunables.merge(RagSettings(), params)  # validate before anything is written
        except tunables.TunableError as e:
            raise ServingError(f"not promotable: {e}") from e
        self.dir.mkdir(parents=True, exist_ok=True)
        version = max(self.versions(), default=0) + 1
        record = {"version": version, "created": time.time(), "params": params, **provenance}
        _atomic_write(self._path(version), json.dumps(record, indent=2))
        self._point(version)
        return version

    def rollback(self) -> int:
        """Make the version before the current one current again (0: back to the settings)."""
        current = self.current_version()
        if current == 0:
            raise ServingError("nothing to roll back: no promoted configuration is in force")
        earlier = [v for v in self.versions() if v < current]
        target = max(earlier, default=0)
        self._point(target)
        return target

    def _point(self, version: int) -> None:
        _atomic_write(self.dir / "CURRENT", f"{version}\n")

    # --- reading ---------------------------------------------------------------------------

    def versions(self) -> list[int]:
        if not self.dir.is_dir():
            return []
        return sorted(int(p.stem[1:]) for p in self.dir.glob("v[0-9][0-9][0-9][0-9].json"))

    def record(self, version: int) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._path(version).read_text())
            return data
        except (OSError, ValueError) as e:
            raise ServingError(f"serving configuration v{version} unreadable: {e}") from e

    def history(self) -> list[dict[str, Any]]:
        current = self.current_version()
        return [{**self.record(v), "current": v == current} for v in self.versions()]

    def current_version(self) -> int:
        try:
            return int((self.dir / "CURRENT").read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except ValueError as e:
            raise ServingError(f"{self.dir / 'CURRENT'} is corrupt: {e}") from e

    def effective(self, base: RagSettings) -> tuple[RagSettings, int]:
        """``base`` with the current promotion applied, and its version (0: none).

        Cheap on the request path: one stat() unless CURRENT changed since the last call.
        """
        try:
            st = os.stat(self.dir / "CURRENT")
            seen: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            seen = None
        with self._lock:
            if seen != self._seen or self._cached is None:
                version = self.current_version() if seen else 0
                params = self.record(version)["params"] if version else {}
                self._seen, self._cached = seen, (version, params)
            version, params = self._cached
        return apply_params(base, params), version

    def _path(self, version: int) -> Path:
        return self.dir / f"v{version:04d}.json"


def apply_params(base: RagSettings, params: dict[str, Any]) -> RagSettings:
    """``base`` with promoted ``params``: a partial ``rag`` table, or an older flat one."""
    return tunables.merge(base, params)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
