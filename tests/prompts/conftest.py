"""Fixtures for prompt tests: the built-in registry, fixed passages, a snapshot comparer."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from prompts.registry import Template, TemplateRegistry, builtin_dir
from prompts.render import Passage

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"


def words(text: str) -> int:
    """The fake tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def assert_snapshot(name: str, actual: str) -> None:
    """Compare with ``snapshots/<name>`` exactly; ``UPDATE_SNAPSHOTS=1`` rewrites it instead.

    The file holds ``actual`` plus one final newline, so end-of-file fixers leave it alone.
    """
    path = SNAPSHOTS / name
    actual += "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual.encode("utf-8"))
        return
    assert path.is_file(), f"missing snapshot {path}: run the tests with UPDATE_SNAPSHOTS=1"
    expected = path.read_bytes().decode("utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"{name} (snapshot)",
                tofile=f"{name} (rendered)",
            )
        )
        pytest.fail(f"rendered prompt differs from {path} (UPDATE_SNAPSHOTS=1 to accept):\n{diff}")


@pytest.fixture(scope="session")
def builtins() -> TemplateRegistry:
    return TemplateRegistry([builtin_dir()])


@pytest.fixture(scope="session")
def v1(builtins: TemplateRegistry) -> Template:
    return builtins.get("grounded-qa@1")


@pytest.fixture(scope="session")
def v2(builtins: TemplateRegistry) -> Template:
    return builtins.get("grounded-qa@2")


QUESTION = "How often does the backup job run?"
PASSAGES = (
    Passage(
        text="The backup job runs every night at 02:00 UTC. It keeps the last seven snapshots.",
        source="ops/backups.md",
        page=None,
        heading="Schedule",
        score=0.82,
        ref="chunk-a",
    ),
    Passage(
        text="Restoring a snapshot takes about ten minutes per 100 GB of data.",
        source="runbook.pdf",
        page=7,
        score=0.61,
        ref="chunk-b",
    ),
    Passage(
        text="The monitoring dashboard shows disk usage for every volume.",
        source="monitoring.html",
        score=0.40,
        ref="chunk-c",
    ),
)
