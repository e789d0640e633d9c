"""schemathesis against the app in process (ASGI): every documented operation, bounded examples.

The chat route answers from the scripted model; retrieval, documents and feedback use a real
index (a copy, since the fuzzer deletes documents). Checks: no 5xx, and every status code,
content type and body is the one the OpenAPI document promises.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ingest.embed import Embedder
from ingest.settings import EmbedSettings
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import ScriptedLLM

# The document does not depend on the data directory: the app is only built here, never started
# (schemathesis' ``from_fixture`` would defer this, but it breaks on pytest 9's node ids).
schema = schemathesis.openapi.from_dict(create_app(Settings(home=Path("unused"))).openapi())


@pytest.fixture(scope="module")
def app(
    service_home: Path,
    embed_settings: EmbedSettings,
    embedder: Embedder,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FastAPI]:
    """The app over a copy of the shared test home; schemathesis runs its lifespan."""
    home = tmp_path_factory.mktemp("schemathesis") / "home"
    shutil.copytree(service_home, home, ignore=shutil.ignore_patterns("feedback.sqlite*"))
    yield create_app(
        Settings(home=home, embed=embed_settings), llm=ScriptedLLM(), embedder=embedder
    )
    schemathesis.python.asgi.shutdown_lifespans()


# What a client relies on. Left out: schemathesis' data-acceptance checks, which hold the server to
# exactly the schema's types (pydantic's lax mode takes `false` for 0.0 and a number for a time)
# and to accepting every schema-valid upload (a file type the converters lack is a 400).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    allow_header_conformance,
]


@schema.parametrize()
@settings(
    max_examples=10,  # per operation and phase; ~1 min for the whole API on one core
    derandomize=True,  # the same requests every run: CI does not flake on a new example
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi(case: Any, app: FastAPI) -> None:
    case.call_and_validate(app=app, checks=CHECKS)
