"""Playwright over Debian's Chromium for the console's tests: pages that record what they do.

Playwright's own browser downloads are never used (``playwright install`` fetches from a CDN);
the browser is the system's ``chromium``, which ``make browser`` installs on CI.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import expect

from tests.conftest import chromium_path as chromium_path  # re-exported for the console tests

KEY = "console-test-key"  # the admin key the console's test server accepts
QUERY_KEY = "console-query-key"  # and a key that may ask, but not administer
AUTH = {"Authorization": f"Bearer {KEY}"}
QUESTION = "What value does zpipe.c define for CHUNK?"
ANSWER_MS = 180_000
# This context's init scripts (the key, STREAM_PROBE) run in every frame; in the Evaluations
# page's sandboxed report frame Chromium refuses them, and says so: that is the sandbox working.
SANDBOXED = (
    "because the document's frame is sandboxed and the 'allow-scripts' permission is not set"
)

# Counts the answer's text changes while it is still streaming (aria-busy="true"): an answer
# that only appeared at the end was not streamed into the page.
STREAM_PROBE = """
window.__streamed = 0;
new MutationObserver((records) => {
  for (const r of records) {
    const block = r.target.parentElement && r.target.parentElement.closest(".answer");
    if (block && block.getAttribute("aria-busy") === "true") window.__streamed++;
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@dataclass
class Recorder:
    """What one page asked for and complained about."""

    base: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def foreign(self) -> list[str]:
        here = urlsplit(self.base).netloc
        return [
            u for u in self.requests if not u.startswith("data:") and urlsplit(u).netloc != here
        ]


@contextlib.contextmanager
def console_page(browser: Any, base: str, key: str | None = None) -> Iterator[tuple[Any, Recorder]]:
    """A fresh browser context and page; ``key`` is put in the tab's session storage first.

    On exit the page must have asked nothing of any other host and logged no error (a 401 the
    key dialog answers shows as a failed resource load, which is expected).
    """
    context = browser.new_context(viewport={"width": 1366, "height": 850})
    if key is not None:
        context.add_init_script(f"sessionStorage.setItem('ragtune.apiKey', {json.dumps(key)});")
    context.add_init_script(STREAM_PROBE)
    page = context.new_page()
    page.set_default_timeout(15_000)
    seen = Recorder(base)
    page.on("request", lambda r: seen.requests.append(r.url))
    page.on("pageerror", lambda e: seen.errors.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: (
            seen.errors.append(f"console: {m.text}")
            if m.type == "error"
            and "Failed to load resource" not in m.text
            and SANDBOXED not in m.text
            else None
        ),
    )
    try:
        yield page, seen
    finally:
        context.close()
    assert seen.requests, "the page made no request at all"
    assert not seen.foreign(), seen.foreign()
    assert not seen.errors, seen.errors


def sse_final(body: str) -> dict[str, Any]:
    """The last chunk of a chat stream (the one with ``citations`` and ``ragtune``)."""
    events = [
        json.loads(line[len("data: ") :])
        for line in body.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]
    finals = [e for e in events if "ragtune" in e]
    assert finals, body[-2000:]
    return finals[-1]


def screenshot(page: Any, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 10_000, f"{path} looks blank"
    return path


def ask_in_page(page: Any, question: str, turn: int = 0) -> tuple[Any, dict[str, Any], Any]:
    """Ask through the form; the turn's locator, the request body sent, the stream's last chunk."""
    page.fill("#question", question)
    with page.expect_response(lambda r: r.url.endswith("/v1/chat/completions")) as got:
        page.press("#question", "Enter")
    block = page.locator(".turn").nth(turn)
    expect(block.locator(".answer")).to_have_attribute("aria-busy", "false", timeout=ANSWER_MS)
    expect(block.locator(".error")).to_have_count(0)
    return block, json.loads(got.value.request.post_data), sse_final(got.value.text())


def lists_feedback(console_url: str) -> bool:
    """Whether this server has GET /v1/feedback (the console-api branch adds it)."""
    status = httpx.get(f"{console_url}/v1/feedback", headers=AUTH, timeout=10).status_code
    return status not in (404, 405)
