"""The Compare page and Ask's serving configuration, in Chromium against a real `ragtune serve`.

The same keyed server as the other console tests (the packaged Gemma); every page must ask
nothing of any other host. Screenshots land in each test's tmp folder (docs/console-compare.png
is a copy of a good one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from tests.integration.browser import (
    ANSWER_MS,
    AUTH,
    KEY,
    QUESTION,
    console_page,
    screenshot,
    sse_final,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DATASET = "compare-dev.jsonl"


def api(console_url: str, path: str) -> Any:
    resp = httpx.get(f"{console_url}{path}", headers=AUTH, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def passage_key(p: dict[str, Any]) -> str:
    """How the page names a passage: document, best chunk, the window's offsets."""
    return f"{p['doc_id']}#{p['chunk_id']}@{p.get('start', '')}-{p.get('end', '')}"


def test_ask_shows_the_serving_configuration_before_any_question(
    console_url: str, browser: Any, tmp_path: Path
) -> None:
    serving = api(console_url, "/v1/serving")
    refs = [
        f"{t['id']}@{v}" for t in api(console_url, "/v1/templates")["data"] for v in t["versions"]
    ]
    rag = serving["rag"]
    with console_page(browser, console_url, KEY) as (page, seen):
        page.goto(f"{console_url}/ui")
        in_force = page.locator("#in-force")
        expect(in_force).to_contain_text(f"In force: {rag['template']}")
        expect(in_force).to_contain_text(f"serving version {serving['serving_version']}")
        expect(in_force).to_contain_text(f"index version {serving['index_version']}")
        expect(in_force).to_contain_text(serving["model"])
        expect(page.locator("#cfg-prompt")).to_have_value(rag["template"])
        assert page.locator("#cfg-prompt option").all_text_contents() == refs
        expect(page.get_by_label("Temperature")).to_have_value(str(rag["sampling"]["temperature"]))
        expect(page.get_by_label("Max tokens")).to_have_value(str(rag["sampling"]["max_tokens"]))
        expect(page.get_by_label("Retrieval mode")).to_have_value(rag["retrieval"]["mode"])
        expect(page.get_by_label("Passages (k)")).to_have_value(str(rag["retrieval"]["k"]))
        top_k = rag["sampling"]["top_k"]
        expect(page.get_by_label("Sampling top_k")).to_have_value(
            "" if top_k is None else str(top_k)
        )
        screenshot(page, tmp_path / "console-ask-serving.png")
    assert not [u for u in seen.requests if "/v1/chat/completions" in u]
    assert any(u.endswith("/v1/serving") for u in seen.requests)


@pytest.fixture(scope="module")
def dataset(console_url: str, shared_data: Path) -> str:
    """A two-question dataset on the server, for the sweep link to name."""
    lines = (shared_data / "qa" / "dev.jsonl").read_text().splitlines()[:2]
    resp = httpx.post(
        f"{console_url}/v1/eval/datasets",
        headers=AUTH,
        json={"name": DATASET, "content": "\n".join(lines) + "\n"},
        timeout=120,
    )
    assert resp.status_code in (201, 409), resp.text
    return DATASET


def test_compare_two_retrieval_depths(
    console_url: str, browser: Any, dataset: str, tmp_path: Path
) -> None:
    with console_page(browser, console_url, KEY) as (page, _):
        chats: list[Any] = []
        page.on(
            "requestfinished", lambda r: chats.append(r) if "/chat/completions" in r.url else None
        )
        page.goto(f"{console_url}/ui/compare")
        expect(page.get_by_role("link", name="Compare", exact=True)).to_have_attribute(
            "aria-current", "page"
        )
        columns = page.locator(".column")
        expect(columns).to_have_count(2)

        # Add and remove a column from the keyboard; at two, none can be removed.
        page.get_by_role("button", name="Add a configuration").press("Enter")
        expect(columns).to_have_count(3)
        expect(columns.nth(2).get_by_label("Template")).to_be_focused()
        page.get_by_role("button", name="Remove Configuration C").press("Enter")
        expect(columns).to_have_count(2)
        expect(page.get_by_role("button", name="Remove Configuration A")).to_be_disabled()

        a, b = columns.nth(0), columns.nth(1)
        page.fill("#max-tokens", "24")
        for col, k in ((a, "1"), (b, "4")):
            col.get_by_label("Temperature").fill("0")
            col.get_by_label("Passages (k)").fill(k)
        expect(page.locator("#sweep-axes")).to_have_value('{"rag.retrieval.k":[1,4]}')
        expect(page.locator("#sweep-dataset")).to_have_value(dataset)

        page.fill("#question", QUESTION)
        page.press("#question", "Enter")
        expect(page.locator("#compare-status")).to_have_text("Compared.", timeout=2 * ANSWER_MS)
        assert len(chats) == 2, [r.url for r in chats]
        sent = [json.loads(r.post_data) for r in chats]
        assert [s["retrieval"]["k"] for s in sent] == [1, 4]
        assert all(s["temperature"] == 0 and s["max_tokens"] == 24 and s["stream"] for s in sent)
        # one after the other: the second request went out once the first had finished. The
        # page and the network stack stamp times on different clocks (CI saw the second start
        # 1.5 ms "before" the first ended), so allow 50 ms; side by side, the second would start
        # within a few ms of the first, which answers for hundreds of ms.
        first, second = (r.timing for r in chats)
        assert first["responseEnd"] > 100, first
        assert second["startTime"] >= first["startTime"] + first["responseEnd"] - 50
        finals = [sse_final(r.response().text()) for r in chats]

        keys = [{passage_key(p) for p in f["ragtune"]["passages"]} for f in finals]
        assert len(keys[0]) == 1 and 1 <= len(keys[1]) <= 4
        for i, col in enumerate((a, b)):
            expect(col.locator(".answer")).to_have_attribute("aria-busy", "false")
            assert (col.locator(".answer-text").text_content() or "").strip()
            expect(col.locator(".error")).to_have_count(0)
            latency = col.locator(".latency")
            expect(latency).to_contain_text("Latency (browser)")
            expect(latency).to_contain_text("generation")
            shown = col.locator(".passage-refs li")
            expect(shown).to_have_count(len(finals[i]["ragtune"]["passages"]))
            marked = col.locator(".passage-refs li.differs")
            expected = keys[i] - keys[1 - i]
            expect(marked).to_have_count(len(expected))
            assert {m.get_attribute("data-key") for m in marked.all()} == expected
            expect(col.locator(".passage-refs li.differs .differs-tag")).to_have_count(
                len(expected)
            )
        assert keys[1] - keys[0], "k=4 read no passage that k=1 did not"

        cited = b.locator(".passage-refs .chip")
        if cited.count():
            cited.first.click()
            expect(page.locator("#source-pane")).to_be_focused()
            page.keyboard.press("Escape")
            expect(page.locator("#source-pane")).to_be_hidden()

        href = page.locator("#sweep-link").get_attribute("href") or ""
        url = urlsplit(href)
        assert url.path == "/ui/evaluations"
        query = parse_qs(url.query)
        assert query["dataset"] == [dataset]
        assert json.loads(query["axes"][0]) == {"rag.retrieval.k": [1, 4]}
        page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
        screenshot(page, tmp_path / "console-compare.png")
        page.screenshot(path=str(tmp_path / "console-compare-full.png"), full_page=True)
