"""The web console in a real browser: Debian's Chromium driven by Playwright against `ragtune serve`.

One server (the packaged Gemma, API keys configured) over a copy of the test data directory, since
these flows upload, delete and rate. Every page records its requests: none may go to another host.
Screenshots land in each test's tmp folder (docs/console-*.png are copies of good ones).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import REPO, cli_command
from tests.integration.browser import (
    KEY,
    QUESTION,
    ask_in_page,
    console_page,
    lists_feedback,
    screenshot,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CORRECTION = "zpipe.c defines CHUNK as 16384 bytes."


def test_ask_streams_cites_and_shows_the_highlighted_source(
    console_url: str, browser: Any, tmp_path: Path
) -> None:
    with console_page(browser, console_url, KEY) as (page, _):
        page.goto(f"{console_url}/ui")
        expect(page.locator("#model-name")).to_contain_text("Model:")
        page.fill("#cfg-temperature", "0")
        page.fill("#cfg-max-tokens", "48")
        first, sent, final = ask_in_page(page, QUESTION)
        assert sent["stream"] is True and sent["temperature"] == 0 and sent["max_tokens"] == 48
        assert "prompt" not in sent and "retrieval" not in sent  # unset: the server's values
        assert page.evaluate("window.__streamed") >= 1, "the answer appeared only at the end"
        text = first.locator(".answer-text").text_content() or ""
        assert text.strip()

        citations = final["citations"]
        assert citations, final
        expect(first.locator(".sources .chip")).to_have_count(len(citations))
        cited = next((c for c in citations if "16384" in c["text"]), citations[0])
        first.locator(f'.sources .chip[data-cite="{cited["index"]}"]').click()
        pane = page.locator("#source-pane")
        expect(pane).to_be_visible()
        expect(pane).to_be_focused()
        assert page.locator("#source-text").text_content() == cited["text"]
        marks = page.locator("#source-text mark").all_text_contents()
        assert marks and marks == [cited["text"][s:e] for s, e in cited["spans"]]
        expect(pane).to_contain_text(Path(cited["source"]).name)
        if cited["heading"]:
            expect(pane).to_contain_text(cited["heading"])

        info = final["ragtune"]
        first.locator(".provenance summary").click()
        provenance = first.locator(".provenance")
        for shown in (info["prompt"], "temperature 0", "max_tokens 48", info["backend"]):
            expect(provenance).to_contain_text(shown)
        expect(provenance).to_contain_text(info["verification"]["verdict"])
        expect(page.locator("#in-force")).to_contain_text(info["prompt"])
        page.evaluate("window.scrollTo(0, 0)")
        screenshot(page, tmp_path / "console-ask.png")

        # A follow-up sends the conversation so far; the answer says what it searched for.
        page.fill("#cfg-max-tokens", "16")
        second, sent, final = ask_in_page(page, "And what is it used for?", turn=1)
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        assert sent["messages"][0]["content"] == QUESTION
        assert sent["messages"][1]["content"].strip() == text.strip()
        assert final["ragtune"]["conversation"]["history_turns"] >= 1
        second.locator(".provenance summary").click()
        expect(second.locator(".provenance")).to_contain_text("Follow-up searched as")


@pytest.fixture(scope="module")
def down_vote(console_url: str, browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A thumbs-down with a comment and a correction, given through the Ask page."""
    flag = lists_feedback(console_url)  # the wrong-citation field comes with the list (console-api)
    with console_page(browser, console_url, KEY) as (page, _):
        page.goto(f"{console_url}/ui")
        page.fill("#cfg-temperature", "0")
        page.fill("#cfg-max-tokens", "16")
        block, _, final = ask_in_page(page, QUESTION)
        block.get_by_role("button", name="Thumbs down").click()
        block.get_by_label("Corrected answer").fill(CORRECTION)
        block.get_by_label("Comment").fill("too vague")
        if flag:
            block.get_by_label(re.compile("Wrong citation")).check()
        with page.expect_request(lambda r: r.url.endswith("/v1/feedback")) as posted:
            block.get_by_role("button", name="Send feedback").click()
        expect(block.locator(".feedback [role=status]")).to_contain_text("saved", timeout=15_000)
        shot = screenshot(page, tmp_path_factory.mktemp("feedback") / "console-feedback-given.png")
    return {
        "response_id": final["id"],
        "body": json.loads(posted.value.post_data),
        "flag": flag,
        "shot": shot,
    }


def test_thumbs_down_with_correction_becomes_an_eval_case(
    down_vote: Any, console_home: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    expected = {
        "response_id": down_vote["response_id"],
        "rating": "down",
        "comment": "too vague",
        "corrected_answer": CORRECTION,
    }
    if down_vote["flag"]:
        expected["wrong_citation"] = True
    assert down_vote["body"] == expected
    out = tmp_path / "cases.jsonl"
    proc = subprocess.run(
        cli_command("eval", "from-feedback", "--out", str(out), "--home", str(console_home)),
        env=cli_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    cases = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    [case] = [c for c in cases if c["response_id"] == down_vote["response_id"]]
    assert case["question"] == QUESTION and case["ground_truth"] == CORRECTION
    assert case["comment"] == "too vague" and "feedback" in case["tags"]
    assert "cases from" in proc.stdout


def test_feedback_list_shows_the_correction(
    down_vote: Any, console_url: str, browser: Any, tmp_path: Path
) -> None:
    with console_page(browser, console_url, KEY) as (page, _):
        page.goto(f"{console_url}/ui/feedback")
        status = page.locator("#fb-status")
        if not lists_feedback(console_url):
            expect(status).to_contain_text("cannot list feedback yet")
            pytest.skip(
                "GET /v1/feedback answers 404/405 on this branch: the list comes with the "
                "console-api branch; this test runs by itself once it is merged (the page shows "
                "its 'cannot list' note)"
            )
        page.select_option("#fb-rating", "down")
        page.select_option("#fb-correction", "true")
        row = page.locator(f'tr[data-response-id="{down_vote["response_id"]}"]')
        expect(row).to_contain_text(CORRECTION)
        expect(row).to_contain_text("too vague")
        expect(row.locator("td").nth(6)).to_have_text("yes")
        page.select_option("#fb-rating", "up")
        expect(row).to_have_count(0)
        page.select_option("#fb-rating", "down")
        expect(row).to_have_count(1)
        screenshot(page, tmp_path / "console-feedback.png")


def test_feedback_page_reads_the_list_contract(console_url: str, browser: Any) -> None:
    """The page against GET /v1/feedback's agreed shape, answered by the browser (page.route).

    Runs whether or not this server lists feedback: it pins what the page sends (the filters as
    query parameters) and how it shows each field, until the real route is here to be used.
    """
    entry = {
        "id": 7,
        "object": "feedback",
        "response_id": "chatcmpl-contract",
        "rating": "down",
        "comment": "cites the wrong file",
        "corrected_answer": CORRECTION,
        "wrong_citation": True,
        "created": 1_765_000_000.5,
        "question": QUESTION,
        "answer": "CHUNK is a buffer.",
    }
    asked: list[str] = []

    def answer(route: Any) -> None:
        asked.append(route.request.url)
        route.fulfill(json={"object": "list", "data": [entry]})

    with console_page(browser, console_url, KEY) as (page, _):
        page.route("**/v1/feedback?*", answer)
        page.goto(f"{console_url}/ui/feedback")
        row = page.locator('tr[data-response-id="chatcmpl-contract"]')
        expect(row).to_contain_text(CORRECTION)
        cells = row.locator("td").all_text_contents()
        assert cells[1:] == [
            "▼ down",
            QUESTION,
            "CHUNK is a buffer.",
            CORRECTION,
            "cites the wrong file",
            "yes",
        ]
        assert cells[0]  # the local date and time of `created`
        page.select_option("#fb-rating", "down")
        page.select_option("#fb-correction", "true")
        page.fill("#fb-since", "2026-12-01")
        page.get_by_role("button", name="Apply").click()
        expect(page.locator("#fb-status")).to_contain_text("1 shown")
    query = asked[-1].split("?", 1)[1]
    assert query == "rating=down&has_correction=true&since=2026-12-01&limit=50", asked
