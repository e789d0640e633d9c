"""Evaluation datasets and sweeps through the API: what the console's Evaluations page starts.

A sweep is ``ragtune eval run`` in a child process over a dataset of ``HOME/eval/datasets``
(``service.sweeps``, ``service.datasets``); its run folder is then one of ``/v1/eval/runs``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from pydantic import ValidationError as PydanticValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from service.datasets import DatasetError
from service.deps import Sweeps
from service.errors import ApiError, error_responses
from service.sweeps import SweepError, sweep_toml
from service.text import RequestBody

router = APIRouter(tags=["evaluation"])

Scalar = StrictStr | StrictInt | StrictFloat | StrictBool


class DatasetUpload(RequestBody):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="File name, `[A-Za-z0-9._-]+.jsonl`; never a path.")
    content: str = Field(description="The JSONL text, one case a line.")


class SweepRequest(RequestBody):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(description="A dataset's `id` (its file name).")
    axes: dict[str, Scalar | list[Scalar]] = Field(
        default_factory=dict,
        description='Tunable path -> values, as in a sweep file\'s [axes] ({"rag.retrieval.k": '
        "[3, 5]}); a left-out axis keeps the serving value.",
    )
    limit: int | None = Field(None, ge=1, description="Only the first N questions.")
    search: dict[str, Scalar] | None = Field(
        None, description='A sweep file\'s [search], e.g. {"method": "halving", "eta": 2}.'
    )
    seed: int | None = Field(None, ge=0, description="Sampling seed (default 0).")


def api_error(e: SweepError | DatasetError, rename: str | None = None) -> ApiError:
    """The error as the API answers it; ``rename`` replaces a dataset error's ``name`` param."""
    if isinstance(e, SweepError):
        return ApiError(e.status, str(e), param=e.param, code=e.code)
    return ApiError(e.status, str(e), param=rename if rename and e.param == "name" else e.param)


async def upload_of(request: Request, limit: int) -> tuple[str, bytes]:
    """(name, content) of a multipart ``file`` (``name`` overrides its file name) or JSON body."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        file, name = form.get("file"), form.get("name")
        if not isinstance(file, UploadFile):
            raise ApiError(422, "file: a multipart upload needs a 'file' part", param="file")
        return str(name or file.filename or ""), await file.read(limit + 1)
    try:
        body = DatasetUpload.model_validate_json(await request.body())
    except PydanticValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ApiError(422, f"{loc}: {first['msg']}" if loc else first["msg"], param=loc) from e
    return body.name, body.content.encode("utf-8")


# --- routes ------------------------------------------------------------------------------------


@router.get(
    "/v1/eval/datasets",
    summary="List evaluation datasets",
    response_description="The JSONL files in HOME/eval/datasets with their case counts; a file "
    "the loader rejects is listed with its `error`.",
)
async def list_datasets(sweeps: Sweeps) -> dict[str, Any]:
    return {"object": "list", "data": await run_in_threadpool(sweeps.datasets.entries)}


@router.post(
    "/v1/eval/datasets",
    responses=error_responses(400, 409),
    status_code=201,
    summary="Add an evaluation dataset",
    response_description="The stored dataset; a file the loader rejects is a 400 with its "
    "message, and is not stored.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": DatasetUpload.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "name": {"type": "string"},
                        },
                        "required": ["file"],
                    }
                },
            },
        }
    },
)
async def add_dataset(request: Request, sweeps: Sweeps) -> dict[str, Any]:
    name, content = await upload_of(request, sweeps.datasets.max_bytes)
    try:
        return await run_in_threadpool(sweeps.datasets.add, name, content)
    except DatasetError as e:
        raise api_error(e) from e


@router.post(
    "/v1/eval/sweeps",
    responses=error_responses(400, 404, 409),
    status_code=202,
    summary="Start an evaluation sweep",
    response_description="The sweep, queued: poll GET /v1/eval/sweeps/{id} for its progress.",
)
async def start_sweep(req: SweepRequest, sweeps: Sweeps) -> dict[str, Any]:
    try:
        toml = sweep_toml(req.axes, req.search, req.seed)
        sweep = await sweeps.start(req.dataset, toml, req.limit)
    except (SweepError, DatasetError) as e:
        raise api_error(e, "dataset") from e
    return sweep.as_dict()


@router.get(
    "/v1/eval/sweeps",
    summary="List sweeps",
    response_description="Sweeps this service started since it started, newest first.",
)
async def list_sweeps(sweeps: Sweeps) -> dict[str, Any]:
    return {"object": "list", "data": await run_in_threadpool(sweeps.entries)}


@router.get(
    "/v1/eval/sweeps/{sweep_id}",
    responses=error_responses(404),
    summary="A sweep's status and progress",
    response_description="status (queued, running, succeeded, failed, cancelled), answers done "
    "of total, and the report's URL once it succeeded.",
)
async def read_sweep(sweep_id: str, sweeps: Sweeps) -> dict[str, Any]:
    try:
        sweep = sweeps.get(sweep_id)
    except SweepError as e:
        raise api_error(e) from e
    return await run_in_threadpool(sweep.as_dict)


@router.delete(
    "/v1/eval/sweeps/{sweep_id}",
    responses=error_responses(404, 409),
    summary="Cancel a sweep",
    response_description="The sweep, cancelled; its finished answers stay in the run folder and "
    "the same sweep started again resumes from them.",
)
async def cancel_sweep(sweep_id: str, sweeps: Sweeps) -> dict[str, Any]:
    try:
        sweep = await run_in_threadpool(sweeps.cancel, sweep_id)
    except SweepError as e:
        raise api_error(e) from e
    return sweep.as_dict()
