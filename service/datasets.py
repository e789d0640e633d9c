"""Evaluation datasets the API can start sweeps on: the ``*.jsonl`` files in ``HOME/eval/datasets``.

``service`` may not import ``eval``, and the dataset format has one definition, the loader
``eval run`` uses (``eval.dataset.load_dataset``). So files are checked by that loader in a
short-lived ``python -m eval.dataset FILE...`` (one JSON verdict per file) rather than by a
second copy of its rules here. A listing caches each verdict by the file's size and mtime, so
only new or changed files cost a check.

A dataset id is its file name, ``[A-Za-z0-9._-]+.jsonl``: never a path, so no request reaches
outside the folder. Messages sent to clients have server paths removed (``scrub``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from service.settings import Settings

NAME = re.compile(r"[A-Za-z0-9._-]+\.jsonl")
CHECK_TIMEOUT_S = 120.0
CODE_ROOT = Path(__file__).resolve().parents[1]  # where service (and eval beside it) are
# An absolute path's directories (not a URL's: no scheme, host or port before it).
_DIRS = re.compile(r"(?<![\w:/.])(?:/[\w.@+~-]+)+/")


class DatasetError(ValueError):
    """A dataset name or file that cannot be used; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.param = status, param


def scrub(text: str) -> str:
    """``text`` with the directories of absolute paths removed (``/srv/x/dev.jsonl`` -> ``dev.jsonl``)."""
    return _DIRS.sub("", text)


def datasets_dir(settings: Settings) -> Path:
    return settings.home / "eval" / "datasets"


def child_env() -> dict[str, str]:
    """This environment, with this checkout first on the path: children run our ``eval``."""
    path = os.pathsep.join(p for p in (str(CODE_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def check_files(paths: list[Path]) -> list[dict[str, Any]]:
    """The loader's verdict on each of ``paths``: ``{"cases": n}`` or ``{"error": message}``."""
    if not paths:
        return []
    proc = subprocess.run(
        [sys.executable, "-m", "eval.dataset", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
        env=child_env(),
        check=False,
    )
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or len(lines) != len(paths):
        raise RuntimeError(f"dataset check failed ({proc.returncode}): {scrub(proc.stderr[-500:])}")
    return [json.loads(line) for line in lines]


class Datasets:
    """The dataset folder of one service: listed, checked, added to."""

    def __init__(self, settings: Settings) -> None:
        self.root = datasets_dir(settings)
        self.max_bytes = settings.service.max_dataset_bytes
        self._verdicts: dict[tuple[str, int, int], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        """The file of dataset ``name``; ``DatasetError`` (400 or 404) unless it is one."""
        if not NAME.fullmatch(name) or name.startswith("."):
            raise DatasetError(
                f"'{name}' is not a dataset name ([A-Za-z0-9._-]+.jsonl)", param="name"
            )
        path = self.root / name
        if not path.is_file():
            raise DatasetError(f"no dataset '{name}'", 404, "name")
        return path

    def entries(self) -> list[dict[str, Any]]:
        """Every dataset with its case count, or the loader's complaint; by name."""
        self.root.mkdir(parents=True, exist_ok=True)
        files = sorted(
            p for p in self.root.iterdir() if NAME.fullmatch(p.name) and p.name[0] != "."
        )
        with self._lock:
            keys = {}
            for p in files:
                with contextlib.suppress(OSError):
                    st = p.stat()
                    keys[p] = (p.name, st.st_size, st.st_mtime_ns)
            todo = [p for p, key in keys.items() if key not in self._verdicts]
            for p, verdict in zip(todo, check_files(todo), strict=True):
                self._verdicts[keys[p]] = verdict
            return [self._entry(p.name, self._verdicts[key]) for p, key in keys.items()]

    def add(self, name: str, content: bytes) -> dict[str, Any]:
        """Store ``content`` as dataset ``name`` once the loader accepts it; never replaces one."""
        if not NAME.fullmatch(name) or name.startswith("."):
            raise DatasetError(
                f"'{name}' is not a dataset name ([A-Za-z0-9._-]+.jsonl)", param="name"
            )
        if len(content) > self.max_bytes:
            raise DatasetError(f"dataset larger than {self.max_bytes} bytes", 413, "file")
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / name
        taken = DatasetError(f"dataset '{name}' exists already (pick another name)", 409, "name")
        if target.exists():
            raise taken
        with self._lock, tempfile.TemporaryDirectory(dir=self.root, prefix=".upload-") as tmp:
            staged = Path(tmp) / name  # the loader's message names the file as the client did
            staged.write_bytes(content)
            (verdict,) = check_files([staged])
            if "error" in verdict:
                raise DatasetError(scrub(verdict["error"]))
            try:
                os.link(staged, target)  # unlike a rename, never replaces an existing file
            except FileExistsError:
                raise taken from None
            st = target.stat()
            self._verdicts[(name, st.st_size, st.st_mtime_ns)] = verdict
        return self._entry(name, verdict)

    @staticmethod
    def _entry(name: str, verdict: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": name, "object": "eval.dataset", "cases": verdict.get("cases")}
        out["path_hint"] = name
        if "error" in verdict:
            out["error"] = scrub(verdict["error"])
        return out
