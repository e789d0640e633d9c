"""``service.llm.llama_server``: a llama_cpp.server child that starts, reports failures with its
log, and never outlives the process that started it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.llm.llama_server import LlamaServerError, llama_server
from tests.conftest import REPO, assert_child_dies_with, base_gguf


def test_a_missing_or_broken_model_fails_with_the_servers_log(tmp_path: Path) -> None:
    missing = pytest.raises(LlamaServerError, match="no model file")
    with missing, llama_server(tmp_path / "missing.gguf", n_ctx=512, threads=1):
        pass
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf" * 100)
    with (
        pytest.raises(LlamaServerError, match="exited with"),
        llama_server(junk, n_ctx=512, threads=1, startup_s=60),
    ):
        pass


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # field 4 of stat: the parent pid
            out.append(int(stat.parent.name))
    return out


PARENT = """
import sys, time
from pathlib import Path
from service.llm.llama_server import llama_server
with llama_server(Path(sys.argv[1]), n_ctx=256, threads=1) as base:
    print(base, flush=True)
    time.sleep(600)
"""


@pytest.mark.integration
@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_the_server_dies_with_a_parent_killed_outright() -> None:
    """SIGKILL gives the parent no chance to stop its child: the kernel must (regression: a
    killed benchmark left a 1.5B server spinning on both cores)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(base_gguf())],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().startswith("http://127.0.0.1:")
        (child,) = _children(parent.pid)
    except BaseException:
        parent.kill()
        parent.wait()
        raise
    assert_child_dies_with(parent, child, "llama_cpp.server")
