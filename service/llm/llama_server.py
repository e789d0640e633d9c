"""llama.cpp servers as children on a private loopback port: llama-cpp-python's
``python -m llama_cpp.server`` or llama.cpp's own ``llama-server`` program.

Both give a GGUF the same wire protocol as vLLM. ``llama_cpp.server`` adds JSON-schema constrained
output (a grammar built from ``response_format.schema``): the eval loop's local judge runs on it,
and the tests use it as the real server behind the OpenAI-compatible adapter. ``llama-server``
batches concurrent requests (parallel slots, continuous batching, a prompt cache): the llamacpp
backend's ``server`` engine runs it under a supervisor (``service.llm.supervisor``). Either child
is bound to 127.0.0.1 on a free port, its thread count is explicit (an idle llama.cpp spins, and
two busy ones on the same cores slow each other down fifty-fold), and it is stopped when its owner
is done, or by the kernel when this process dies without running its exit code (``service.child``).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from service import child


class LlamaServerError(RuntimeError):
    """The server exited or did not answer in time; the message ends with its log's tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(log: Path, chars: int = 2000) -> str:
    """The end of a server's log, for error messages ("" when it cannot be read)."""
    try:
        return log.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


def llama_cpp_server_command(
    model: Path, *, port: int, n_ctx: int, threads: int, alias: str | None = None
) -> list[str]:
    """argv of ``python -m llama_cpp.server`` serving ``model`` (``alias``: the model id; its
    default is the file path)."""
    args = [
        "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads),
    ]  # fmt: skip
    return child.command("llama_cpp.server", [*args, *(["--model_alias", alias] if alias else [])])


def llama_server_command(
    binary: Path,
    model: Path,
    *,
    port: int,
    n_ctx: int,
    threads: int,
    parallel: int,
    alias: str,
    extra: Sequence[str] = (),
) -> list[str]:
    """argv of ``llama-server`` with ``parallel`` slots of ``n_ctx`` tokens each.

    Without ``--kv-unified`` (off when the slot count is given) the context is split evenly
    between the slots, so each gets the whole ``n_ctx`` a request may use. The prompt cache is
    on by default; ``--metrics`` exposes its hit counts for the benchmarks.
    """
    return child.program(str(binary), [
        "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
        "-t", str(threads), "-tb", str(threads), "-np", str(parallel), "-c", str(n_ctx * parallel),
        "--no-webui", "--metrics", "--alias", alias, *extra,
    ])  # fmt: skip


def find_llama_server(configured: Path | None) -> Path:
    """``configured``, else ``llama-server`` next to this Python (``make install``), else on PATH."""
    if configured is not None:
        candidates = [configured]
    else:
        found = shutil.which("llama-server")
        candidates = [
            Path(sys.executable).parent / "llama-server",
            *([Path(found)] if found else []),
        ]
    for path in candidates:
        if path.is_file():
            return path
    raise LlamaServerError(
        f"no llama-server program at {' or '.join(map(str, candidates)) or 'PATH'}: "
        "`make install` builds it into .venv/bin (or set llm.server_binary)"
    )


def spawn(cmd: list[str], log: Path, threads: int) -> subprocess.Popen[bytes]:
    """Start ``cmd`` (a ``service.child`` argv) with its output going to ``log``."""
    env = child.environment(OMP_NUM_THREADS=str(threads))
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_ready(
    proc: subprocess.Popen[bytes],
    url: str,
    log: Path,
    startup_s: float,
    *,
    name: str,
    stop: threading.Event | None = None,
) -> None:
    """Return once ``url`` answers 200; raise ``LlamaServerError`` if the server exits, is not up
    within ``startup_s`` or ``stop`` is set."""
    deadline = time.monotonic() + startup_s
    while True:
        if proc.poll() is not None:
            raise LlamaServerError(f"{name} exited with {proc.returncode}: {tail(log)}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise LlamaServerError(f"{name} not up after {startup_s:.0f} s: {tail(log)}")
        if (stop or threading.Event()).wait(0.2):
            raise LlamaServerError(f"{name}: stopped while starting")


@contextlib.contextmanager
def llama_server(
    model: Path,
    *,
    n_ctx: int,
    threads: int,
    alias: str | None = None,
    log: Path | None = None,
    startup_s: float = 120.0,
) -> Iterator[str]:
    """Serve ``model`` with ``llama_cpp.server`` while the block runs; yields the base URL
    (``http://127.0.0.1:PORT/v1``).

    ``alias`` is the model id clients send and ``/v1/models`` lists. The log goes to ``log``, or
    to a temporary file removed afterwards; its tail is in the error when the server exits early
    or is not up within ``startup_s``.
    """
    if not model.is_file():
        raise LlamaServerError(f"no model file at {model}")
    with contextlib.ExitStack() as stack:
        if log is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="ragtune-llama-"))
            log = Path(tmp) / "server.log"
        port = free_port()
        cmd = llama_cpp_server_command(model, port=port, n_ctx=n_ctx, threads=threads, alias=alias)
        proc = spawn(cmd, log, threads)
        stack.callback(child.stop, proc)
        base = f"http://127.0.0.1:{port}/v1"
        wait_ready(proc, f"{base}/models", log, startup_s, name="llama_cpp.server")
        yield base
