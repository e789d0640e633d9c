"""Shared fixtures: where the real documents live (read in place, never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder beside the repository; missing data is a failure, not a skip."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    assert path.is_dir(), f"shared data folder not found at {path}"
    return path
