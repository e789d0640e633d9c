"""Promoted serving configurations: versioned, validated, picked up by a running service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ingest.embed import Embedder
from ingest.settings import EmbedSettings
from service.app import create_app
from service.cli import main
from service.serving import ServingError, ServingStore
from service.settings import RagSettings, Settings
from tests.service.conftest import ScriptedLLM
from tests.service.test_api import ask


def test_promote_history_rollback(tmp_path: Path) -> None:
    store = ServingStore(tmp_path)
    base = RagSettings()
    assert store.effective(base) == (base, 0)
    v1 = store.promote(
        {"sampling": {"temperature": 0.7}, "retrieval": {"k": 3}}, {"run": "r1", "config": "a"}
    )
    v2 = store.promote({"template": "grounded-qa@2"}, {"run": "r2", "config": "b"})
    assert (v1, v2) == (1, 2)
    rag, version = store.effective(base)
    assert version == 2 and rag.template == "grounded-qa@2"
    assert rag.sampling.temperature == base.sampling.temperature
    assert [h["current"] for h in store.history()] == [False, True]
    assert store.history()[0]["run"] == "r1"
    assert store.rollback() == 1
    rag, version = store.effective(base)
    assert version == 1 and rag.sampling.temperature == 0.7 and rag.retrieval.k == 3
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
        # A promotion file written before tunables had paths (flat keys) still applies.
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


QUERY = "What value does zpipe.c define for CHUNK?"


@pytest.fixture
def promoted_home(settings: Settings, tmp_path: Path) -> Settings:
    """Settings over the shared index, in a home of their own (for its serving/ folder)."""
    s = settings.model_copy(update={"home": tmp_path / "home"})
    s.home.mkdir()
    (s.home / "index").symlink_to(settings.home / "index")
    return s


def test_retrieve_endpoint_follows_the_promoted_configuration(
    promoted_home: Settings, embedder: Embedder
) -> None:
    s, store = promoted_home, ServingStore(promoted_home.home)
    with TestClient(create_app(s, llm=ScriptedLLM(), embedder=embedder)) as c:

        def retrieve(**body: object) -> list[dict[str, object]]:
            resp = c.post("/v1/retrieve", json={"query": QUERY, **body})
            assert resp.status_code == 200, resp.text
            data: list[dict[str, object]] = resp.json()["data"]
            return data

        store.promote({"k": 2, "min_score": -1.0}, {})
        assert len(retrieve()) == 2
        assert len(retrieve(k=4)) == 4  # the request's own k wins
        store.promote({"k": 4, "min_score": 0.99}, {})
        assert retrieve() == []  # nothing is that similar
        assert len(retrieve(min_score=-1)) == 4
        # chat retrieves the same way
        assert ask(c, QUERY).json()["ragtune"]["retrieval_k"] == 4
        assert ask(c, QUERY).json()["citations"] == []


def test_search_command_follows_the_promoted_configuration(
    promoted_home: Settings,
    embed_settings: EmbedSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RAGTUNE_EMBED__CACHE_DIR", str(embed_settings.cache_dir))
    home = ["--home", str(promoted_home.home)]

    def search(*flags: str) -> list[dict[str, object]]:
        assert main(["search", QUERY, *home, "--json", *flags]) == 0
        hits: list[dict[str, object]] = json.loads(capsys.readouterr().out)
        return hits

    ServingStore(promoted_home.home).promote({"k": 2, "min_score": -1.0}, {})
    assert len(search()) == 2
    assert len(search("-k", "3")) == 3
    ServingStore(promoted_home.home).promote({"k": 3, "min_score": 0.99}, {})
    assert search() == []
    assert len(search("--min-score", "-1")) == 3
    ServingStore(promoted_home.home).promote({"k": 3, "retrieval": {"mode": "bm25"}}, {})
    dense = search("--mode", "dense", "--min-score", "-1")
    assert search("--min-score", "-1") != dense  # the promoted mode ranks by BM25
    # --group-by document: one chunk per document (this index holds two)
    grouped = search("--group-by", "document", "-k", "5", "--min-score", "-1", "--mode", "hybrid")
    assert len(grouped) == len({h["doc_id"] for h in grouped}) == 2
    ServingStore(promoted_home.home).promote({"retrieval": {"group_by": "document", "k": 5}}, {})
    assert search("--min-score", "-1") == grouped  # promoted, it serves the same
    assert len(search("--group-by", "chunk", "--min-score", "-1")) == 5
