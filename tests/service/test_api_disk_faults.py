"""An upload when the disk is full or failing: a 503 in OpenAI's shape, no bytes left, a retry that works.

503 rather than 507: clients (the ``openai`` one included) treat a 503 as "try again later", and
the index is unchanged, so the same upload succeeds once space is freed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.embed import Embedder
from ingest.faults import FAULT_ENV
from service.settings import Settings
from tests.service.test_api import assert_openai_error
from tests.service.test_api_limits import client_for, writable

__all__ = ["writable"]  # the fixture, imported for pytest


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("upload-part-written:ENOSPC", "storage_full"),  # storing the upload's own bytes
        ("commit-tmp-written:ENOSPC", "storage_full"),  # writing the index version
        ("commit-sqlite-open:EIO", "storage_error"),  # inside the SQLite switch
    ],
)
def test_upload_on_a_full_or_failing_disk_is_a_503_and_leaves_nothing(
    writable: Settings,
    embedder: Embedder,
    shared_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    code: str,
) -> None:
    corpus = shared_data / "corpus"
    guide = ("guide.txt", (corpus / "llm-guide.txt").read_bytes(), "text/plain")
    zlib = ("zlib.html", (corpus / "zlib-usage.html").read_bytes(), "text/html")
    uploads = writable.home / "uploads"
    with client_for(writable, embedder) as c:
        first = c.post("/v1/documents", files={"file": guide})
        assert first.status_code == 201, first.text
        before = c.get("/v1/documents").json()
        stored = sorted(uploads.iterdir())

        monkeypatch.setenv(FAULT_ENV, fault)
        resp = c.post("/v1/documents", files={"file": zlib})
        err = assert_openai_error(resp, 503)
        assert err["code"] == code and err["type"] == "service_unavailable"
        assert resp.headers["Retry-After"] == "60" and "nothing was changed" in err["message"]
        assert sorted(uploads.iterdir()) == stored  # no partial file, no orphaned upload
        assert c.get("/v1/documents").json() == before  # the last version still serves
        hits = c.post("/v1/retrieve", json={"query": "large language model"}).json()["data"]
        assert hits and {h["doc_id"] for h in hits} == {first.json()["id"]}

        monkeypatch.delenv(FAULT_ENV)  # space freed: the same upload goes through
        again = c.post("/v1/documents", files={"file": zlib})
        assert again.status_code == 201, again.text
        listed = c.get("/v1/documents").json()
        assert sorted(d["id"] for d in listed["data"]) == sorted(
            [first.json()["id"], again.json()["id"]]
        )
        assert listed["index_version"] == before["index_version"] + 1
        assert len(list(uploads.iterdir())) == 2
