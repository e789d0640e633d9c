"""A ``python -m llama_cpp.server`` child on a private loopback port, for as long as a block runs.

llama-cpp-python ships an OpenAI-compatible server; run as a child process it gives a GGUF the
same wire protocol as vLLM, with JSON-schema constrained output (a grammar built from
``response_format.schema``). The eval loop's local judge runs on it, and the tests use it as the
real server behind the OpenAI-compatible adapter. The child is bound to 127.0.0.1 on a free port,
its thread count is explicit (an idle llama.cpp spins, and two busy ones on the same cores slow
each other down fifty-fold), and it is stopped when the block exits, whatever happened in it,
or by the kernel when this process dies without running its exit code (``service.child``).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
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


def _tail(log: Path, chars: int = 2000) -> str:
    try:
        return log.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


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
    """Serve ``model`` while the block runs; yields the base URL (``http://127.0.0.1:PORT/v1``).

    ``alias`` is the model id clients send and ``/v1/models`` lists (llama_cpp.server's default is
    the file path). The log goes to ``log``, or to a temporary file removed afterwards; its tail is
    in the error when the server exits early or is not up within ``startup_s``.
    """
    if not model.is_file():
        raise LlamaServerError(f"no model file at {model}")
    with contextlib.ExitStack() as stack:
        if log is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="ragtune-llama-"))
            log = Path(tmp) / "server.log"
        port = free_port()
        cmd = child.command("llama_cpp.server", [
            "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads),
        ])  # fmt: skip
        if alias:
            cmd += ["--model_alias", alias]
        env = child.environment(OMP_NUM_THREADS=str(threads))
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        stack.callback(child.stop, proc)
        base = f"http://127.0.0.1:{port}/v1"
        _wait_ready(proc, base, log, startup_s)
        yield base


def _wait_ready(proc: subprocess.Popen[bytes], base: str, log: Path, startup_s: float) -> None:
    deadline = time.monotonic() + startup_s
    while True:
        if proc.poll() is not None:
            raise LlamaServerError(f"llama_cpp.server exited with {proc.returncode}: {_tail(log)}")
        try:
            if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise LlamaServerError(f"llama_cpp.server not up after {startup_s:.0f} s: {_tail(log)}")
        time.sleep(0.2)
