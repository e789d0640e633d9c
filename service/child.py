"""Child processes that die with the process that started them: ``python -m MODULE`` or a program
behind a parent-death signal.

Anything heavy this service starts (a ``llama_cpp.server`` for the local judge, llama.cpp's
``llama-server`` for the ``server`` engine, an evaluation sweep) runs as a child process, and must not outlive us: a parent killed outright (SIGKILL, the
OOM killer) runs no exit code, so the child asks Linux to send it SIGTERM when its parent dies
(``prctl(PR_SET_PDEATHSIG)``) and only then runs the module. It is set in the child itself, by a
small ``-c`` launcher, so nothing runs between fork and exec in this (threaded) process. A program
is ``execv``'d by the launcher after the ``prctl``: the signal survives ``execve`` (for anything
but a set-user-ID program), so the program keeps the launcher's pid and its parent-death signal.

The signal follows the *thread* that forked, not the process: start children from a thread that
lives as long as they should (the main thread, the event loop's thread), never from a pool
worker that may exit while the child runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

STOP_GRACE_S = 10.0
PARENT_ENV = "RAGTUNE_PARENT_PID"

_LAUNCH = (
    "import ctypes, os, runpy, signal, sys\n"
    "how, target = sys.argv.pop(1), sys.argv.pop(1)\n"
    "if sys.platform == 'linux':\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)\n"
    f"    if os.getppid() != int(os.environ['{PARENT_ENV}']):\n"
    "        sys.exit(target + ': the process that started it is gone')\n"
    "if how == 'exec':\n"
    "    os.execv(target, [target, *sys.argv[1:]])\n"
    "runpy.run_module(target, run_name='__main__', alter_sys=True)\n"
)


def command(module: str, args: Sequence[str]) -> list[str]:
    """argv running ``python -m module args...`` with this interpreter, behind the launcher."""
    return [sys.executable, "-c", _LAUNCH, "module", module, *args]


def program(path: str, args: Sequence[str]) -> list[str]:
    """argv running the program at ``path`` with ``args``, behind the launcher."""
    return [sys.executable, "-c", _LAUNCH, "exec", path, *args]


def environment(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``base`` (default: this process's environment) with ``extra`` and this process's pid,
    which the launcher compares with its parent (a parent already gone is never signalled)."""
    return {**(os.environ if base is None else base), **extra, PARENT_ENV: str(os.getpid())}


def stop(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; returns once the child is reaped."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
