"""Prompt templates through the API: list, read, diff, render, and new versions written safely."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ingest.embed import Embedder
from prompts.registry import TemplateRegistry, VersionExists, builtin_dir, write_version
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import ScriptedLLM
from tests.service.test_api import QUESTION, ask, assert_openai_error

V2 = (builtin_dir() / "grounded-qa" / "2.yaml").read_text(encoding="utf-8")


def as_version(source: str, version: int, description: str | None = None) -> str:
    """grounded-qa@2's source as ``version``, with another description if given."""
    assert "\nversion: 2\n" in source
    out = source.replace("\nversion: 2\n", f"\nversion: {version}\n")
    if description is not None:
        out = re.sub(r"description: >-\n(  .*\n)+", f"description: {description}\n", out)
    return out


@pytest.fixture
def llm() -> ScriptedLLM:
    return ScriptedLLM()


@pytest.fixture
def client(own_settings: Settings, llm: ScriptedLLM, embedder: Embedder) -> Iterator[TestClient]:
    with TestClient(create_app(own_settings, llm=llm, embedder=embedder)) as c:
        yield c


def user_files(settings: Settings) -> list[str]:
    root = settings.home / "prompts"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.is_dir() else []


def test_list_and_read_versions(client: TestClient) -> None:
    resp = client.get("/v1/templates")
    assert resp.status_code == 200 and resp.json()["object"] == "list"
    by_id = {t["id"]: t for t in resp.json()["data"]}
    qa, chat = by_id["grounded-qa"], by_id["grounded-chat"]
    assert qa["object"] == "template" and qa["versions"] == [1, 2] and qa["latest"] == 2
    assert qa["style"] == "completion" and chat["style"] == "chat"
    assert qa["description"].startswith("Grounded question answering")

    resp = client.get("/v1/templates/grounded-qa/versions/2")
    assert resp.status_code == 200, resp.text
    v2 = resp.json()
    assert v2["source"] == V2 and v2["id"] == "grounded-qa" and v2["version"] == 2
    assert v2["fewshot"] == {"k": 3, "select": "similar"} and len(v2["examples"]) == 5
    assert v2["examples"][0]["passages"][0]["source"] == "kettle-manual.pdf"
    assert v2["no_answer"] in v2["instruction"] and v2["builtin"] is True
    assert_openai_error(client.get("/v1/templates/grounded-qa/versions/9"), 404)
    assert_openai_error(client.get("/v1/templates/nope/versions/1"), 404)
    assert_openai_error(client.get("/v1/templates/nope/diff?from=1&to=2"), 404)


def test_create_list_diff_and_never_overwrite(client: TestClient, own_settings: Settings) -> None:
    source = as_version(V2, 3, description="Version three, from the console.")
    resp = client.post("/v1/templates/grounded-qa/versions", json={"source": source})
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert made["object"] == "template" and made["versions"] == [1, 2, 3] and made["latest"] == 3
    assert made["description"] == "Version three, from the console." and made["ref"] == (
        "grounded-qa@3"
    )
    path = own_settings.home / "prompts" / "grounded-qa" / "3.yaml"
    assert path.read_text(encoding="utf-8") == source
    assert user_files(own_settings) == ["grounded-qa", "grounded-qa/3.yaml"]

    [listed] = [t for t in client.get("/v1/templates").json()["data"] if t["id"] == "grounded-qa"]
    assert listed["versions"] == [1, 2, 3] and listed["user_versions"] == [3]
    assert client.get("/v1/templates/grounded-qa/versions/3").json()["source"] == source
    # the new version answers at once: chat can ask for it
    assert ask(client, prompt="grounded-qa@3").json()["ragtune"]["prompt"] == "grounded-qa@3"

    resp = client.get("/v1/templates/grounded-qa/diff", params={"from": 2, "to": 3})
    assert resp.status_code == 200, resp.text
    d = resp.json()
    assert (d["from"], d["to"]) == (2, 3)
    lines = d["diff"].splitlines()
    assert lines[:2] == ["--- grounded-qa/2.yaml", "+++ grounded-qa/3.yaml"]
    assert "-version: 2" in lines and "+version: 3" in lines
    assert "+description: Version three, from the console." in lines
    assert not any(line.startswith(("+  - question", "-  - question")) for line in lines)
    assert client.get("/v1/templates/grounded-qa/diff?from=3&to=3").json()["diff"] == ""
    assert_openai_error(client.get("/v1/templates/grounded-qa/diff?from=1&to=9"), 404)
    assert_openai_error(client.get("/v1/templates/grounded-qa/diff?to=2"), 422)

    # an existing version is never replaced: not the user's 3, not the built-in 2
    for version in (3, 2):
        err = assert_openai_error(
            client.post(
                "/v1/templates/grounded-qa/versions",
                json={"source": as_version(V2, version, description="overwrite!")},
            ),
            409,
            "source",
        )
        assert (
            "never replaced" in err["message"]
            and "next version of grounded-qa is 4" in (err["message"])
        )
    assert path.read_text(encoding="utf-8") == source
    # another process wrote version 4 since the service started: the next one is 5
    (path.parent / "4.yaml").write_text(as_version(V2, 4), encoding="utf-8")
    assert_openai_error(
        client.post("/v1/templates/grounded-qa/versions", json={"source": as_version(V2, 4)}),
        409,
    )
    resp = client.post("/v1/templates/grounded-qa/versions", json={"source": as_version(V2, 5)})
    assert resp.status_code == 201 and resp.json()["versions"] == [1, 2, 3, 4, 5]
    assert (path.parent / "4.yaml").read_text(encoding="utf-8") == as_version(V2, 4)


def test_write_version_refuses_an_existing_file(tmp_path: Path) -> None:
    """The file itself is the guard: even a caller with a stale version number replaces nothing."""
    user = tmp_path / "prompts"
    write_version(user, as_version(V2, 3), "grounded-qa", 3)
    with pytest.raises(VersionExists):
        write_version(user, as_version(V2, 3, description="second"), "grounded-qa", 3)
    assert (user / "grounded-qa" / "3.yaml").read_text(encoding="utf-8") == as_version(V2, 3)
    assert sorted(p.name for p in (user / "grounded-qa").iterdir()) == ["3.yaml"]  # no temp left
    assert TemplateRegistry([builtin_dir(), user]).next_version("grounded-qa") == 4


INVALID = {
    "missing field": (
        as_version(V2, 3).replace("instruction: >-", "instructions: >-"),
        "instruction",
    ),
    "bad YAML": ("id: grounded-qa\nversion: 3\ninstruction: [unclosed\n", "invalid YAML"),
    "not a mapping": ("- just\n- a list\n", "expected a mapping"),
    "other id": (as_version(V2, 3).replace("id: grounded-qa", "id: other"), "does not match"),
    "no version": (as_version(V2, 3).replace("\nversion: 3\n", "\n"), "version"),
    "bad citation": (
        as_version(V2, 3).replace("warranty from the date of purchase [1].", "warranty [7]."),
        "cites [7]",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_source_is_rejected_and_nothing_written(
    client: TestClient, own_settings: Settings, case: str
) -> None:
    source, reason = INVALID[case]
    resp = client.post("/v1/templates/grounded-qa/versions", json={"source": source})
    err = assert_openai_error(resp, 400, "source")
    assert reason in err["message"], err["message"]
    assert str(own_settings.home) not in err["message"]  # no server paths in the message
    assert user_files(own_settings) in ([], ["grounded-qa"])
    assert client.get("/v1/templates").json()["data"][1]["versions"] == [1, 2]


def test_new_template_id_and_bad_ids(client: TestClient, own_settings: Settings) -> None:
    source = as_version(V2, 1).replace("id: grounded-qa", "id: my-qa")
    resp = client.post("/v1/templates/my-qa/versions", json={"source": source})
    assert resp.status_code == 201, resp.text
    assert resp.json()["versions"] == [1] and resp.json()["style"] == "completion"
    assert_openai_error(client.post("/v1/templates/My_QA/versions", json={"source": source}), 400)
    assert_openai_error(client.post("/v1/templates/..%2Fx/versions", json={"source": source}), 404)
    assert_openai_error(client.post("/v1/templates/my-qa/versions", json={"source": ""}), 422)
    assert user_files(own_settings) == ["my-qa", "my-qa/1.yaml"]


def test_render_is_the_prompt_chat_sends(
    client: TestClient, llm: ScriptedLLM, own_settings: Settings
) -> None:
    resp = client.post(
        "/v1/templates/grounded-qa/render", json={"version": 1, "question": QUESTION, "k": 2}
    )
    assert resp.status_code == 200, resp.text
    r = resp.json()
    assert r["template"] == "grounded-qa@1" and r["style"] == "completion"
    assert 1 <= len(r["passages"]) <= 2 and r["retrieval_k"] == 2
    for p in r["passages"]:
        assert p["text"] in r["prompt"] or p["text"][:40] in r["prompt"]
    assert QUESTION in r["prompt"]
    ask(client, prompt="grounded-qa@1", retrieval={"k": 2})
    assert llm.prompts[-1].text == r["prompt"]  # exactly what the model was given

    latest = client.post("/v1/templates/grounded-qa/render", json={"question": QUESTION})
    assert latest.status_code == 200 and latest.json()["template"] == "grounded-qa@2"
    assert latest.json()["retrieval_k"] == own_settings.rag.retrieval.k

    def render(**body: object) -> object:
        return client.post("/v1/templates/grounded-qa/render", json={"question": QUESTION, **body})

    assert_openai_error(render(version=9), 404, "version")
    assert_openai_error(render(k=10_000), 400, "k")
    assert_openai_error(render(k=0), 422)
    assert_openai_error(client.post("/v1/templates/grounded-qa/render", json={}), 422)
    assert_openai_error(
        client.post("/v1/templates/nope/render", json={"question": QUESTION}), 404, "id"
    )
