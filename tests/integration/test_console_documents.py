"""The console's Documents page, its API keys and its network in a real browser (see test_console)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from service.routes.ui import PAGES
from tests.integration.browser import AUTH, KEY, QUERY_KEY, ask_in_page, console_page, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOTE_NAME = "tycho-supply.md"
NOTE = """# Tycho-7 supply notes

The lunar base Tycho-7 keeps 4242 spare oxygen candles in its north vault.
The quartermaster counts the oxygen candles every ninety days.
"""
# Drops files on the drop zone as a user's drag from the desktop would (a DataTransfer).
DROP = """(files) => {
  const dt = new DataTransfer();
  for (const [name, text] of files) dt.items.add(new File([text], name));
  const zone = document.getElementById("dropzone");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
  }
}"""


def version_of(page: Any) -> int:
    label = page.locator("#index-version")
    expect(label).to_have_text(re.compile(r"Index version: \d+"))
    return int((label.text_content() or "").rsplit(" ", 1)[-1])


def test_upload_by_drop_ask_about_it_then_delete_with_confirmation(
    console_url: str, browser: Any, tmp_path: Path
) -> None:
    with console_page(browser, console_url, KEY) as (page, _):
        page.goto(f"{console_url}/ui/documents")
        rows = page.locator("#doc-table tbody tr")
        expect(rows).to_have_count(2)
        before = version_of(page)
        expect(page.locator("#q-status")).to_have_text("Nothing quarantined.")

        page.evaluate(DROP, [[NOTE_NAME, NOTE], ["broken.pdf", "%PDF-1.7 cut off here"]])
        upload = page.locator("#uploads li", has_text=NOTE_NAME)
        expect(upload).to_have_attribute("data-state", "done", timeout=120_000)
        expect(upload).to_contain_text("indexed: 1 chunk")
        assert upload.locator("progress").evaluate("p => p.value") == 1
        broken = page.locator("#uploads li", has_text="broken.pdf")
        expect(broken).to_have_attribute("data-state", "failed", timeout=60_000)
        expect(broken).to_contain_text("failed: broken.pdf:")
        expect(rows).to_have_count(3)
        assert version_of(page) > before
        # A rejected upload is refused with its reason and stores nothing (issue 13): the
        # quarantine holds what the operator's own ingest runs could not convert.
        expect(page.locator("#q-status")).to_have_text("Nothing quarantined.")
        screenshot(page, tmp_path / "console-documents.png")

        page.fill("#doc-q", "tycho")
        expect(rows).to_have_count(1)
        row = rows.first
        expect(row).to_contain_text("Tycho-7 supply notes")
        doc_id = row.get_attribute("data-doc-id")
        page.select_option("#doc-kind", "pdf")
        expect(rows).to_have_count(0)
        page.select_option("#doc-kind", "markdown")
        expect(rows).to_have_count(1)

        page.goto(f"{console_url}/ui")
        page.fill("#cfg-temperature", "0")
        page.fill("#cfg-max-tokens", "32")
        page.fill("#cfg-k", "3")
        block, sent, final = ask_in_page(page, "How many spare oxygen candles does Tycho-7 keep?")
        assert sent["retrieval"] == {"k": 3}
        assert final["ragtune"]["retrieval_k"] == 3
        answer = block.locator(".answer-text").text_content() or ""
        cited = {c["doc_id"] for c in final["citations"]}
        assert doc_id in cited or "4242" in answer, (answer, final["citations"])

        page.goto(f"{console_url}/ui/documents")
        page.fill("#doc-q", "tycho")
        expect(rows).to_have_count(1)
        delete = page.get_by_role("button", name="Delete Tycho-7 supply notes")
        dialog = page.locator("#delete-dialog")
        delete.click()
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("cannot be undone")
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_be_hidden()
        expect(rows).to_have_count(1)
        expect(delete).to_be_focused()  # keyboard users land where they were
        delete.click()
        screenshot(page, tmp_path / "console-delete.png")
        dialog.get_by_role("button", name="Delete").click()
        expect(page.locator("#doc-status")).to_contain_text("Deleted Tycho-7 supply notes")
        expect(rows).to_have_count(0)
    listed = httpx.get(f"{console_url}/v1/documents", headers=AUTH, timeout=10).json()
    assert doc_id not in {d["id"] for d in listed["data"]} and len(listed["data"]) == 2


def test_with_keys_the_console_asks_for_one_then_works(console_url: str, browser: Any) -> None:
    with console_page(browser, console_url) as (page, _):
        page.goto(f"{console_url}/ui/documents")
        dialog = page.locator("#key-dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("missing API key")
        expect(page.locator("#key-input")).to_be_focused()
        page.keyboard.type("not-the-key")
        page.keyboard.press("Enter")
        expect(dialog).to_contain_text("invalid API key")
        page.keyboard.type(KEY)
        page.keyboard.press("Enter")
        expect(dialog).to_be_hidden()
        expect(page.locator("#doc-table tbody tr")).to_have_count(2)
        expect(page.locator("#key-state")).to_have_text("API key: set for this tab")
        assert page.evaluate("sessionStorage.getItem('ragtune.apiKey')") == KEY
        assert page.evaluate("localStorage.length") == 0  # kept for the session only

        page.goto(f"{console_url}/ui")  # same tab: the key is still there
        expect(page.locator("#model-name")).to_contain_text("Model:")
        expect(dialog).to_be_hidden()
        page.get_by_role("button", name="Forget key").click()
        expect(page.locator("#key-state")).to_have_text("API key: none")
        assert page.evaluate("sessionStorage.getItem('ragtune.apiKey')") is None

        page.goto(f"{console_url}/ui/documents")  # asks again; a cancel leaves the page empty
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name="Cancel").click()
        expect(page.locator("#doc-status")).to_contain_text("missing API key")


def test_a_query_key_asks_and_the_admin_sections_say_what_it_lacks(
    console_url: str, browser: Any
) -> None:
    with console_page(browser, console_url, key=QUERY_KEY) as (page, _):
        page.goto(f"{console_url}/ui")
        expect(page.locator("#model-name")).to_contain_text("Model:")
        for path, status in (("/ui/documents", "#doc-status"), ("/ui/feedback", "#fb-status")):
            page.goto(f"{console_url}{path}")
            expect(page.locator(status)).to_contain_text("needs an API key with the admin role")
            expect(page.locator("#key-dialog")).to_be_hidden()  # a key is no use: none is asked


def test_pages_ask_nothing_of_any_host_but_the_server(console_url: str, browser: Any) -> None:
    with console_page(browser, console_url, KEY) as (page, seen):
        for path in ("/ui", "/ui/feedback", "/ui/documents"):
            response = page.goto(f"{console_url}{path}")
            assert response is not None and response.ok
            assert "default-src 'none'" in response.headers["content-security-policy"]
            page.wait_for_load_state("networkidle")
        # Keyboard: the skip link comes first, then the navigation.
        page.keyboard.press("Tab")
        expect(page.locator(".skip")).to_be_focused()
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Ask")).to_be_focused()
    hosts = {urlsplit(u).netloc for u in seen.requests}
    assert hosts == {urlsplit(console_url).netloc}
    paths = {urlsplit(u).path for u in seen.requests}
    assert {"/ui/static/api.js", "/ui/static/console.css", "/v1/models", "/v1/documents"} <= paths


UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
                 && !e.textContent.trim())
  .map((e) => e.id || e.outerHTML)"""


# WCAG 2 contrast of every visible element that holds text, against the first opaque background
# behind it: at least 4.5:1, or 3:1 for large text (24px, or 18.66px bold). Disabled controls
# are exempt, as in WCAG.
LOW_CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (e) => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  for (const e of document.querySelectorAll("body *")) {
    const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const box = e.getBoundingClientRect();
    if (!own || e.disabled || e.closest(".sr-only") || !box.width || !box.height) continue;
    const st = getComputedStyle(e);
    if (st.visibility === "hidden" || Number(st.opacity) === 0) continue;
    const [a, b] = [lum(rgb(st.color).slice(0, 3)), lum(background(e))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) bad.push(`${e.tagName}.${e.className} "${e.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return bad;
}"""


def test_pages_are_labelled_readable_and_fit_a_laptop_screen(
    console_url: str, browser: Any
) -> None:
    with console_page(browser, console_url, KEY) as (page, _):
        page.set_viewport_size({"width": 1280, "height": 720})
        for path, _, _ in PAGES:
            page.goto(f"{console_url}{path}")
            page.wait_for_load_state("networkidle")
            assert page.evaluate(UNLABELLED) == [], path
            assert page.evaluate(LOW_CONTRAST) == [], path
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), path
            assert page.locator("h1").count() == 1, path


def test_quarantine_lists_each_file_with_its_reason(console_url: str, browser: Any) -> None:
    """What `GET /v1/documents` lists as quarantined (the operator's own ingest runs put it
    there), the page shows with its reason; the list itself is served, the entry added."""
    held = {"source": "docs/broken.pdf", "reason": "PdfReadError: EOF marker not found", "at": 0}

    def with_held(route: Any) -> None:
        response = route.fetch()
        body = response.json()
        body["quarantined"] = [held]
        route.fulfill(response=response, json=body)

    with console_page(browser, console_url, KEY) as (page, _):
        page.route("**/v1/documents*", with_held)
        page.goto(f"{console_url}/ui/documents")
        rows = page.locator("#q-table tbody tr")
        expect(rows).to_have_count(1)
        expect(rows).to_contain_text("broken.pdf")
        expect(rows).to_contain_text("EOF marker not found")
        expect(page.locator("#q-status")).to_have_text("")
