"""The conformance suites are collected in full: a suite that collects nothing passes silently.

schemathesis makes one test per operation of the OpenAPI document, LangChain's standard suite one
per test method of its base class; both depend on third-party code (a new pytest, a renamed
class) that could leave them with none, and a module of zero tests still lets `make test` pass.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from service.app import create_app
from service.settings import Settings
from tests.conftest import REPO
from tests.integration.test_openai_latest import client_tests

pytestmark = pytest.mark.integration

SUITES = {
    "schemathesis": "tests/service/test_api_schemathesis.py",
    "langchain": "tests/integration/test_langchain_standard.py",
    "openai": "tests/integration/test_openai_client.py",
}


def collected(cli_env: dict[str, str]) -> dict[str, list[str]]:
    """Node ids pytest collects from each suite, by suite."""
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run(
        [*argv, *SUITES.values()], env=cli_env, cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    return {name: [i for i in ids if i.startswith(path)] for name, path in SUITES.items()}


def test_every_suite_collects_all_its_tests(cli_env: dict[str, str]) -> None:
    found = collected(cli_env)
    paths = create_app(Settings(home=Path("unused"))).openapi()["paths"]
    assert len(found["schemathesis"]) == sum(len(ops) for ops in paths.values()) > 20

    standard = {n for n in dir(ChatModelIntegrationTests) if n.startswith("test_")}
    names = {i.split("::")[-1].split("[")[0] for i in found["langchain"]}
    assert names == standard

    assert len(found["openai"]) == client_tests() >= 5
