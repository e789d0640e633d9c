"""Datasets and sweeps through the API: checked by eval's own loaders, run as ``eval run`` children.

The service answers with a scripted model (it is not what is tested); a sweep's child process
answers with the packaged Gemma (``RAGTUNE_LLM__MODEL``, tests/conftest.py), as a user's would.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ingest.embed import Embedder
from service.app import create_app
from service.datasets import datasets_dir, scrub
from service.settings import Settings
from service.sweeps import FINAL, child_settings_env, sweep_toml
from tests.service.conftest import ScriptedLLM
from tests.service.test_api import assert_openai_error

CASES = ("dev-01", "dev-17")  # answerable from llm-guide.txt and zlib-usage.html


@pytest.fixture
def sweep_settings(own_settings: Settings) -> Settings:
    """Short answers and one thread for a sweep's child; the service's model is scripted."""
    rag = own_settings.rag.model_copy(deep=True)
    rag.sampling.max_tokens = 16
    llm = own_settings.llm.model_copy(update={"threads": 1})
    service = own_settings.service.model_copy(update={"max_dataset_bytes": 4096})
    return own_settings.model_copy(update={"rag": rag, "llm": llm, "service": service})


@pytest.fixture
def client(sweep_settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    with TestClient(create_app(sweep_settings, llm=ScriptedLLM(), embedder=embedder)) as c:
        yield c


@pytest.fixture
def dev2(shared_data: Path) -> str:
    """Two dev questions as JSONL text."""
    lines = (shared_data / "qa" / "dev.jsonl").read_text(encoding="utf-8").splitlines()
    return "\n".join(ln for ln in lines if json.loads(ln)["id"] in CASES) + "\n"


def wait_for(client: TestClient, sweep_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/v1/eval/sweeps/{sweep_id}").json()
        if body["status"] in FINAL:
            return body
        assert time.monotonic() < deadline, f"sweep still {body['status']}: {body}"
        time.sleep(0.5)


def test_datasets_are_listed_added_and_checked_by_the_loader(
    client: TestClient, sweep_settings: Settings, dev2: str
) -> None:
    folder = datasets_dir(sweep_settings)
    assert client.get("/v1/eval/datasets").json() == {"object": "list", "data": []}
    assert folder.is_dir()  # made on first use

    resp = client.post("/v1/eval/datasets", json={"name": "dev2.jsonl", "content": dev2})
    assert resp.status_code == 201, resp.text
    assert resp.json() == {
        "id": "dev2.jsonl",
        "object": "eval.dataset",
        "cases": 2,
        "path_hint": "dev2.jsonl",
    }
    files = {"file": ("mine.jsonl", dev2.encode(), "application/x-ndjson")}
    assert client.post("/v1/eval/datasets", files=files).json()["cases"] == 2
    err = assert_openai_error(client.post("/v1/eval/datasets", files=files), 409, "name")
    assert "exists already" in err["message"]

    # the loader's own messages, with the file as the client named it and no server path
    bad = dev2 + '{"id": "dev-01", "question": "again?", "ground_truth": "yes"}\n'
    for content, message in (
        ("not json\n", "broken.jsonl:1: not JSON"),
        ('{"id": "x", "question": "q"}\n', "'ground_truth' is required"),
        (bad, "broken.jsonl:3: duplicate id 'dev-01'"),
        ("\n", "broken.jsonl: no cases"),
    ):
        body = {"name": "broken.jsonl", "content": content}
        err = assert_openai_error(client.post("/v1/eval/datasets", json=body), 400)
        assert message in err["message"] and str(sweep_settings.home) not in err["message"]
        assert "/" not in err["message"].split(":")[0]
    assert not (folder / "broken.jsonl").exists()

    for name in ("../escape.jsonl", "a/b.jsonl", "/etc/x.jsonl", "x.txt", ".hidden.jsonl", ""):
        body = {"name": name, "content": dev2}
        assert_openai_error(client.post("/v1/eval/datasets", json=body), 400, "name")
    assert not (folder.parent / "escape.jsonl").exists()
    big = {"name": "big.jsonl", "content": dev2 * (4096 // len(dev2) + 1)}
    assert_openai_error(client.post("/v1/eval/datasets", json=big), 413, "file")

    (folder / "dropped.jsonl").write_text('{"id": 1}\n')  # put there by hand: listed, flagged
    listed = {d["id"]: d for d in client.get("/v1/eval/datasets").json()["data"]}
    assert set(listed) == {"dev2.jsonl", "mine.jsonl", "dropped.jsonl"}
    assert listed["dropped.jsonl"]["cases"] is None
    assert listed["dropped.jsonl"]["error"].startswith("dropped.jsonl:1: 'id' is required")
    assert "error" not in listed["dev2.jsonl"]
    (folder / "dropped.jsonl").write_text(dev2)  # fixed: checked again
    listed = {d["id"]: d for d in client.get("/v1/eval/datasets").json()["data"]}
    assert listed["dropped.jsonl"]["cases"] == 2 and "error" not in listed["dropped.jsonl"]


def test_a_sweep_is_checked_before_it_starts(
    client: TestClient, sweep_settings: Settings, dev2: str
) -> None:
    client.post("/v1/eval/datasets", json={"name": "dev2.jsonl", "content": dev2})
    (sweep_settings.home / "eval" / "secret.jsonl").write_text(dev2)
    for dataset, status in (("nope.jsonl", 404), ("../secret.jsonl", 400), ("/etc/passwd", 400)):
        body = {"dataset": dataset, "axes": {"rag.retrieval.k": [3]}}
        assert_openai_error(client.post("/v1/eval/sweeps", json=body), status, "dataset")

    body = {"dataset": "dev2.jsonl", "axes": {"rag.sampling.temprature": [0, 0.4]}}
    err = assert_openai_error(client.post("/v1/eval/sweeps", json=body), 400, "axes")
    assert "unknown axis rag.sampling.temprature" in err["message"]
    assert str(sweep_settings.home) not in err["message"]
    body = {"dataset": "dev2.jsonl", "axes": {"rag.retrieval.k": [0]}}
    err = assert_openai_error(client.post("/v1/eval/sweeps", json=body), 400, "axes")
    assert "axes.rag.retrieval.k" in err["message"]
    body = {"dataset": "dev2.jsonl", "search": {"method": "annealing"}}
    assert_openai_error(client.post("/v1/eval/sweeps", json=body), 400, "search")
    body = {"dataset": "dev2.jsonl", "axes": {"rag.retrieval.k": [{"a": 1}]}}
    assert_openai_error(client.post("/v1/eval/sweeps", json=body), 422)
    assert client.get("/v1/eval/sweeps").json() == {"object": "list", "data": []}
    assert not (sweep_settings.home / "eval" / "runs").exists()  # nothing started, nothing written


def test_sweep_files_and_child_settings() -> None:
    toml = sweep_toml({"rag.sampling.temperature": [0, 0.4], "rag.template": 'a"b'}, None, 3)
    assert toml == (
        'seed = 3\n\n[axes]\n"rag.sampling.temperature" = [0, 0.4]\n"rag.template" = "a\\"b"\n'
    )
    assert '[search]\n"method" = "halving"\n"eta" = 2' in sweep_toml(
        {}, {"method": "halving", "eta": 2}
    )
    settings = Settings(home=Path("/x"))
    settings.eval.judge_api_key = SecretStr("judge-secret")
    settings.eval.sweep_threads = 1
    settings.eval.runs_dir = Path("relative/runs")  # the child runs in another folder
    env = child_settings_env(settings)
    assert env["RAGTUNE_LLM__THREADS"] == "1" and env["OMP_NUM_THREADS"] == "1"
    assert json.loads(env["RAGTUNE_EVAL"])["judge_api_key"] == "judge-secret"
    assert json.loads(env["RAGTUNE_EVAL"])["runs_dir"] == str(Path.cwd() / "relative" / "runs")
    assert "RAGTUNE_SERVICE" not in env and "RAGTUNE_HOME" not in env
    assert json.loads(env["RAGTUNE_RAG"]) == settings.rag.model_dump(mode="json")


def test_server_paths_are_scrubbed() -> None:
    text = 'File "/srv/app/.venv/lib/x.py", line 3\n/home/u/eval/datasets/dev.jsonl:2: not JSON'
    assert scrub(text) == 'File "x.py", line 3\ndev.jsonl:2: not JSON'
    assert scrub("judge http://127.0.0.1:8001/v1/models down") == (
        "judge http://127.0.0.1:8001/v1/models down"
    )


@pytest.mark.slow
@pytest.mark.integration
def test_a_sweep_runs_to_its_report_and_only_one_at_a_time(
    client: TestClient, sweep_settings: Settings, dev2: str
) -> None:
    """Gemma answers 2 questions under 2 configurations in a child process (~10-30 s)."""
    client.post("/v1/eval/datasets", json={"name": "dev2.jsonl", "content": dev2})
    body = {"dataset": "dev2.jsonl", "axes": {"rag.sampling.temperature": [0.1, 0.4]}}
    resp = client.post("/v1/eval/sweeps", json=body)
    assert resp.status_code == 202, resp.text
    sweep = resp.json()
    assert sweep["object"] == "eval.sweep" and sweep["status"] in ("queued", "running")
    assert sweep["run_id"].startswith("dev2-") and sweep["report_url"] is None
    again = {"dataset": "dev2.jsonl", "axes": {"rag.retrieval.k": [3]}}
    err = assert_openai_error(client.post("/v1/eval/sweeps", json=again), 409)
    assert err["code"] == "sweep_running" and sweep["id"] in err["message"]

    seen: set[tuple[int, int]] = set()
    deadline = time.monotonic() + 300
    while (now := client.get(f"/v1/eval/sweeps/{sweep['id']}").json())["status"] not in FINAL:
        seen.add((now["done"], now["total"]))
        assert time.monotonic() < deadline, now
        time.sleep(0.3)
    assert now["status"] == "succeeded", now
    assert now["done"] == now["total"] == 4 and now["error"] is None
    assert len(seen) > 1  # progress moved while it ran
    assert now["report_url"] == f"/v1/eval/runs/{sweep['run_id']}/report"
    runs = {r["id"]: r for r in client.get("/v1/eval/runs").json()["data"]}
    assert runs[sweep["run_id"]]["configs"] == 2
    results = client.get(f"/v1/eval/runs/{sweep['run_id']}").json()
    assert results["run"]["model"].lower().startswith("gemma")  # the child's own model
    assert results["run"]["dataset"] == "dev2.jsonl"  # by name: no server path
    assert len(results["rows"]) == 4 and all(r["completion_tokens"] <= 16 for r in results["rows"])
    report = client.get(now["report_url"])
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "<html" in report.text.lower()
    listed = client.get("/v1/eval/sweeps").json()["data"]
    assert [s["id"] for s in listed] == [sweep["id"]] and listed[0]["status"] == "succeeded"
    folder = Path(sweep_settings.home / "eval" / "runs" / sweep["run_id"])
    assert 'rag.sampling.temperature" = [0.1, 0.4]' in (folder / "sweep.toml").read_text()
    # the next sweep may start now
    resp = client.post("/v1/eval/sweeps", json=again)
    assert resp.status_code == 202, resp.text
    client.delete(f"/v1/eval/sweeps/{resp.json()['id']}")


@pytest.mark.slow
@pytest.mark.integration
def test_a_cancelled_sweep_stops_its_child(
    sweep_settings: Settings, embedder: Embedder, dev2: str
) -> None:
    app = create_app(sweep_settings, llm=ScriptedLLM(), embedder=embedder)
    with TestClient(app) as client:
        client.post("/v1/eval/datasets", json={"name": "dev2.jsonl", "content": dev2})
        body = {"dataset": "dev2.jsonl", "axes": {"rag.sampling.temperature": [0.4, 0.7]}}
        sweep = client.post("/v1/eval/sweeps", json=body).json()
        pid = app.state.sweeps.get(sweep["id"]).proc.pid
        assert _alive(pid)
        resp = client.delete(f"/v1/eval/sweeps/{sweep['id']}")
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "cancelled"
        assert not _alive(pid)
        assert client.get(f"/v1/eval/sweeps/{sweep['id']}").json()["status"] == "cancelled"
        err = assert_openai_error(client.delete(f"/v1/eval/sweeps/{sweep['id']}"), 409)
        assert err["code"] == "finished"
        assert_openai_error(client.delete("/v1/eval/sweeps/sweep-nope"), 404)
        # a sweep still running when the service stops is stopped with it
        sweep = client.post("/v1/eval/sweeps", json=body).json()
        pid = app.state.sweeps.get(sweep["id"]).proc.pid
    assert not _alive(pid)


@pytest.mark.slow
@pytest.mark.integration
def test_a_failed_sweep_reports_its_log_without_server_paths(
    client: TestClient, sweep_settings: Settings, dev2: str
) -> None:
    """A template that does not exist passes the check (it is a well-formed id@version) and
    fails the run once the registry is open: the traceback's end is the sweep's error."""
    client.post("/v1/eval/datasets", json={"name": "dev2.jsonl", "content": dev2})
    body = {"dataset": "dev2.jsonl", "axes": {"rag.template": ["no-such-template@1"]}}
    resp = client.post("/v1/eval/sweeps", json=body)
    assert resp.status_code == 202, resp.text
    done = wait_for(client, resp.json()["id"], 180)
    assert done["status"] == "failed" and done["report_url"] is None
    assert "no-such-template" in done["error"] and "exited with 1" in done["error"]
    assert str(sweep_settings.home) not in done["error"]
    assert not any(
        w.startswith("/") or "/home/" in w or "/site-packages/" in w
        for w in done["error"].replace('"', " ").split()
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


NEW_ROUTES = [
    ("GET", "/v1/eval/datasets", None),
    ("POST", "/v1/eval/datasets", {"name": "x.jsonl", "content": "{}"}),
    ("GET", "/v1/eval/sweeps", None),
    ("POST", "/v1/eval/sweeps", {"dataset": "x.jsonl"}),
    ("GET", "/v1/eval/sweeps/sweep-x", None),
    ("DELETE", "/v1/eval/sweeps/sweep-x", None),
]


def test_every_sweep_route_needs_a_key_and_is_documented(
    sweep_settings: Settings, embedder: Embedder
) -> None:
    service = sweep_settings.service.model_copy(update={"admin_keys": [SecretStr("k")]})
    s = sweep_settings.model_copy(update={"service": service})
    with TestClient(create_app(s, llm=ScriptedLLM(), embedder=embedder)) as c:
        for method, path, body in NEW_ROUTES:
            assert_openai_error(c.request(method, path, json=body), 401)
            resp = c.request(method, path, json=body, headers={"Authorization": "Bearer k"})
            assert resp.status_code != 401 and resp.status_code < 500, (path, resp.text)
        paths = c.get("/openapi.json", headers={"Authorization": "Bearer k"}).json()["paths"]
    assert not datasets_dir(s).joinpath("x.jsonl").exists()
    for method, path, _ in NEW_ROUTES:
        op = paths[path.replace("sweep-x", "{sweep_id}")][method.lower()]
        assert op["summary"] and op["responses"], path
    upload = paths["/v1/eval/datasets"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(upload)
