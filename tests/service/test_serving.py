"""Promoted serving configurations: versioned, validated, picked up by a running service."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ingest.embed import Embedder
from service.app import create_app
from service.serving import ServingError, ServingStore
from service.settings import RagSettings, Settings
from tests.service.conftest import ScriptedLLM
from tests.service.test_api import ask


def test_promote_history_rollback(tmp_path: Path) -> None:
    store = ServingStore(tmp_path)
    base = RagSettings()
    assert store.effective(base) == (base, 0)
    v1 = store.promote({"temperature": 0.7, "k": 3}, {"run": "r1", "config": "a"})
    v2 = store.promote({"template": "grounded-qa@2"}, {"run": "r2", "config": "b"})
    assert (v1, v2) == (1, 2)
    rag, version = store.effective(base)
    assert version == 2 and rag.template == "grounded-qa@2" and rag.temperature == base.temperature
    assert [h["current"] for h in store.history()] == [False, True]
    assert store.history()[0]["run"] == "r1"
    assert store.rollback() == 1
    rag, version = store.effective(base)
    assert version == 1 and rag.temperature == 0.7 and rag.k == 3
    assert store.rollback() == 0 and store.effective(base) == (base, 0)
    with pytest.raises(ServingError, match="nothing to roll back"):
        store.rollback()
    with pytest.raises(ServingError, match="not promotable: colour"):
        store.promote({"colour": "red"}, {})
    with pytest.raises(ValueError):
        store.promote({"temperature": 9}, {})
    with pytest.raises(ValueError):
        store.promote({"retrieval": {"mode": "sparse"}}, {})
    assert store.versions() == [1, 2]  # rejected promotions wrote nothing


def test_running_service_picks_up_a_promotion(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    s = settings.model_copy(update={"home": tmp_path / "home"})
    # Same index as the shared fixture: point the new home's index at it.
    (s.home).mkdir()
    (s.home / "index").symlink_to(settings.home / "index")
    llm = ScriptedLLM()
    with TestClient(create_app(s, llm=llm, embedder=embedder)) as c:
        info = ask(c).json()["ragtune"]
        assert info["serving_version"] == 0 and info["prompt"] == "grounded-qa@1"
        ServingStore(s.home).promote({"template": "grounded-qa@2", "temperature": 0.6, "k": 2}, {})
        info = ask(c).json()["ragtune"]
        assert info["serving_version"] == 1 and info["prompt"] == "grounded-qa@2"
        assert info["params"]["temperature"] == 0.6 and info["retrieval_k"] == 2
        assert ask(c, temperature=0.1).json()["ragtune"]["params"]["temperature"] == 0.1
        # Retrieval is promotable as a partial table; a request's retrieval field overrides it.
        ServingStore(s.home).promote({"retrieval": {"mode": "bm25"}}, {})
        assert ask(c).json()["ragtune"]["retrieval"] == {"mode": "bm25"}
        hybrid = {"mode": "hybrid", "fusion": "blend", "dense_weight": 0.3}
        got = ask(c, retrieval=hybrid).json()["ragtune"]["retrieval"]
        assert got == hybrid
        assert ServingStore(s.home).rollback() == 1
        assert ask(c).json()["ragtune"]["retrieval"]["mode"] == "hybrid"  # the settings' default
        ServingStore(s.home).rollback()
        assert ask(c).json()["ragtune"]["serving_version"] == 0
