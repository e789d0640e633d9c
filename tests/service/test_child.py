"""``service.child``: a ``python -m MODULE`` child that never outlives the process that started it
(the launcher ``llama_server`` and the API's sweeps share)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service import child
from tests.conftest import REPO, assert_child_dies_with, wait_until

# Starts a child that would sleep a minute, prints its pid, then waits to be killed.
PARENT = """
import subprocess, sys, time
from service import child
proc = subprocess.Popen(
    child.command("timeit", ["-n", "1", "-r", "1", "import time; time.sleep(60)"]),
    env=child.environment(),
)
print(proc.pid, flush=True)
time.sleep(120)
"""


def test_a_child_runs_the_module_with_its_arguments_and_stops() -> None:
    proc = subprocess.Popen(
        child.command("timeit", ["-n", "1", "-r", "1", "import sys; print(sys.argv)"]),
        env=child.environment(),
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "1 loop" in out
    sleeper = subprocess.Popen(
        child.command("timeit", ["-n", "1", "-r", "1", "import time; time.sleep(60)"]),
        env=child.environment(),
    )
    child.stop(sleeper, grace_s=5)
    assert sleeper.returncode == -signal.SIGTERM


# The same parent, starting a program (llama-server is one) instead of a module.
PROGRAM_PARENT = PARENT.replace(
    'child.command("timeit", ["-n", "1", "-r", "1", "import time; time.sleep(60)"])',
    'child.program("/bin/sleep", ["60"])',
)


@pytest.mark.integration
@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
@pytest.mark.parametrize(
    ("script", "runs"), [(PARENT, "python"), (PROGRAM_PARENT, "sleep")], ids=["module", "program"]
)
def test_the_child_dies_with_a_parent_killed_outright(script: str, runs: str) -> None:
    """A program is exec'd by the launcher after its prctl: the signal must survive the exec."""
    assert ("child.program" in script) == (runs == "sleep")  # the replacement above took
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    time.sleep(0.5)  # past the launcher's prctl
    wait_until(lambda: Path(f"/proc/{pid}/exe").resolve().name.startswith(runs), 30, "the exec")
    assert_child_dies_with(parent, pid, "the child")
