"""Fixtures of the eval tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from ingest.settings import EmbedSettings
from service.settings import EvalSettings, Settings


@pytest.fixture
def cold(tmp_path: Path, service_home: Path, embed_settings: EmbedSettings) -> Any:
    """Settings over the test's copy of the shared index, with an empty eval cache each call.

    One home for all of a test's runs: its fence key is part of every prompt.
    """
    home = tmp_path / "home"
    shutil.copytree(service_home / "index", home / "index")

    def make(**eval_settings: Any) -> Settings:
        for f in home.glob("eval/cache.sqlite*"):
            f.unlink()
        return Settings(home=home, embed=embed_settings, eval=EvalSettings(**eval_settings))

    return make
