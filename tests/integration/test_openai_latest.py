"""test_openai_client.py again, under the newest `openai` client (.venv-openai-latest).

ragas' instructor pin holds the main environment at openai 1.x; users run whatever is newest.
`make test` builds .venv-openai-latest from tests/integration/openai-latest.txt (a pin bumped on
purpose, see the README); here its pytest runs the client module against this suite's server.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_openai_client import SERVER_ENV

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LATEST = REPO / ".venv-openai-latest" / "bin" / "python"
MODULE = Path(__file__).with_name("test_openai_client.py")


def client_tests() -> int:
    """How many tests the client module defines: all must run under the newest client too."""
    tree = ast.parse(MODULE.read_text())
    return sum(isinstance(n, ast.FunctionDef) and n.name.startswith("test_") for n in tree.body)


def test_the_newest_openai_client_passes_the_client_suite(
    client_server: tuple[str, str], tmp_path: Path
) -> None:
    if not LATEST.exists():
        pytest.fail(f"{LATEST} is missing: `make test` builds it (`make openai-latest`)")
    version = subprocess.run(
        [LATEST, "-c", "import openai; print(openai.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pinned = (REPO / "tests/integration/openai-latest.txt").read_text()
    assert f"openai=={version}\n" in pinned, f"{LATEST} has openai {version}: `make openai-latest`"

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGTUNE_")}
    env[SERVER_ENV] = " ".join(client_server)
    proc = subprocess.run(
        # No conftest: they import ragtune, which this environment does not have.
        [LATEST, "-m", "pytest", "-q", "--noconftest", "-p", "no:cacheprovider", str(MODULE)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.match(rf"^{client_tests()} passed\b", summary), tail
    print(f"openai {version}: {summary}")
