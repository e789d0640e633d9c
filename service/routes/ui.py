"""The web console at ``/ui``: server-rendered pages that hold no data, and their static assets.

Everything a page shows comes from its scripts calling the public ``/v1`` API with the user's key
(kept in ``sessionStorage``), so the pages and assets are served without one: they are the same
for every visitor. A Content-Security-Policy holds each page to this server alone (no CDN, no
inline script), and no build step stands between these files and the browser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from ingest.convert import SUPPORTED_SUFFIXES
from ingest.records import KIND as RECORD_KIND
from service import tunables

UI_DIR = Path(__file__).resolve().parents[1] / "ui"
STATIC_PATH = "/ui/static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# (path, template, title) of each section, in navigation order.
PAGES = [
    ("/ui", "ask.html", "Ask"),
    ("/ui/compare", "compare.html", "Compare"),
    ("/ui/feedback", "feedback.html", "Feedback"),
    ("/ui/documents", "documents.html", "Documents"),
    ("/ui/prompts", "prompts.html", "Prompts"),
    ("/ui/evaluations", "evaluations.html", "Evaluations"),
]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=UI_DIR / "templates")

# The sweep axes the Evaluations page offers first, with their labels there (the Ask page's);
# any other serve-time tunable can be added.
MAIN_AXES = {
    "rag.template": "Template",
    "rag.sampling.temperature": "Temperature",
    "rag.sampling.top_k": "Sampling top_k",
    "rag.retrieval.mode": "Retrieval mode",
    "rag.retrieval.k": "Passages (k)",
}


def install(app: FastAPI) -> None:
    """Add the console's pages and its static assets to ``app`` (outside the key guard)."""
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=UI_DIR / "static"), name="ui-static")


def _axes() -> list[dict[str, str]]:
    """Serve-time tunables as the sweep form lists them: path, label, description, default."""
    return [
        {
            "path": t.path,
            "label": t.label,
            "description": t.description,
            "default": "" if t.default is None else str(t.default),
        }
        for t in tunables.tunables()
        if t.scope == "serve"
    ]


def _page(template: str, title: str) -> Any:
    async def page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        response = templates.TemplateResponse(
            request,
            template,
            {
                "title": title,
                "root": root,
                "static": root + STATIC_PATH,
                "nav": [(root + path, name) for path, _, name in PAGES],
                "kinds": sorted({*SUPPORTED_SUFFIXES.values(), RECORD_KIND}),
                "accept": ",".join(sorted(SUPPORTED_SUFFIXES)),
                "axes": _axes(),
                "main_axes": MAIN_AXES,
            },
        )
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-cache"
        return response

    return page


for _path, _template, _title in PAGES:
    router.add_api_route(
        _path, _page(_template, _title), methods=["GET"], response_class=HTMLResponse
    )
