"""Documents through the API: upload (same pipeline and limits as `ragtune ingest`), list, delete.

The list carries the index version it was read from and the quarantine with its reasons, and
takes optional ``q`` (a case-insensitive substring of the source or title) and ``kind`` filters,
so the console's Documents page needs nothing but this route. Uploads are stored content-addressed under ``HOME/uploads``: the client's file name is kept as
metadata only and never chooses a path on disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from ingest.convert import detect_kind
from ingest.faults import fault_point
from ingest.index import DocumentRecord
from ingest.index.errors import storage_failure
from ingest.model import UnsupportedFile
from ingest.pipeline import Ingestor, Summary
from ingest.writer import Writer
from service.deps import AppState, State
from service.errors import ApiError, error_responses
from service.paths import public_path, redact

router = APIRouter()
_write_lock = asyncio.Lock()  # one writer at a time inside this process; others queue here


def _record(d: Any, home: Path) -> dict[str, Any]:
    return {
        "id": d.doc_id,
        "object": "document",
        # As citations and retrieval filters name it: relative to HOME when under it (uploads).
        "source": public_path(d.source, home),
        "kind": d.kind,
        "title": d.title,
        "chunks": d.n_chunks,
        "version": d.version,
        "ingested_at": d.ingested_at,
    }


@router.get("/v1/documents")
async def list_documents(
    state: State,
    q: Annotated[
        str | None,
        Query(max_length=500, description="Only documents whose source or title contains this."),
    ] = None,
    kind: Annotated[
        str | None, Query(max_length=32, description="Only documents of this kind (pdf, html...).")
    ] = None,
) -> dict[str, Any]:
    version = state.index.version  # read first: the list is at least this new
    docs = await run_in_threadpool(state.index.documents)
    held = await run_in_threadpool(state.index.quarantined)
    needle = (q or "").strip().casefold()
    home = state.settings.home
    return {
        "object": "list",
        "data": [
            _record(d, home)
            for d in docs
            if (not kind or d.kind == kind)
            and (
                not needle or needle in f"{public_path(d.source, home)}\n{d.title or ''}".casefold()
            )
        ],
        "quarantined": [
            {"source": public_path(h.source, home), "reason": redact(h.reason, home), "at": h.at}
            for h in held
        ],
        "index_version": version,
    }


@router.post("/v1/documents", status_code=201, responses=error_responses(400))
async def upload(file: UploadFile, state: State) -> dict[str, Any]:
    name = Path(file.filename or "upload").name
    try:
        suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        detect_kind(name)
    except UnsupportedFile as e:
        raise ApiError(400, str(e), param="file") from e
    limit = int(state.settings.service.max_upload_mb * 1e6)
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(
            413, f"upload larger than {state.settings.service.max_upload_mb:g} MB", param="file"
        )
    folder = state.settings.home / "uploads"
    path = folder / f"{hashlib.sha256(data).hexdigest()[:32]}{suffix}"
    async with _write_lock:
        summary, record = await run_in_threadpool(_ingest_one, state, folder, path, data)
    if record is None:  # rejected: nothing was committed and the bytes are gone
        reason = summary.problems[0]["reason"] if summary.problems else "conversion failed"
        raise ApiError(422, f"{name}: {reason}", param="file", code="document_quarantined")
    return {
        **_record(record, state.settings.home),
        "filename": name,
        "status": "unchanged" if summary.unchanged else "indexed",
    }


def _ingest_one(
    state: AppState, folder: Path, path: Path, data: bytes
) -> tuple[Summary, DocumentRecord | None]:
    """Store and ingest one upload; a rejected one is not quarantined and its bytes are removed.

    The client hears the reason in the response, so recording it in the store would only write a
    new index version for a file that is then deleted.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _store(path, data)
    except OSError as e:
        failure = storage_failure(e, state.index.version + 1, state.index.version)
        if failure is None:
            raise
        raise failure from e
    s = state.settings
    record = None
    try:
        wait = s.service.writer_wait_s
        # Merging is the refresher's job (service.app): an upload answers once it is committed.
        ingestor = Ingestor(
            state.index, state.embedder, s.chunk, s.ingest, lock_timeout_s=wait, merge=False
        )
        summary = ingestor.run([path], quarantine=False)
        record = state.index.document(str(path.resolve()))
    finally:
        # Rejected, or the run failed: no bytes stay behind, unless they are a document that
        # was indexed before (the same bytes, re-ingested after a settings change).
        if record is None and state.index.document(str(path.resolve())) is None:
            path.unlink(missing_ok=True)
    return summary, record


def _store(path: Path, data: bytes) -> None:
    """Write ``data`` at ``path`` through a temporary file of this request's own, then rename.

    Another replica may be storing the same bytes at this moment (a client retrying through a
    load balancer): a temporary name shared by both would let one truncate, or rename away,
    the file the other is writing. Both renames land the same bytes, so the last one wins.
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        fault_point("upload-part-written")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # a full disk leaves no partial file either


@router.delete("/v1/documents/{doc_id}", responses=error_responses(404))
async def delete_document(doc_id: str, state: State) -> dict[str, Any]:
    docs = await run_in_threadpool(state.index.documents)
    match = next((d for d in docs if d.doc_id == doc_id), None)
    if match is None:
        raise ApiError(404, f"no document with id '{doc_id}'", param="doc_id")
    async with _write_lock:
        await run_in_threadpool(_remove, state, match.source)
    return {"id": doc_id, "object": "document", "deleted": True}


def _remove(state: AppState, source: str) -> None:
    with Writer.acquire(state.index, state.settings.service.writer_wait_s) as writer:
        writer.remove(source)
        writer.commit()
    uploads = (state.settings.home / "uploads").resolve()
    path = Path(source)
    if path.parent == uploads:  # ours: the upload's stored bytes go too
        path.unlink(missing_ok=True)
