"""What the ``ragtune eval`` actions share: usage errors, progress reporting, the run folder.

Apart from ``eval.cli`` so that each action's module (``cli_models``, ...) can use these while
``eval.cli`` imports the actions to register them, without an import cycle.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.runs import runs_dir
from service.settings import Settings

EXIT_USAGE = 2  # what argparse itself returns for a bad command line


class UsageError(ValueError):
    """A command-line value that cannot be used; reported on one line, exit status 2."""


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return n


def default_out(settings: Settings, dataset: Path, ids: Sequence[str], extra: Any) -> Path:
    """A folder named by what decides the rows, so rerunning the same command resumes.

    It goes under settings' ``eval.runs_dir``, else ``HOME/eval/runs``.
    """
    h = hashlib.sha256(dataset.read_bytes())
    h.update(json.dumps([sorted(ids), extra], sort_keys=True, default=str).encode())
    return runs_dir(settings) / f"{dataset.stem}-{h.hexdigest()[:8]}"


class ProgressBar:
    """A tqdm bar with ETA whose total follows the runner's plan (halving revises it)."""

    def __enter__(self) -> ProgressBar:
        from tqdm import tqdm

        self._bar = tqdm(total=0, unit="answer", desc="eval", dynamic_ncols=True)
        return self

    def update(self, done: int, total: int) -> None:
        if self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def describe(self, text: str) -> None:
        self._bar.set_description(text)

    def __exit__(self, *exc: object) -> None:
        self._bar.close()


class ProgressFile:
    """``{"done", "total", "stage"}`` in a small JSON file, for another process to poll.

    The API's sweeps (``service.sweeps``) read it while ``eval run`` works. Each write goes to a
    temporary file beside it and is renamed over it, so a reader sees the old or the new
    content, never half of one. ``done`` and ``total`` count this invocation's answers, as the
    bar does (rows resumed from an earlier run are not in them); ``stage`` is ``loading``
    (index and model), ``answering``, ``reporting`` or ``done``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done, self.total, self.stage = 0, 0, "loading"
        self._write()

    def update(self, done: int, total: int) -> None:
        self.done, self.total, self.stage = done, total, "answering"
        self._write()

    def set_stage(self, stage: str) -> None:
        self.stage = stage
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        body = {"done": self.done, "total": self.total, "stage": self.stage}
        tmp.write_text(json.dumps(body), encoding="utf-8")
        os.replace(tmp, self.path)
