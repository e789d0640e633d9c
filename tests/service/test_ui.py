"""The console's pages and assets: served without a key, holding no data, loading nothing remote."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ingest.embed import Embedder
from service.app import create_app
from service.routes.ui import PAGES, UI_DIR
from service.settings import Settings
from tests.service.conftest import ScriptedLLM

ASSETS = sorted(p for p in (UI_DIR / "static").iterdir() if p.is_file())


@pytest.fixture
def keyed(settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    """The app with an API key configured: /v1 needs it, the console's pages must not."""
    s = settings.model_copy(
        update={"service": settings.service.model_copy(update={"api_keys": [SecretStr("k-1")]})}
    )
    with TestClient(create_app(s, llm=ScriptedLLM(), embedder=embedder)) as c:
        yield c


@pytest.mark.parametrize(("path", "title"), [(p, t) for p, _, t in PAGES])
def test_pages_are_served_without_a_key_and_hold_no_data(
    keyed: TestClient, path: str, title: str
) -> None:
    assert keyed.get("/v1/documents").status_code == 401
    resp = keyed.get(path)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    html = resp.text
    assert f"<title>{title} · ragtune console</title>" in html
    assert 'aria-current="page"' in html
    # No document of the index and no key appears in a page: data comes through /v1 only.
    assert "llm-guide" not in html and "zlib" not in html and "k-1" not in html
    csp = resp.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    for src in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert src.startswith(("/ui", "#", "data:")), src
        if src.startswith("/ui/static/"):
            assert keyed.get(src).status_code == 200, src


def test_assets_are_served_and_load_nothing_remote(keyed: TestClient) -> None:
    assert {p.suffix for p in ASSETS} == {".js", ".css"}
    for asset in ASSETS:
        resp = keyed.get(f"/ui/static/{asset.name}")
        assert resp.status_code == 200, asset.name
        text = resp.text
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), asset.name
        assert "@import" not in text and "url(" not in text, asset.name
        assert ".innerHTML" not in text, f"{asset.name}: data must go in as text"
        assert len(text.splitlines()) < 300, f"{asset.name} is over 300 lines"
    for template in (UI_DIR / "templates").iterdir():
        html = template.read_text()
        assert "<script>" not in html and " style=" not in html, template.name  # CSP: no inline
        assert not re.search(r"https?://", html), template.name


def test_ui_redirects_and_unknown_assets(keyed: TestClient) -> None:
    assert keyed.get("/ui/nope.js").status_code == 404
    assert keyed.get("/ui/static/nope.js").status_code == 404
    assert keyed.get("/ui/static/../routes/ui.py").status_code == 404


def test_package_data_ships_the_console() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["service"]
    shipped = {p for g in globs for p in (UI_DIR.parent).glob(g)}
    on_disk = {p for p in UI_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert on_disk <= shipped, sorted(str(p) for p in on_disk - shipped)


def test_evaluations_offers_the_serve_tunables_as_axes(keyed: TestClient) -> None:
    from service.routes.ui import MAIN_AXES
    from service.tunables import tunables

    html = keyed.get("/ui/evaluations").text
    for path in MAIN_AXES:
        assert f'data-path="{path}"' in html, path
    offered = set(re.findall(r'<option value="([a-z_.]+)" title=', html))
    assert offered == {t.path for t in tunables() if t.scope == "serve"}
    assert "chunk.size" not in offered  # decided at ingest: promotion refuses it
    nav = keyed.get("/ui/prompts").text
    for name in ("Prompts", "Evaluations"):
        assert f">{name}</a>" in nav and f">{name}</span>" not in nav
