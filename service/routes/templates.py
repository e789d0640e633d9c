"""Prompt templates through the API: list, read, diff, render a prompt, add a version.

A new version goes through ``prompts.registry.write_version``, the loader's own validation and
the same user folder ``ragtune eval accept-examples`` writes to (``HOME/prompts``); a version is
never replaced. Rendering is the chat path's planning (``rag.plan_answer``: the serving
configuration's retrieval and the model's prompt style, tokenizer and window) without the
generation, printed as ``ragtune prompts render`` prints a prompt (``format_rendered``).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import threading
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Query
from pydantic import ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from prompts.registry import (
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateRegistry,
    VersionExists,
    builtin_dir,
    write_version,
)
from prompts.render import PromptBudgetError, format_rendered
from prompts.template import TEMPLATE_ID
from service import rag
from service.deps import AppState, State
from service.errors import ApiError, error_responses
from service.security import ADMIN
from service.settings import DEFAULT_TEMPLATES
from service.text import RequestBody

router = APIRouter(tags=["templates"])
_write_lock = threading.Lock()  # one new version at a time in this process (the file is the guard)


class RenderRequest(RequestBody):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(None, ge=1, description="Template version; null: the latest.")
    question: str = Field(min_length=1, max_length=10_000)
    k: int | None = Field(None, ge=1, description="Passages to retrieve; null: serving's k.")


class NewVersion(RequestBody):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        min_length=1,
        max_length=200_000,
        description="The template file's YAML; its `id` is the path's, its `version` the next one.",
    )


# --- plain functions ---------------------------------------------------------------------------


def style_of(template_id: str, serving_style: str) -> str:
    """The prompt style a template is written for: a built-in default's, else the model's."""
    for style, ref in DEFAULT_TEMPLATES.items():
        if ref.partition("@")[0] == template_id:
            return style
    return serving_style


def summary(registry: TemplateRegistry, template_id: str, serving_style: str) -> dict[str, Any]:
    versions = registry.versions(template_id)
    if not versions:
        raise ApiError(404, f"no prompt template '{template_id}'", param="id")
    latest = registry.get(f"{template_id}@{versions[-1]}")
    return {
        "id": template_id,
        "object": "template",
        "versions": versions,
        "latest": versions[-1],
        "style": style_of(template_id, serving_style),
        "description": latest.description,
        "user_versions": [v for v in versions if not _builtin(registry.get(f"{template_id}@{v}"))],
    }


def _builtin(t: Template) -> bool:
    return t.path is not None and t.path.is_relative_to(builtin_dir())


def get_version(registry: TemplateRegistry, template_id: str, version: int) -> Template:
    try:
        return registry.get(f"{template_id}@{version}")
    except TemplateNotFound as e:
        raise ApiError(404, str(e), param="version") from e


def source_of(t: Template) -> str:
    assert t.path is not None  # every registry template comes from a file
    return t.path.read_text(encoding="utf-8")


def content(t: Template, serving_style: str) -> dict[str, Any]:
    """Every field of the template as loaded (defaults filled in), and its YAML source."""
    fields = dataclasses.asdict(t)
    fields.pop("path")
    for ex in fields["examples"]:
        for p in ex["passages"]:
            for internal in ("ref", "score"):
                p.pop(internal, None)
    return {
        **fields,
        "object": "template.version",
        "ref": t.ref,
        "style": style_of(t.id, serving_style),
        "builtin": _builtin(t),
        "source": source_of(t),
    }


def diff(a: Template, b: Template) -> str:
    """A unified diff of two versions' YAML sources."""
    return "".join(
        difflib.unified_diff(
            source_of(a).splitlines(keepends=True),
            source_of(b).splitlines(keepends=True),
            fromfile=f"{a.id}/{a.version}.yaml",
            tofile=f"{b.id}/{b.version}.yaml",
        )
    )


def add_version(state: AppState, template_id: str, source: str) -> Template:
    """Validate ``source`` and write it as ``template_id``'s next version; reload the registry."""
    if not re.match(TEMPLATE_ID, template_id):
        raise ApiError(400, f"{template_id!r} is not a template id ({TEMPLATE_ID})", param="id")
    with _write_lock:
        # Files on disk decide the next version (another process may have added one).
        registry = TemplateRegistry(state.registry.dirs)
        version = registry.next_version(template_id)
        declared = _declared_version(source)
        if isinstance(declared, int) and declared != version:
            exists = declared in registry.versions(template_id)
            raise ApiError(
                409 if exists else 400,
                f"the source is version {declared}, but "
                + (
                    f"{template_id}@{declared} exists and versions are never replaced; "
                    if exists
                    else ""
                )
                + f"the next version of {template_id} is {version}",
                param="source",
                code="version_exists" if exists else "version_mismatch",
            )
        user_dir = state.settings.home / "prompts"
        where = user_dir / template_id / f"{version}.yaml"
        try:
            written = write_version(user_dir, source, template_id, version)
        except TemplateError as e:
            message = str(e).replace(str(where), f"{template_id}/{version}.yaml")
            raise ApiError(400, message, param="source", code="invalid_template") from e
        except VersionExists as e:
            raise ApiError(409, str(e), param="source", code="version_exists") from e
        state.registry = TemplateRegistry(state.registry.dirs)
    return written


def _declared_version(source: str) -> object:
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError:
        return None  # the loader reports it
    return data.get("version") if isinstance(data, dict) else None


def render(state: AppState, template_id: str, req: RenderRequest) -> dict[str, Any]:
    """The prompt chat would send for ``req.question`` under this template, and its passages."""
    caps = state.settings.service
    if req.k is not None and req.k > caps.max_k:
        raise ApiError(400, f"k is at most {caps.max_k}", param="k")
    if state.llm.count_tokens(req.question) > caps.max_question_tokens:
        raise ApiError(
            413, f"question longer than {caps.max_question_tokens} tokens", param="question"
        )
    ref = template_id if req.version is None else f"{template_id}@{req.version}"
    try:
        template = state.registry.get(ref)
    except TemplateNotFound as e:
        raise ApiError(404, str(e), param="version" if req.version else "id") from e
    serving, serving_version = state.serving_config()
    try:
        plan = state.plan(
            req.question,
            rag.with_retrieval(serving, k=req.k),
            template_ref=template.ref,
            params=rag.sampling_params(serving),
            serving_version=serving_version,
        )
    except PromptBudgetError as e:
        raise ApiError(413, str(e), param="question") from e
    r = plan.rendered
    return {
        "object": "template.render",
        "template": r.template,
        "style": r.style,
        "prompt": format_rendered(r),
        "messages": list(r.messages) if r.messages is not None else None,
        "prompt_tokens": r.prompt_tokens,
        "passages": [_passage(n, p) for n, p in enumerate(r.passages, 1)],
        "dropped": len(r.dropped),
        "examples": len(r.examples),
        "retrieval_k": plan.retrieval_k,
        "serving_version": serving_version,
    }


def _passage(n: int, p: Any) -> dict[str, Any]:
    hit = p.ref.hit  # the retrieved window's best chunk (rag.to_passage)
    return {
        "index": n,
        "chunk_id": hit.chunk_id,
        "doc_id": hit.doc_id,
        "source": p.source,
        "page": p.page,
        "heading": p.heading,
        "score": round(float(p.score), 4),
        "text": p.text,
    }


# --- routes ------------------------------------------------------------------------------------


@router.get(
    "/v1/templates",
    summary="List prompt templates",
    response_description="One object per template id, with its versions.",
)
async def list_templates(state: State) -> dict[str, Any]:
    registry, style = state.registry, state.llm.style
    ids = sorted({t.id for t in registry.list()})
    return {"object": "list", "data": [summary(registry, i, style) for i in ids]}


@router.get(
    "/v1/templates/{template_id}/versions/{version}",
    responses=error_responses(404),
    summary="Read one template version",
    response_description="The template's fields as loaded, and its YAML `source`.",
)
async def read_version(template_id: str, version: int, state: State) -> dict[str, Any]:
    t = get_version(state.registry, template_id, version)
    return await run_in_threadpool(content, t, state.llm.style)


@router.get(
    "/v1/templates/{template_id}/diff",
    responses=error_responses(404),
    summary="Diff two template versions",
    response_description="A unified diff of the two versions' YAML sources.",
)
async def diff_versions(
    template_id: str,
    state: State,
    from_: Annotated[int, Query(alias="from", ge=1, description="The older version.")],
    to: Annotated[int, Query(ge=1, description="The newer version.")],
) -> dict[str, Any]:
    a = get_version(state.registry, template_id, from_)
    b = get_version(state.registry, template_id, to)
    return {"object": "template.diff", "from": from_, "to": to, "diff": diff(a, b)}


@router.post(
    "/v1/templates/{template_id}/render",
    responses=error_responses(400, 404),
    dependencies=[ADMIN],
    summary="Render the prompt for a question",
    response_description="The prompt text the model would get, and the retrieved passages.",
)
async def render_prompt(template_id: str, req: RenderRequest, state: State) -> dict[str, Any]:
    return await run_in_threadpool(render, state, template_id, req)


@router.post(
    "/v1/templates/{template_id}/versions",
    responses=error_responses(400, 409),
    dependencies=[ADMIN],
    status_code=201,
    summary="Add a template version",
    response_description="The template, now with the new version as its latest.",
)
async def create_version(template_id: str, req: NewVersion, state: State) -> dict[str, Any]:
    written = await run_in_threadpool(add_version, state, template_id, req.source)
    return {
        **summary(state.registry, template_id, state.llm.style),
        "version": written.version,
        "ref": written.ref,
    }
