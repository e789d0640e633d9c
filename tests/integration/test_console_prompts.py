"""The console's Prompts page in a real browser (see test_console): a new template version
written from the page (an invalid one refused with the loader's message), diffed and rendered."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.integration.browser import AUTH, KEY, QUESTION, console_page, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OLD = "Grounded question answering with inline [n] citations; three of five examples"
NEW = "Console-edited: grounded answers with inline [n] citations; three of five examples"


def versions(console_url: str, template_id: str) -> list[int]:
    listed = httpx.get(f"{console_url}/v1/templates", headers=AUTH, timeout=10).json()["data"]
    return next(t["versions"] for t in listed if t["id"] == template_id)


def test_new_version_from_the_page_is_checked_listed_diffed_and_rendered(
    console_url: str, console_home: Path, browser: Any, tmp_path: Path
) -> None:
    before = versions(console_url, "grounded-qa")
    latest, nxt = before[-1], before[-1] + 1
    written = console_home / "prompts" / "grounded-qa" / f"{nxt}.yaml"
    with console_page(browser, console_url, KEY) as (page, _):
        page.goto(f"{console_url}/ui/prompts")
        page.locator('.pick[data-template="grounded-qa"]').click()
        expect(page.locator("#ver-title")).to_have_text(f"grounded-qa@{latest}")
        expect(page.locator("#ver-source")).to_contain_text(f"version: {latest}")
        editor = page.get_by_role("textbox", name="YAML source")
        expect(editor).to_have_value(re.compile(rf"^version: {nxt}$", re.M))
        source = editor.input_value()
        assert OLD in source and "\nfewshot:" in source

        # Refused by the loader: its message beside the editor, nothing written.
        editor.fill(source.replace("\nfewshot:", "\nfewshots:"))
        page.get_by_role("button", name=f"Save as version {nxt}").click()
        expect(page.locator("#edit-error")).to_contain_text(
            "fewshots: Extra inputs are not permitted"
        )
        expect(page.locator("#edit-error")).to_contain_text("400")
        assert versions(console_url, "grounded-qa") == before and not written.exists()

        editor.fill(source.replace(OLD, NEW))
        page.get_by_role("button", name=f"Save as version {nxt}").click()
        expect(page.locator("#edit-status")).to_have_text(f"Saved grounded-qa@{nxt}.")
        expect(page.locator("#edit-error")).to_have_text("")
        assert versions(console_url, "grounded-qa") == [*before, nxt] and written.is_file()
        item = page.locator('.pick[data-template="grounded-qa"]')
        expect(item).to_contain_text(f"latest {nxt}")
        expect(item).to_contain_text("Console-edited")
        expect(page.locator("#ver-title")).to_have_text(f"grounded-qa@{nxt}")
        expect(page.locator("#ver-select")).to_have_value(str(nxt))
        # the editor moves on to the version after
        expect(editor).to_have_value(re.compile(rf"^version: {nxt + 1}$", re.M))

        # The diff against the previous version, lines styled by kind.
        expect(page.locator("#diff-from")).to_have_value(str(latest))
        expect(page.locator("#diff-to")).to_have_value(str(nxt))
        page.get_by_role("button", name="Show diff").click()
        diff = page.locator("#diff-view")
        expect(diff).to_be_visible()
        added = diff.locator(".line.add .text").all_text_contents()
        removed = diff.locator(".line.del .text").all_text_contents()
        assert f"version: {nxt}" in added and f"version: {latest}" in removed
        assert any(NEW in line for line in added) and any(OLD in line for line in removed)
        expect(page.locator("#diff-status")).to_contain_text("2 line(s) added, 2 removed")
        colours = diff.locator(".line.add").first.evaluate(
            "n => getComputedStyle(n).backgroundColor"
        )
        assert colours != diff.locator(".line.ctx").first.evaluate(
            "n => getComputedStyle(n).backgroundColor"
        )
        screenshot(page, tmp_path / "console-prompts-diff.png")

        # A preview of the prompt for a question under the new version.
        page.get_by_label("Question").fill(QUESTION)
        page.get_by_label("Passages (k)").fill("2")
        with page.expect_response(lambda r: r.url.endswith("/grounded-qa/render")) as got:
            page.get_by_role("button", name="Render").click()
        rendered = got.value.json()
        assert got.value.status == 200, rendered
        assert rendered["template"] == f"grounded-qa@{nxt}" and rendered["retrieval_k"] == 2
        out = page.locator("#render-out")
        expect(out).to_be_visible()
        expect(page.locator("#render-meta")).to_contain_text(str(rendered["prompt_tokens"]))
        expect(page.locator("#render-meta")).to_contain_text(f"grounded-qa@{nxt}")
        expect(page.locator("#render-status")).to_have_text(
            f"{rendered['prompt_tokens']} prompt tokens."
        )
        shown = page.locator("#render-prompt").text_content() or ""
        assert QUESTION in shown
        expect(page.locator("#render-passages > li")).to_have_count(len(rendered["passages"]))
        assert rendered["passages"]
        out.scroll_into_view_if_needed()
        screenshot(page, tmp_path / "console-prompts-render.png")
