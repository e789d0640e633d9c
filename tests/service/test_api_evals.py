"""Evaluation runs, promotion, history and rollback through the API; keys on every new route."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import SecretStr

import eval.promote
from ingest.embed import Embedder
from service import runs
from service.app import create_app
from service.settings import Settings
from tests.conftest import free_port
from tests.service.conftest import ScriptedLLM, uvicorn_in_thread
from tests.service.test_api import ask, assert_openai_error

BASE = {
    "id": "base",
    "baseline": True,
    "rag.template": "grounded-qa@1",
    "rag.sampling.temperature": 0.1,
    "rag.retrieval.k": 5,
    "metrics": {"key_facts": 0.4},
}
CAFE = {**BASE, "id": "cafe", "baseline": False, "rag.template": "grounded-qa@2"}
CAFE |= {"rag.sampling.temperature": 0.5, "rag.retrieval.k": 3, "metrics": {"key_facts": 0.6}}
RECHUNKED = {**BASE, "id": "chunky", "baseline": False, "chunk.size": 48}


def write_run(
    folder: Path, created: str | None, winner: str | None = "cafe", report: bool = True
) -> dict[str, Any]:
    folder.mkdir(parents=True)
    results = {
        "run": {"dataset": "dev.jsonl", "primary_metric": "key_facts", "baseline": "base"}
        | ({"created": created} if created else {}),
        "configs": [BASE, CAFE, RECHUNKED],
        "winner": winner,
        "rows": [],
    }
    (folder / "results.json").write_text(json.dumps(results))
    if report:
        (folder / "report.html").write_text(f"<html><body>{folder.name}</body></html>")
    return results


@pytest.fixture
def runs_home(own_settings: Settings) -> Settings:
    """Two runs, a folder without results, one with broken results; secrets beside the runs."""
    root = runs.runs_dir(own_settings)
    write_run(root / "dev-older", "2026-11-01T10:00:00+00:00", report=False)
    write_run(root / "dev-newer", "2026-12-01T10:00:00+00:00")
    (root / "half-written").mkdir()
    (root / "broken").mkdir()
    (root / "broken" / "results.json").write_text("{not json")
    # what a request climbing out of the runs folder would find
    write_run(own_settings.home / "eval" / "outside", "2026-12-02T00:00:00+00:00")
    (root.parent / "results.json").write_text(json.dumps({"secret": True}))
    (root.parent / "report.html").write_text("secret")
    (own_settings.home / "results.json").write_text(json.dumps({"secret": True}))
    return own_settings


@pytest.fixture
def client(runs_home: Settings, embedder: Embedder) -> Iterator[TestClient]:
    with TestClient(create_app(runs_home, llm=ScriptedLLM(), embedder=embedder)) as c:
        yield c


def test_runs_are_listed_and_read(client: TestClient, runs_home: Settings) -> None:
    resp = client.get("/v1/eval/runs")
    assert resp.status_code == 200 and resp.json()["object"] == "list"
    newer, older = resp.json()["data"]
    assert (newer["id"], older["id"]) == ("dev-newer", "dev-older")
    assert newer == newer | {
        "object": "eval.run",
        "created": int(datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp()),
        "dataset": "dev.jsonl",
        "configs": 3,
        "winner": "cafe",
        "primary_metric": "key_facts",
        "report_url": "/v1/eval/runs/dev-newer/report",
    }
    assert newer["has_report"] and not older["has_report"]

    results = json.loads((runs.runs_dir(runs_home) / "dev-newer" / "results.json").read_text())
    assert client.get("/v1/eval/runs/dev-newer").json() == results
    report = client.get(newer["report_url"])
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert report.text == "<html><body>dev-newer</body></html>"
    assert_openai_error(client.get("/v1/eval/runs/dev-older/report"), 404)
    for missing in ("nope", "half-written"):
        assert_openai_error(client.get(f"/v1/eval/runs/{missing}"), 404)
    assert_openai_error(client.get("/v1/eval/runs/broken"), 409)  # listed nowhere, no 500


def test_a_run_id_names_a_folder_in_the_runs_dir_only(
    client: TestClient, runs_home: Settings
) -> None:
    for path in (
        "/v1/eval/runs/..",
        "/v1/eval/runs/%2e%2e",
        "/v1/eval/runs/%2E%2E/report",
        "/v1/eval/runs/..%2Foutside",
        "/v1/eval/runs/%2e%2e%2foutside/report",
        "/v1/eval/runs/%2Fetc",
        "/v1/eval/runs/%2F" + str(runs_home.home / "eval" / "outside").lstrip("/"),
    ):
        resp = client.get(path)
        assert_openai_error(resp, 404)
        assert "secret" not in resp.text
    body = {"run_id": "../outside"}
    assert_openai_error(client.post("/v1/eval/promotions", json=body), 404, "run_id")
    absolute = str(runs_home.home / "eval" / "outside")
    assert_openai_error(client.post("/v1/eval/promotions", json={"run_id": absolute}), 404)
    assert client.get("/v1/eval/promotions").json()["data"] == []

    # the rule itself, with a results.json wherever the name would lead
    root = runs.runs_dir(runs_home)
    for name in ("..", ".", "", "../outside", absolute, "/etc", "a/../dev-newer", ".hidden"):
        with pytest.raises(runs.RunNotFound):
            runs.run_path(root, name)
    assert runs.run_path(root, "dev-newer") == root / "dev-newer"


def test_promote_history_rollback(client: TestClient, runs_home: Settings) -> None:
    assert eval.promote.promote is runs.promote  # the command promotes through the same code
    assert ask(client).json()["ragtune"]["serving_version"] == 0

    resp = client.post("/v1/eval/promotions", json={"run_id": "dev-newer"})
    assert resp.status_code == 201, resp.text
    winner = resp.json()
    assert winner["object"] == "eval.promotion" and winner["serving_version"] == 1
    assert winner["config"] == "cafe" and winner["current"] is True
    assert winner["dataset"] == "dev.jsonl" and winner["metrics"] == {"key_facts": 0.6}
    assert winner["params"] == {
        "template": "grounded-qa@2",
        "retrieval": {"k": 3},
        "sampling": {"temperature": 0.5},
    }
    info = ask(client).json()["ragtune"]  # the next answer is served by it
    assert info["serving_version"] == 1 and info["prompt"] == "grounded-qa@2"
    assert info["retrieval_k"] == 3

    base = client.post("/v1/eval/promotions", json={"run_id": "dev-older", "config_id": "base"})
    assert base.status_code == 201 and base.json()["serving_version"] == 2
    assert ask(client).json()["ragtune"]["prompt"] == "grounded-qa@1"

    err = assert_openai_error(
        client.post("/v1/eval/promotions", json={"run_id": "dev-newer", "config_id": "nope"}),
        400,
        "config_id",
    )
    assert "no configuration 'nope'" in err["message"]
    err = assert_openai_error(
        client.post("/v1/eval/promotions", json={"run_id": "dev-newer", "config_id": "chunky"}),
        409,
        "config_id",
    )
    assert "re-ingest" in err["message"]
    assert_openai_error(client.post("/v1/eval/promotions", json={"run_id": "nope"}), 404)
    assert_openai_error(client.post("/v1/eval/promotions", json={}), 422)

    history = client.get("/v1/eval/promotions").json()
    assert history["object"] == "list" and history["current_version"] == 2
    assert [(h["serving_version"], h["config"], h["current"]) for h in history["data"]] == [
        (1, "cafe", False),
        (2, "base", True),
    ]
    # every field `ragtune eval history --json` shows, with the same values
    cli = eval.promote.history(runs_home.home)
    assert [{k: h[k] for k in r} for h, r in zip(history["data"], cli, strict=True)] == cli

    back = client.post("/v1/eval/rollback")
    assert back.status_code == 200 and back.json()["serving_version"] == 1
    assert back.json()["current"]["config"] == "cafe"
    assert ask(client).json()["ragtune"]["serving_version"] == 1
    assert client.post("/v1/eval/rollback").json() == {
        "object": "eval.rollback",
        "serving_version": 0,
        "current": None,
    }
    assert ask(client).json()["ragtune"]["serving_version"] == 0
    err = assert_openai_error(client.post("/v1/eval/rollback"), 409)
    assert "nothing to roll back" in err["message"]
    assert [h["current"] for h in client.get("/v1/eval/promotions").json()["data"]] == [
        False,
        False,
    ]


def test_a_run_without_a_winner_needs_a_config(client: TestClient, runs_home: Settings) -> None:
    write_run(runs.runs_dir(runs_home) / "no-winner", None, winner=None)
    listed = {r["id"]: r for r in client.get("/v1/eval/runs").json()["data"]}
    assert listed["no-winner"]["winner"] is None and isinstance(listed["no-winner"]["created"], int)
    err = assert_openai_error(
        client.post("/v1/eval/promotions", json={"run_id": "no-winner"}), 400, "config_id"
    )
    assert "no winner" in err["message"]


NEW_ROUTES = [
    ("GET", "/v1/feedback", None),
    ("GET", "/v1/templates", None),
    ("GET", "/v1/templates/grounded-qa/versions/1", None),
    ("GET", "/v1/templates/grounded-qa/diff?from=1&to=2", None),
    ("POST", "/v1/templates/grounded-qa/render", {"question": "What is CHUNK?"}),
    ("POST", "/v1/templates/grounded-qa/versions", {"source": "id: x"}),
    ("GET", "/v1/eval/runs", None),
    ("GET", "/v1/eval/runs/dev-newer", None),
    ("GET", "/v1/eval/runs/dev-newer/report", None),
    ("POST", "/v1/eval/promotions", {"run_id": "dev-newer"}),
    ("GET", "/v1/eval/promotions", None),
    ("POST", "/v1/eval/rollback", None),
]


def test_every_new_route_needs_a_key_when_keys_are_set(
    runs_home: Settings, embedder: Embedder
) -> None:
    service = runs_home.service.model_copy(
        update={"admin_keys": [SecretStr("console-key")], "auth_failures_per_minute": 100}
    )
    s = runs_home.model_copy(update={"service": service})
    with TestClient(create_app(s, llm=ScriptedLLM(), embedder=embedder)) as c:
        for method, path, body in NEW_ROUTES:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                resp = c.request(method, path, json=body, headers=headers)
                assert_openai_error(resp, 401)
        assert not (runs_home.home / "serving").exists()  # refused before anything ran
        good = {"Authorization": "Bearer console-key"}
        for method, path, body in NEW_ROUTES:
            resp = c.request(method, path, json=body, headers=good)
            assert resp.status_code != 401, (path, resp.text)
            assert resp.status_code < 500, (path, resp.text)
        paths = c.get("/openapi.json", headers=good).json()["paths"]
    for method, path, _ in NEW_ROUTES:
        template = path.split("?")[0].replace("grounded-qa", "{template_id}")
        template = template.replace("dev-newer", "{run_id}").replace("/1", "/{version}")
        op = paths[template][method.lower()]
        assert op["summary"] and op["responses"], template


def test_a_promotion_over_http_serves_the_next_answer(
    runs_home: Settings, embedder: Embedder
) -> None:
    """A real uvicorn on loopback: promote, then the next answer carries the new version."""
    app = create_app(runs_home, llm=ScriptedLLM(), embedder=embedder)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    with uvicorn_in_thread(config) as base, httpx.Client(base_url=base, timeout=30) as http:
        chat = {"model": "ragtune", "messages": [{"role": "user", "content": "What is MQA?"}]}

        def served() -> int:
            resp = http.post("/v1/chat/completions", json=chat)
            assert resp.status_code == 200, resp.text
            return int(resp.json()["ragtune"]["serving_version"])

        assert served() == 0
        resp = http.post("/v1/eval/promotions", json={"run_id": "dev-newer"})
        assert resp.status_code == 201, resp.text
        assert served() == resp.json()["serving_version"] == 1
        assert http.post("/v1/eval/rollback").json()["serving_version"] == 0
        assert served() == 0
        assert http.get("/v1/eval/runs/%2e%2e").status_code == 404
