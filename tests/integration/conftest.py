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


def keyed_serve_env(
    cli_env: dict[str, str], query_key: str, admin_key: str | None = None
) -> dict[str, str]:
    """The environment of a `ragtune serve` with these keys, as an operator would run it."""
    return {
        **cli_env,
        "RAGTUNE_LLM__N_CTX": "2048",
        "RAGTUNE_LLM__THREADS": os.environ.get("RAGTUNE_TEST_THREADS", "2"),
        "RAGTUNE_SERVICE__API_KEYS": json.dumps([query_key]),
        "RAGTUNE_SERVICE__ADMIN_KEYS": json.dumps([admin_key] if admin_key else []),
    }


@pytest.fixture(scope="session")
def console_url(
    console_home: Path, cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`ragtune serve` with an admin and a query key, as an operator would run it for the console."""
    log = tmp_path_factory.mktemp("console-serve") / "serve.log"
    with ragtune_serve(console_home, keyed_serve_env(cli_env, QUERY_KEY, KEY), log) as base:
        yield base


@pytest.fixture(scope="session")
def client_server(
    service_home: Path, cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(base URL, API key) of a keyed `ragtune serve` over the shared test home, for the client
    conformance suites (the official `openai` client, LangChain's standard tests): they only ask."""
    key = "client-test-key"
    # No retrieval floor: the standard tests ask "Hello", which no passage is close to, and with
    # the default floor ragtune would decline without calling the model; they are here to
    # exercise generation (usage, stop sequences, streaming), so every question reaches it.
    env = {**keyed_serve_env(cli_env, key), "RAGTUNE_RAG__RETRIEVAL__MIN_SCORE": "-1"}
    log = tmp_path_factory.mktemp("client-serve") / "serve.log"
    with ragtune_serve(service_home, env, log) as base:
        yield base, key


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (never Playwright's own downloads).

    One per module, not per session: Playwright's sync API keeps an event loop running on the
    main thread while it is open, and pytest-asyncio's session loop (the LangChain standard tests'
    async tests) cannot run beside it.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium_path(),
            args=["--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        yield b
        b.close()
