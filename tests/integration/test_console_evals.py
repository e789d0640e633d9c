"""The console's Evaluations page in a real browser (see test_console): a sweep started from the
page with live progress, its report, a promotion the next answer carries, and a rollback."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import expect

from tests.integration.browser import AUTH, KEY, console_page, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CASES = ("dev-01", "dev-17")  # answerable from llm-guide.txt and zlib-usage.html
SWEEP_MS = 420_000
# What the Compare view would link with: one axis with two values, short answers pinned.
PROPOSED = {"rag.retrieval.k": [2, 3], "rag.sampling.max_tokens": 16}
PROGRESS_PROBE = """() => {
  window.__progress = [];
  const bar = document.getElementById("sweep-progress");
  new MutationObserver(() => window.__progress.push([bar.value, bar.max]))
    .observe(bar, {attributes: true});
}"""


def serving_version(console_url: str) -> int:
    body = {
        "model": "ragtune",
        "messages": [{"role": "user", "content": "What is zlib?"}],
        "max_tokens": 8,
    }
    resp = httpx.post(f"{console_url}/v1/chat/completions", json=body, headers=AUTH, timeout=180)
    assert resp.status_code == 200, resp.text
    return int(resp.json()["ragtune"]["serving_version"])


def current_version(console_url: str) -> int:
    resp = httpx.get(f"{console_url}/v1/eval/promotions", headers=AUTH, timeout=10)
    return int(resp.json()["current_version"])


@pytest.fixture
def dev2(console_home: Path, shared_data: Path) -> str:
    """Two dev questions as HOME/eval/datasets/dev2.jsonl (as an operator would put them)."""
    lines = (shared_data / "qa" / "dev.jsonl").read_text(encoding="utf-8").splitlines()
    folder = console_home / "eval" / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(ln for ln in lines if json.loads(ln)["id"] in CASES) + "\n"
    (folder / "dev2.jsonl").write_text(text, encoding="utf-8")
    return "dev2.jsonl"


def _file(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "mimeType": "application/x-ndjson", "buffer": text.encode()}


def test_sweep_with_progress_report_promotion_and_rollback(
    console_url: str, console_home: Path, dev2: str, browser: Any, tmp_path: Path
) -> None:
    dataset_dir = console_home / "eval" / "datasets"
    before = current_version(console_url)
    promoted = False
    try:
        with console_page(browser, console_url, KEY) as (page, _):
            link = f"/ui/evaluations?dataset={dev2}&axes={quote(json.dumps(PROPOSED))}"
            page.goto(console_url + link)
            expect(page.locator("#sweep-dataset")).to_have_value(dev2)
            expect(page.get_by_label("Passages (k) rag.retrieval.k")).to_have_value("2, 3")
            other = page.locator("#other-axes .axis-row")
            expect(other).to_have_count(1)
            expect(other.locator("select")).to_have_value("rag.sampling.max_tokens")
            expect(other.locator("input")).to_have_value("16")
            # An upload the loader refuses is not added, with its message; a good one is chosen.
            upload = page.locator("#dataset-file")
            upload.set_input_files(files=[_file("broken.jsonl", "not json\n")])
            expect(page.locator("#dataset-status")).to_contain_text(
                "Not added: broken.jsonl:1: not JSON"
            )
            upload.set_input_files(files=[_file("mine.jsonl", (dataset_dir / dev2).read_text())])
            expect(page.locator("#dataset-status")).to_have_text("Added mine.jsonl: 2 questions.")
            expect(page.locator("#sweep-dataset")).to_have_value("mine.jsonl")
            assert not (dataset_dir / "broken.jsonl").exists()
            page.select_option("#sweep-dataset", dev2)
            page.get_by_label("Temperature rag.sampling.temperature").fill("0")
            expect(page.locator("#serving-status")).to_have_attribute("data-version", str(before))

            page.evaluate(PROGRESS_PROBE)
            with page.expect_request(lambda r: r.url.endswith("/v1/eval/sweeps")) as posted:
                page.get_by_role("button", name="Start sweep").click()
            assert json.loads(posted.value.post_data or "") == {
                "dataset": dev2,
                "axes": {**PROPOSED, "rag.sampling.temperature": 0},
            }
            status = page.locator("#sweep-status")
            expect(page.locator("#sweep-live")).to_be_visible()
            expect(page.get_by_role("button", name="Cancel sweep")).to_be_visible()
            expect(status).to_have_attribute("data-status", "succeeded", timeout=SWEEP_MS)
            # 2 questions under the 2 values and the serving configuration (the baseline)
            expect(status).to_have_text("Done: 6 of 6 answers.")
            seen = page.evaluate("window.__progress")
            assert [6, 6] in seen and any(v < m for v, m in seen if m == 6), seen
            expect(page.get_by_role("button", name="Cancel sweep")).to_be_hidden()

            # Its report, fetched with the key and shown in the page, styled, without scripts.
            page.get_by_role("button", name="Open its report").click()
            run_id = (page.locator("#sweep-name").text_content() or "").split("(run ")[1][:-1]
            expect(page.locator(f'#runs-table tr[data-run-id="{run_id}"]')).to_have_count(1)
            expect(page.locator("#report-status")).to_have_attribute("data-run", run_id)
            report = page.frame_locator("#report-frame")
            expect(report.locator("h1")).to_contain_text("dev2")
            nav = report.locator("nav")
            assert nav.evaluate("n => getComputedStyle(n).position") == "sticky"  # its CSS applies
            header = report.locator("th[data-sort]").first
            header.click()
            expect(header).to_have_attribute("data-dir", "asc")  # its sortable columns work
            configs = page.locator("#config-table tbody tr")
            expect(configs).to_have_count(3)
            page.locator("#run-detail").evaluate("n => n.scrollIntoView()")
            screenshot(page, tmp_path / "console-evaluations.png")

            # Promote: cancelled first (nothing changes), then confirmed.
            chosen = configs.filter(has_not_text="baseline").first
            config_id = chosen.get_attribute("data-config-id")
            chosen.get_by_role("button", name=f"Promote {config_id}").click()
            dialog = page.locator("#promote-dialog")
            expect(dialog).to_be_visible()
            expect(dialog).to_contain_text(run_id)
            dialog.get_by_role("button", name="Cancel").click()
            expect(dialog).to_be_hidden()
            assert current_version(console_url) == before
            chosen.get_by_role("button", name=f"Promote {config_id}").click()
            with page.expect_response(lambda r: r.url.endswith("/v1/eval/promotions")) as got:
                dialog.get_by_role("button", name="Promote").click()
            assert got.value.status == 201, got.value.text()
            promoted = True
            record = got.value.json()
            version = record["serving_version"]
            assert version > before and record["config"] == config_id
            serving = page.locator("#serving-status")
            expect(serving).to_have_attribute("data-version", str(version))
            row = page.locator(f'#promo-table tr[data-version="{version}"]')
            expect(row).to_contain_text("in force")
            expect(row).to_contain_text(config_id or "")
            expect(row).to_contain_text(run_id)
            assert serving_version(console_url) == version  # the next answer carries it
            screenshot(page, tmp_path / "console-evaluations-promoted.png")

            # Roll back, after its confirmation.
            page.get_by_role("button", name="Roll back…").click()
            rollback = page.locator("#rollback-dialog")
            expect(rollback).to_contain_text(f"Serving version {version}")
            rollback.get_by_role("button", name="Roll back").click()
            expect(serving).to_have_attribute("data-version", str(before))
            promoted = False
            assert serving_version(console_url) == before

            # Another sweep, cancelled from the page.
            page.get_by_label("Temperature rag.sampling.temperature").fill("0.3")
            page.get_by_role("button", name="Start sweep").click()
            expect(status).to_have_attribute("data-status", re.compile("queued|running"))
            page.get_by_role("button", name="Cancel sweep").click()
            expect(status).to_have_attribute("data-status", "cancelled")
            expect(status).to_contain_text("starting the same sweep again resumes it")
            expect(page.get_by_role("button", name="Start sweep")).to_be_enabled()
    finally:
        if promoted:  # leave the shared server as the other tests expect it
            httpx.post(f"{console_url}/v1/eval/rollback", headers=AUTH, timeout=30)
