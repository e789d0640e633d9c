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
    return interpolate(raw, env)  # type: ignore[no-any-return]


def test_compose_file_matches_the_compose_specification() -> None:
    assert SCHEMA.is_file(), f"{SCHEMA} missing: run `make install`"
    schema = yaml.safe_load(SCHEMA.read_text())
    doc = load(REQUIRED)
    jsonschema.validate(doc, schema, cls=jsonschema.Draft201909Validator)

    services = doc["services"]
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
