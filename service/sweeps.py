"""Evaluation sweeps started over the API: ``ragtune eval run`` in a child process, one at a time.

The console starts a sweep with a dataset and axes; the service writes the axes as a sweep file
into the run's folder and runs ``python -m eval.cli eval run --home --dataset --sweep --out
--progress-file`` as a child (``service.child``: it dies with the service). So the sweep never
blocks the event loop, its model is its own, ``service`` does not import ``eval``, and the run
folder is exactly what the command would write (listed by ``GET /v1/eval/runs`` when done).

Before the child starts, the same command line with ``--check`` validates dataset, axes and search
with ``eval``'s own code (an unknown axis is a 400 naming it), in a second or two.

The child answers with this service's settings (each section passed as ``RAGTUNE_<SECTION>``
JSON, since tests and ``--config`` build settings the child could not find), but with
``eval.sweep_threads`` LLM threads: the trade-off between a fast sweep and a responsive service
on the same cores is that setting's. A sweep's state lives in this process (and its progress in
the run folder): a page reload sees it, a restart of the service does not.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from service import child, runs
from service.datasets import Datasets, child_env, scrub
from service.settings import Settings

SWEEP_FILE, PROGRESS_FILE, LOG_FILE = "sweep.toml", "progress.json", "sweep.log"
FINAL = ("succeeded", "failed", "cancelled")
KEEP_FINISHED = 50
CHECK_TIMEOUT_S = 120.0
_PREFIX = "ragtune eval run: "


class SweepError(ValueError):
    """A sweep that cannot start (or stop); rendered as an API error with ``status``."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def toml_value(v: Any) -> str:
    """A scalar or list as TOML (JSON's strings and integers are TOML's)."""
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if not math.isfinite(v):
            raise SweepError(400, f"{v!r} is not a finite number", param="axes")
        return repr(v)
    if isinstance(v, int | str):
        return json.dumps(v, ensure_ascii=False)
    raise SweepError(400, f"{v!r}: values are strings, numbers or booleans", param="axes")


def sweep_toml(
    axes: Mapping[str, Any], search: Mapping[str, Any] | None, seed: int | None = None
) -> str:
    """The sweep file for ``axes`` ({path: values}) and ``search``, as ``eval run`` reads it."""
    lines = [] if seed is None else [f"seed = {toml_value(seed)}", ""]
    lines += ["[axes]"] + [f"{json.dumps(k)} = {toml_value(v)}" for k, v in axes.items()]
    if search:
        lines += ["", "[search]"] + [
            f"{json.dumps(k)} = {toml_value(v)}" for k, v in search.items()
        ]
    return "\n".join(lines) + "\n"


def _reveal(o: Any) -> Any:
    if isinstance(o, SecretStr):
        return o.get_secret_value()
    if isinstance(o, Path):  # the child runs elsewhere (in the datasets folder)
        return str(o.absolute())
    raise TypeError(f"cannot pass {type(o).__name__} to a child")


def child_settings_env(settings: Settings) -> dict[str, str]:
    """Environment giving a child ``settings`` (minus ``home``, a flag, and ``service``)."""
    env = {k: v for k, v in child_env().items() if not k.startswith("RAGTUNE_")}
    for section, values in settings.model_dump(exclude={"home", "service"}).items():
        env[f"RAGTUNE_{section.upper()}"] = json.dumps(values, default=_reveal)
    threads = settings.eval.sweep_threads or settings.llm.threads
    env["RAGTUNE_LLM__THREADS"] = str(threads)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def read_progress(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"done": 0, "total": 0, "stage": None}
    return {k: data.get(k) for k in ("done", "total", "stage")}


def log_tail(path: Path, chars: int = 2000) -> str:
    """The end of a child's log, progress bar redraws dropped and server paths removed."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[-4 * chars :]
    except OSError:
        return ""
    lines = [ln.split("\r")[-1] for ln in text.splitlines()]
    return scrub("\n".join(ln for ln in lines if ln.strip()))[-chars:]


@dataclass
class Sweep:
    id: str
    dataset: str
    run_id: str
    folder: Path
    proc: subprocess.Popen[bytes]
    created: int = field(default_factory=lambda: int(time.time()))
    status: str = "queued"
    finished: int | None = None
    error: str | None = None
    cancelling: bool = False

    def refresh(self) -> dict[str, Any]:
        """Status from the child and its progress file; returns the progress read."""
        progress = read_progress(self.folder)
        if self.status in FINAL:
            return progress
        code = self.proc.poll()
        if code is None:
            self.status = "queued" if progress["stage"] in (None, "loading") else "running"
            return progress
        self.finished = int(time.time())
        if self.cancelling:
            self.status = "cancelled"
        elif code == 0:
            self.status = "succeeded"
        else:
            self.status = "failed"
            self.error = f"eval run exited with {code}: {log_tail(self.folder / LOG_FILE)}"
        return progress

    def as_dict(self) -> dict[str, Any]:
        progress = self.refresh()
        report = self.status == "succeeded" and (self.folder / runs.REPORT).is_file()
        return {
            "id": self.id,
            "object": "eval.sweep",
            "status": self.status,
            "dataset": self.dataset,
            "run_id": self.run_id,
            "created": self.created,
            "finished": self.finished,
            **progress,
            "report_url": f"/v1/eval/runs/{quote(self.run_id, safe='')}/report" if report else None,
            "error": self.error,
        }


class SweepRunner:
    """The sweeps of one service: started one at a time, polled, cancelled, stopped at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.datasets = Datasets(settings)
        self._sweeps: dict[str, Sweep] = {}
        self._starting = asyncio.Lock()

    def active(self) -> Sweep | None:
        for sweep in self._sweeps.values():
            sweep.refresh()
            if sweep.status not in FINAL:
                return sweep
        return None

    def get(self, sweep_id: str) -> Sweep:
        if sweep_id not in self._sweeps:
            raise SweepError(404, f"no sweep '{sweep_id}'", param="id")
        return self._sweeps[sweep_id]

    def entries(self) -> list[dict[str, Any]]:
        return [s.as_dict() for s in sorted(self._sweeps.values(), key=lambda s: -s.created)]

    def command(self, dataset: Path, sweep: Path, folder: Path, limit: int | None) -> list[str]:
        # Run in the datasets folder, the dataset by its name: results.json records no server path.
        args = ["eval", "run", "--home", str(self.settings.home.absolute()), "--dataset"]
        args += [dataset.name, "--sweep", str(sweep), "--out", str(folder)]
        args += ["--progress-file", str(folder / PROGRESS_FILE)]
        return args + (["--limit", str(limit)] if limit else [])

    def prepare(
        self, dataset: str, toml: str, limit: int | None
    ) -> tuple[str, Path, list[str], dict[str, str]]:
        """Check the sweep with ``eval run --check``, then write it into its run folder."""
        path = self.datasets.path(dataset)
        h = hashlib.sha256(path.read_bytes())
        h.update(json.dumps([toml, limit]).encode())
        run_id = f"{path.stem}-{h.hexdigest()[:8]}"  # the same sweep again resumes its folder
        folder = runs.runs_dir(self.settings).resolve() / run_id
        env = child_settings_env(self.settings)
        with tempfile.TemporaryDirectory(prefix="ragtune-sweep-") as tmp:
            (Path(tmp) / SWEEP_FILE).write_text(toml, encoding="utf-8")
            args = [*self.command(path, Path(tmp) / SWEEP_FILE, folder, limit), "--check"]
            checked = subprocess.run(
                [sys.executable, "-m", "eval.cli", *args],
                capture_output=True,
                text=True,
                env=env,
                cwd=path.parent,
                timeout=CHECK_TIMEOUT_S,
                check=False,
            )
        if checked.returncode != 0:
            raise _check_error(checked.returncode, checked.stderr)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SWEEP_FILE).write_text(toml, encoding="utf-8")
        (folder / PROGRESS_FILE).unlink(missing_ok=True)  # an earlier sweep's, in this folder
        return run_id, folder, self.command(path, folder / SWEEP_FILE, folder, limit), env

    async def start(self, dataset: str, toml: str, limit: int | None) -> Sweep:
        """Check and start a sweep; 409 while another one runs."""
        async with self._starting:
            if (running := self.active()) is not None:
                raise SweepError(409, f"sweep {running.id} is still running", code="sweep_running")
            run_id, folder, args, env = await asyncio.to_thread(self.prepare, dataset, toml, limit)
            # Started from the event loop's thread, which lives as long as the service: the
            # parent-death signal follows the thread that forks (service.child).
            with (folder / LOG_FILE).open("wb") as log:
                proc = subprocess.Popen(
                    child.command("eval.cli", args),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=child.environment(env),
                    cwd=self.datasets.root,
                )
            sweep = Sweep(f"sweep-{secrets.token_hex(6)}", dataset, run_id, folder, proc)
            self._sweeps[sweep.id] = sweep
            self._prune()
            return sweep

    def cancel(self, sweep_id: str) -> Sweep:
        """Stop a sweep's child; the rows it wrote stay, and the same sweep resumes from them."""
        sweep = self.get(sweep_id)
        sweep.refresh()
        if sweep.status in FINAL:
            raise SweepError(409, f"sweep {sweep_id} has {sweep.status} already", code="finished")
        sweep.cancelling = True
        child.stop(sweep.proc)
        sweep.refresh()
        return sweep

    def close(self) -> None:
        """Stop every running child (the service is shutting down)."""
        for sweep in self._sweeps.values():
            if sweep.proc.poll() is None:
                sweep.cancelling = True
                child.stop(sweep.proc)
            sweep.refresh()

    def _prune(self) -> None:
        done = sorted(
            (s for s in self._sweeps.values() if s.status in FINAL), key=lambda s: s.created
        )
        for s in done[: max(0, len(done) - KEEP_FINISHED)]:
            del self._sweeps[s.id]


def _check_error(code: int, stderr: str) -> SweepError:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    said = [ln[len(_PREFIX) :] for ln in lines if ln.startswith(_PREFIX)]
    message = scrub(said[-1] if said else (lines[-1] if lines else f"exit status {code}"))
    if code != 2:  # not a usage error: the check itself broke
        return SweepError(500, f"checking the sweep failed: {message}")
    param = "axes" if ("axis" in message or "axes" in message) else None
    param = "search" if "search" in message else param
    return SweepError(400, message, param=param)
