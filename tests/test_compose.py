"""compose.yaml is valid against the Compose Specification's JSON schema and wires what we need.

Variables are interpolated first, as `docker compose` does: ``${VAR:?msg}`` must fail without VAR,
``${VAR:-default}`` falls back. The schema file is fetched by `make install` (from the
docker-compose 1.29.2 wheel) into the virtualenv.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from service.settings import ServiceSettings
from tests.conftest import REPO

SCHEMA = Path(sys.prefix) / "share" / "compose_spec.json"
REQUIRED = {"VLLM_MODEL": "google/gemma-3-1b-it", "RAGTUNE_ADMIN_KEYS": '["admin-key"]'}
_VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        if env.get(name):
            return env[name]
        if op in (":?", "?"):
            raise MissingVariable(f"{name}: {arg}")
        return arg if op in (":-", "-") else ""

    return _VAR.sub(sub, value)


def load(env: dict[str, str]) -> dict[str, Any]:
    raw = yaml.safe_load((REPO / "compose.yaml").read_text())
    doc: dict[str, Any] = interpolate(raw, env)
    # Interpolation yields strings; compose then casts the fields its schema types as numbers.
    for service in doc["services"].values():
        deploy = service.get("deploy", {})
        if "replicas" in deploy:
            deploy["replicas"] = int(deploy["replicas"])
    return doc


def default_services(doc: dict[str, Any]) -> dict[str, Any]:
    """What a plain `docker compose up` starts: the services in no profile."""
    return {name: s for name, s in doc["services"].items() if not s.get("profiles")}


def test_compose_file_matches_the_compose_specification() -> None:
    assert SCHEMA.is_file(), f"{SCHEMA} missing: run `make install`"
    schema = yaml.safe_load(SCHEMA.read_text())
    doc = load(REQUIRED)
    jsonschema.validate(doc, schema, cls=jsonschema.Draft201909Validator)

    services = default_services(doc)
    assert set(services) == {"vllm", "api", "ingest"}
    vllm = services["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    assert "--model=google/gemma-3-1b-it" in vllm["command"]
    assert any(a.startswith("--max-model-len=") for a in vllm["command"])
    [gpu] = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["capabilities"] == ["gpu"] and "healthcheck" in vllm
    api, ingest = services["api"], services["ingest"]
    assert api["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert api["environment"]["RAGTUNE_LLM__BASE_URL"] == "http://vllm:8000/v1"
    assert api["environment"]["RAGTUNE_LLM__MODEL"] == "google/gemma-3-1b-it"
    # The published API is keyed, so `ragtune serve --host 0.0.0.0` accepts to start.
    keys = json.loads(api["environment"]["RAGTUNE_SERVICE__ADMIN_KEYS"])
    assert keys == ["admin-key"] and "--allow-open" not in api["command"]
    assert "--watch" in ingest["command"]
    assert "index:/data" in api["volumes"] and "index:/data" in ingest["volumes"]


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_required_settings_fail_fast(missing: str) -> None:
    with pytest.raises(MissingVariable, match=missing):
        load({k: v for k, v in REQUIRED.items() if k != missing})


def test_scale_profile_puts_replicas_of_the_api_behind_a_load_balancer() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    doc = load({**REQUIRED, "RAGTUNE_REPLICAS": "3"})
    jsonschema.validate(doc, schema, cls=jsonschema.Draft201909Validator)
    services = doc["services"]
    scale = {name for name, s in services.items() if s.get("profiles")}
    assert scale == {"api-replica", "lb"}
    assert all(services[name]["profiles"] == ["scale"] for name in scale)

    api, replica, lb = services["api"], services["api-replica"], services["lb"]
    assert replica["deploy"]["replicas"] == 3
    assert load(REQUIRED)["services"]["api-replica"]["deploy"]["replicas"] == 2  # the default
    # The same program and settings as `api`, on the one index volume the ingest worker writes.
    assert replica["image"] == api["image"] and replica["command"] == api["command"]
    assert "index:/data" in replica["volumes"]
    assert "index:/data" in api["volumes"] and "index:/data" in services["ingest"]["volumes"]
    env = dict(replica["environment"])
    proxies = json.loads(env.pop("RAGTUNE_SERVICE__TRUSTED_PROXIES"))
    assert env == api["environment"]
    assert ServiceSettings(trusted_proxies=proxies).trusted_proxies  # valid networks
    assert replica["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(replica["healthcheck"]["test"])
    assert "ports" not in replica  # reached through the load balancer only

    assert lb["image"].startswith("nginx:")
    assert lb["depends_on"]["api-replica"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(lb["healthcheck"]["test"])  # a replica answers through it
    [published] = lb["ports"]
    assert published == "8080:8080"
    [mount] = lb["volumes"]
    source, target, mode = mount.split(":")
    assert target == "/etc/nginx/nginx.conf" and mode == "ro"
    conf = (REPO / source).read_text()
    # nginx listens where compose publishes, and routes to the replicas by their service name.
    assert re.search(r"listen 8080;", conf)
    [upstream] = re.findall(r"upstream (\w+) \{", conf)
    assert f"proxy_pass http://{upstream};" in conf
    assert re.search(r"server api-replica:8000 resolve\b", conf)
    assert "proxy_buffering off;" in conf  # streamed answers
    body = re.search(r"client_max_body_size (\d+)m;", conf)
    assert body and int(body.group(1)) > ServiceSettings().max_upload_mb  # uploads get through
