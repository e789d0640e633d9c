"""Who may do what (issue 13, defects 7 and 8): key roles, failed keys throttled, a bounded
rate-limit table, forwarded headers believed from trusted proxies only, keyed docs routes, and
`ragtune serve` refusing to put an open API on the network."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ingest.embed import Embedder
from service.app import create_app
from service.commands import server_config
from service.ratelimit import RateLimiter
from service.security import bind_refusal, hash_key
from service.settings import ServiceSettings, Settings
from tests.conftest import REPO, cli_command, free_port
from tests.service.conftest import ScriptedLLM, uvicorn_in_thread
from tests.service.test_api import QUESTION, assert_openai_error

QUERY_KEY, ADMIN_KEY = "query-key", "admin-key"
CHAT = {"model": "ragtune", "messages": [{"role": "user", "content": QUESTION}]}
# What a query key may not do: a sample of every admin area, each refused before it runs.
ADMIN_ONLY: list[tuple[str, str, Any]] = [
    ("GET", "/v1/documents", None),
    ("DELETE", "/v1/documents/nope", None),
    ("POST", "/v1/templates/grounded-qa/versions", {"source": "id: grounded-qa"}),
    ("POST", "/v1/templates/grounded-qa/render", {"question": "What is CHUNK?"}),
    ("GET", "/v1/feedback", None),
    ("GET", "/v1/eval/runs", None),
    ("POST", "/v1/eval/promotions", {"run_id": "nope"}),
    ("POST", "/v1/eval/rollback", None),
    ("GET", "/v1/eval/sweeps", None),
    ("GET", "/metrics", None),
]


def with_service(settings: Settings, **service: Any) -> Settings:
    return settings.model_copy(update={"service": ServiceSettings(**service)})


def keyed(settings: Settings, **service: Any) -> Settings:
    keys = {"api_keys": [SecretStr(QUERY_KEY)], "admin_keys": [SecretStr(ADMIN_KEY)]}
    return with_service(settings, **keys, **service)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def app_client(settings: Settings, embedder: Embedder) -> TestClient:
    return TestClient(create_app(settings, llm=ScriptedLLM(), embedder=embedder))


def test_forwarded_for_does_not_pick_the_rate_limit_bucket(
    settings: Settings, embedder: Embedder
) -> None:
    """Through real uvicorn on loopback, as `ragtune serve` runs it: uvicorn's own default
    believes X-Forwarded-For from 127.0.0.1, and a new value per request got a new bucket."""

    def codes(s: Settings) -> list[int]:
        config = server_config(
            s, "127.0.0.1", free_port(), log_level="warning", llm=ScriptedLLM(), embedder=embedder
        )
        with uvicorn_in_thread(config) as base, httpx.Client(base_url=base, timeout=30) as http:
            return [
                http.post(
                    "/v1/retrieve",
                    json={"query": "CHUNK"},
                    headers={"X-Forwarded-For": f"203.0.113.{i}"},
                ).status_code
                for i in range(6)
            ]

    assert codes(with_service(settings, rate_limit_per_minute=3)) == [200] * 3 + [429] * 3
    # Behind a proxy the operator names, each forwarded client has a budget of its own.
    trusted = with_service(settings, rate_limit_per_minute=3, trusted_proxies=["127.0.0.0/8"])
    assert codes(trusted) == [200] * 6


def test_wrong_keys_are_throttled_per_address(settings: Settings, embedder: Embedder) -> None:
    with app_client(keyed(settings, auth_failures_per_minute=3), embedder) as c:
        for _ in range(5):  # a missing key is no guess: not counted
            assert_openai_error(c.post("/v1/retrieve", json={"query": "CHUNK"}), 401)
        for _ in range(3):
            assert_openai_error(
                c.post("/v1/retrieve", json={"query": "x"}, headers=bearer("guess")), 401
            )
        for key in ("guess", QUERY_KEY):  # past the budget even the right key waits
            resp = c.post("/v1/retrieve", json={"query": "CHUNK"}, headers=bearer(key))
            err = assert_openai_error(resp, 429)
            assert err["code"] == "rate_limit_exceeded" and int(resp.headers["Retry-After"]) >= 1


def test_the_rate_limit_table_is_bounded_and_a_flood_resets_no_budget() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=2, clients=3, clock=lambda: now[0])
    assert [limiter.take("spent") > 0 for _ in range(3)] == [False, False, True]
    newcomers = [limiter.take(f"client-{i}") for i in range(1000)]
    assert len(limiter) == 3
    assert limiter.take("spent") > 0  # not evicted for the flood: still spent
    # Newcomers past the table's size shared one budget of 2.
    assert sum(w == 0 for w in newcomers) == 2 + 2
    now[0] += 61  # a minute on, every budget is full again: forgetting one loses nothing
    assert limiter.take("late") == 0 and len(limiter) == 3
    assert limiter.take("spent") == 0


def test_a_query_key_asks_and_an_admin_key_administers(
    own_settings: Settings, embedder: Embedder
) -> None:
    query, admin = bearer(QUERY_KEY), bearer(ADMIN_KEY)
    with app_client(keyed(own_settings), embedder) as c:
        chat = c.post("/v1/chat/completions", json=CHAT, headers=query)
        assert chat.status_code == 200, chat.text
        rating = {"response_id": chat.json()["id"], "rating": "up"}
        assert c.post("/v1/feedback", json=rating, headers=query).status_code == 201
        assert c.post("/v1/retrieve", json={"query": "CHUNK"}, headers=query).status_code == 200
        for path in ("/v1/models", "/v1/serving", "/v1/templates", "/openapi.json"):
            assert c.get(path, headers=query).status_code == 200, path
        for method, path, body in ADMIN_ONLY:
            err = assert_openai_error(c.request(method, path, json=body, headers=query), 403)
            assert err["type"] == "permission_error" and err["code"] == "insufficient_role"
            assert "admin role" in err["message"], err
            resp = c.request(method, path, json=body, headers=admin)
            assert resp.status_code not in (401, 403) and resp.status_code < 500, (path, resp.text)
        assert c.post("/v1/chat/completions", json=CHAT, headers=admin).status_code == 200

    assert not (own_settings.home / "prompts").exists()  # the refused template write wrote nothing


def test_a_route_guarded_twice_counts_one_request(
    own_settings: Settings, embedder: Embedder
) -> None:
    """GET /v1/feedback has its router's query guard and its own admin guard."""
    with app_client(keyed(own_settings, rate_limit_per_minute=2), embedder) as c:
        codes = [c.get("/v1/feedback", headers=bearer(ADMIN_KEY)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_the_openai_client_reads_the_refusals(own_settings: Settings, embedder: Embedder) -> None:
    port = free_port()
    config = server_config(
        keyed(own_settings),
        "127.0.0.1",
        port,
        log_level="warning",
        llm=ScriptedLLM(),
        embedder=embedder,
    )
    with uvicorn_in_thread(config) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=QUERY_KEY, max_retries=0)
        assert [m.id for m in client.models.list().data] == ["scripted"]
        with pytest.raises(openai.PermissionDeniedError, match="admin role"):
            client.delete("/documents/nope", cast_to=object)
        with pytest.raises(openai.AuthenticationError):
            client.with_options(api_key="wrong").models.list()


def test_only_probes_and_console_pages_answer_without_a_key(
    settings: Settings, embedder: Embedder
) -> None:
    app = create_app(keyed(settings), llm=ScriptedLLM(), embedder=embedder)
    # Every documented operation, and the undocumented routes that are not the console's.
    operations = [(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops]
    operations += [("GET", p) for p in ("/metrics", "/openapi.json", "/docs", "/redoc")]
    assert ("GET", "/v1/models") in operations and (
        "DELETE",
        "/v1/eval/sweeps/{sweep_id}",
    ) in operations
    with TestClient(app) as c:
        for method, path in operations:
            if path not in ("/healthz", "/readyz"):
                url = path.replace("{", "").replace("}", "")  # any value for each parameter
                assert_openai_error(c.request(method, url), 401)
        assert c.get("/healthz").status_code == 200 and c.get("/ui").status_code == 200
        assert c.get("/docs", headers=bearer(QUERY_KEY)).status_code == 200


def test_readyz_keeps_the_model_and_index_to_key_holders(
    settings: Settings, embedder: Embedder
) -> None:
    """With keys configured, /v1/models needs one, but /readyz named the model to anyone."""
    with app_client(keyed(settings), embedder) as c:
        probe = c.get("/readyz")
        assert probe.status_code == 200 and probe.json() == {"status": "ready"}
        for key in (QUERY_KEY, ADMIN_KEY):
            full = c.get("/readyz", headers=bearer(key)).json()
            assert full["status"] == "ready" and {"model", "index_version"} <= set(full)
        assert_openai_error(c.get("/readyz", headers=bearer("wrong")), 401)
    with app_client(settings, embedder) as c:  # open (the laptop default): nothing to keep
        assert {"model", "index_version"} <= set(c.get("/readyz").json())


@pytest.mark.parametrize(("docs", "status"), [("open", 200), ("off", 404)])
def test_the_docs_follow_their_setting(
    settings: Settings, embedder: Embedder, docs: str, status: int
) -> None:
    with app_client(keyed(settings, docs=docs), embedder) as c:
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert (
                c.get(path, headers={} if docs == "open" else bearer(ADMIN_KEY)).status_code
                == status
            )


def test_keys_file_lines_carry_roles(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{hash_key('bare')}\n{hash_key('ops')} admin  # ops\n")
    with app_client(with_service(settings, keys_file=keys), embedder) as c:
        assert_openai_error(c.get("/metrics", headers=bearer("bare")), 403)
        assert c.get("/metrics", headers=bearer("ops")).status_code == 200
        assert c.get("/v1/models", headers=bearer("bare")).status_code == 200


def test_serve_refuses_an_open_api_off_loopback(tmp_path: Path) -> None:
    open_api, empty = ServiceSettings(), tmp_path / "keys"
    empty.write_text("# no keys yet\n")
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert bind_refusal(host, open_api) is None, host
    for host in ("0.0.0.0", "::", "192.168.1.5", "ragtune.example"):
        assert "no API keys" in (bind_refusal(host, open_api) or ""), host
        assert "no API keys" in (bind_refusal(host, ServiceSettings(keys_file=empty)) or "")
        assert bind_refusal(host, ServiceSettings(api_keys=[SecretStr("k")])) is None
        assert bind_refusal(host, ServiceSettings(allow_open=True)) is None


def test_serve_exits_before_binding_an_open_api(cli_env: dict[str, str], tmp_path: Path) -> None:
    port = str(free_port())
    serve = cli_command("serve", "--host", "0.0.0.0", "--port", port, "--home", str(tmp_path))
    done = subprocess.run(serve, env=cli_env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--allow-open" in done.stderr, done.stderr[-2000:]
