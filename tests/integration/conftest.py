"""The console's browser tests share one keyed server and one browser for the session."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ragtune_serve
from tests.integration.browser import KEY, QUERY_KEY, chromium_path


@pytest.fixture(scope="session")
def console_home(service_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared test data directory, copied: the console's tests upload, delete and rate."""
    home = tmp_path_factory.mktemp("console") / "home"
    shutil.copytree(service_home, home, ignore=shutil.ignore_patterns("feedback.sqlite*"))
    return home


@pytest.fixture(scope="session")
def console_url(
    console_home: Path, cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`ragtune serve` with an admin and a query key, as an operator would run it for the console."""
    env = {
        **cli_env,
        "RAGTUNE_LLM__N_CTX": "2048",
        "RAGTUNE_LLM__THREADS": os.environ.get("RAGTUNE_TEST_THREADS", "2"),
        "RAGTUNE_SERVICE__ADMIN_KEYS": json.dumps([KEY]),
        "RAGTUNE_SERVICE__API_KEYS": json.dumps([QUERY_KEY]),
    }
    log = tmp_path_factory.mktemp("console-serve") / "serve.log"
    with ragtune_serve(console_home, env, log) as base:
        yield base


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (never Playwright's own downloads)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium_path(),
            args=["--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        yield b
        b.close()
