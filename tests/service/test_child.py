"""``service.child``: a ``python -m MODULE`` child that never outlives the process that started it
(the launcher ``llama_server`` and the API's sweeps share)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from service import child
from tests.conftest import REPO, assert_child_dies_with

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


@pytest.mark.integration
@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_the_child_dies_with_a_parent_killed_outright() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    time.sleep(0.5)  # past the launcher's prctl
    assert_child_dies_with(parent, pid, "the child")
