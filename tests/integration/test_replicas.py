"""Two real `ragtune serve` processes over one data directory: serving replicas of one index.

Uploads through either replica are committed one at a time under the store's writer lock; each
replica picks up the other's commits in its background refresh, so a new document is served by
both within the poll interval, and searches never wait on a commit.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import REFRESH_INTERVAL_S
from tests.conftest import REPO, cli_command, ragtune_serve, wait_until
from tests.integration.conftest import keyed_serve_env
from tests.service.test_api_templates import V2, as_version

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN_KEY = "replica-admin-key"
QUERY_KEY = "replica-query-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
QUERY = {"Authorization": f"Bearer {QUERY_KEY}"}
# Loading a new version after the poll (a few hundred chunks here) plus a loaded 2-core machine.
MARGIN_S = 1.5


@dataclass
class Replicas:
    home: Path
    a: str
    b: str


@pytest.fixture(scope="module")
def replicas(
    service_home: Path, cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    """Replicas A and B on one copy of the shared test home, keyed as an operator runs them."""
    root = tmp_path_factory.mktemp("replicas")
    home = root / "home"
    shutil.copytree(service_home, home, ignore=shutil.ignore_patterns("feedback.sqlite*"))
    env = keyed_serve_env(cli_env, QUERY_KEY, ADMIN_KEY)
    with (
        ragtune_serve(home, env, root / "a.log") as a,
        ragtune_serve(home, env, root / "b.log") as b,
    ):
        yield Replicas(home, a, b)


def note(tag: str) -> tuple[str, bytes]:
    """A small Markdown document that only its own made-up word tells apart from the others.

    The notes are near-duplicates, so the dense side ranks them by chance: ``serves`` searches
    BM25, which the same index version carries, and on which the made-up word decides.
    """
    text = (
        f"# Field note {tag}\n\n"
        f"The {tag} valve on the replica rig opens at {len(tag) * 37} kilopascals. "
        f"Operators log every {tag} reading twice a day in the blue binder.\n"
    )
    return f"{tag}.md", text.encode()


def query_of(tag: str) -> str:
    return f"At what pressure does the {tag} valve on the replica rig open?"


def upload(base: str, name: str, data: bytes) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/documents", files={"file": (name, data)}, headers=ADMIN, timeout=120
    )


def retrieved(base: str, query: str, **options: Any) -> list[dict[str, Any]]:
    body = {"query": query, "k": 5, **options}
    resp = httpx.post(f"{base}/v1/retrieve", json=body, headers=QUERY, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]  # type: ignore[no-any-return]


def serves(base: str, doc_id: str, tag: str) -> bool:
    return any(h["doc_id"] == doc_id for h in retrieved(base, query_of(tag), mode="bm25"))


def listed(base: str) -> set[str]:
    resp = httpx.get(f"{base}/v1/documents", headers=ADMIN, timeout=30)
    assert resp.status_code == 200, resp.text
    return {d["id"] for d in resp.json()["data"]}


def index_version(base: str) -> int:
    resp = httpx.get(f"{base}/readyz", headers=QUERY, timeout=10)  # keyed: details need a key
    assert resp.status_code == 200, resp.text
    return int(resp.json()["index_version"])


def seconds_until_served(base: str, doc_id: str, tag: str, since: float) -> float:
    """Poll ``base`` until it retrieves ``doc_id``; seconds from ``since`` (fails after 30 s)."""
    while not serves(base, doc_id, tag):
        assert time.monotonic() - since < 30, f"{tag} never reached {base}"
        time.sleep(0.05)
    return time.monotonic() - since


def test_an_upload_through_one_replica_is_served_by_the_other_within_the_poll_interval(
    replicas: Replicas,
) -> None:
    lags = []
    for i, (writer, reader) in enumerate(
        [(replicas.a, replicas.b)] * 3 + [(replicas.b, replicas.a)]
    ):
        tag = f"quillfern{i}"
        # Each trial starts right after the reader's last refresh; a different pause each time
        # lands the commits at different points of its poll interval.
        time.sleep(i * REFRESH_INTERVAL_S / 4)
        resp = upload(writer, *note(tag))
        committed = time.monotonic()
        assert resp.status_code == 201, resp.text
        doc_id = resp.json()["id"]
        assert serves(writer, doc_id, tag)  # the writer serves its own commit at once
        lags.append(seconds_until_served(reader, doc_id, tag, committed))
    print(f"\nseconds until the other replica served the upload: {lags}")
    assert max(lags) <= REFRESH_INTERVAL_S + MARGIN_S, lags
    assert index_version(replicas.a) == index_version(replicas.b)


def test_concurrent_uploads_through_both_replicas_are_all_committed(
    replicas: Replicas, cli_env: dict[str, str]
) -> None:
    tags = [f"brassmoor{i}" for i in range(8)]
    bases = [replicas.a, replicas.b] * 4
    with ThreadPoolExecutor(len(tags)) as pool:
        futures = [
            pool.submit(upload, base, *note(tag)) for tag, base in zip(tags, bases, strict=True)
        ]
        responses = [f.result() for f in futures]
    assert [r.status_code for r in responses] == [201] * len(tags), [r.text for r in responses]
    assert {r.json()["status"] for r in responses} == {"indexed"}
    ids = {tag: r.json()["id"] for tag, r in zip(tags, responses, strict=True)}
    # Every upload is its own commit, one after another under the writer lock: none is lost.
    versions = {r.json()["version"] for r in responses}
    assert len(versions) == len(tags)
    # Other versions may come between them (a background segment merge): wait for the last.
    last = max(versions)
    for base in (replicas.a, replicas.b):
        assert set(ids.values()) <= listed(base)  # the docstore: at once, on both
        wait_until(
            lambda base=base: index_version(base) >= last,  # type: ignore[misc]
            REFRESH_INTERVAL_S + MARGIN_S,
            f"{base} to load the last commit",
        )
        for tag, doc_id in ids.items():
            assert serves(base, doc_id, tag), (base, tag)
    check = subprocess.run(
        cli_command("docs", "--check", "--home", str(replicas.home)),
        env=cli_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "FAISS, BM25 and SQLite agree" in check.stdout


def test_readers_never_wait_for_the_writer_lock(replicas: Replicas) -> None:
    """Searches take no lock another process can hold; an upload waits only ``writer_wait_s``.

    The test holds the store's writer lock itself, as an ingest run does while it commits.
    """
    lock = os.open(replicas.home / "index" / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        held = time.monotonic()
        refused = upload(replicas.a, *note("tallowmere"))
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "index_busy"
        assert refused.headers["Retry-After"]
        for base in (replicas.a, replicas.b):
            started = time.monotonic()
            assert retrieved(base, query_of("quillfern0"))
            assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
            assert time.monotonic() - started < 1.0
        assert time.monotonic() - held < 10  # all of it happened with the lock held
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    retried = upload(replicas.a, *note("tallowmere"))
    assert retried.status_code == 201, retried.text


def test_a_replica_keeps_answering_while_the_other_commits(replicas: Replicas) -> None:
    done = threading.Event()
    latencies: list[float] = []
    statuses: list[int] = []

    def read() -> None:
        with httpx.Client(base_url=replicas.b, headers=QUERY, timeout=30) as http:
            while not done.is_set():
                started = time.monotonic()
                resp = http.post("/v1/retrieve", json={"query": query_of("quillfern1"), "k": 5})
                latencies.append(time.monotonic() - started)
                statuses.append(resp.status_code)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(4):
            resp = upload(replicas.a, *note(f"emberlock{i}"))
            assert resp.status_code == 201, resp.text
        last = resp.json()["version"]
        wait_until(
            lambda: index_version(replicas.b) >= last,
            REFRESH_INTERVAL_S + MARGIN_S,
            "B to load A's commits",
        )
    finally:
        done.set()
        reader.join()
    print(
        f"\nB answered {len(statuses)} searches during A's commits, "
        f"slowest {max(latencies) * 1000:.0f} ms"
    )
    assert statuses and set(statuses) == {200}
    assert max(latencies) < REFRESH_INTERVAL_S


def test_the_same_bytes_through_both_replicas_at_once(replicas: Replicas) -> None:
    """A client retrying through a load balancer: both requests store and ingest one document."""
    for i in range(4):
        name, data = note(f"copperwick{i}")
        with ThreadPoolExecutor(2) as pool:
            a, b = (
                f.result()
                for f in [
                    pool.submit(upload, replicas.a, name, data),
                    pool.submit(upload, replicas.b, name, data),
                ]
            )
        assert (a.status_code, b.status_code) == (201, 201), (a.text, b.text)
        assert a.json()["id"] == b.json()["id"]
        stored = replicas.home / a.json()["source"]
        assert stored.is_file(), f"round {i}: {stored} lost"


def test_a_delete_through_one_replica_stops_the_other_citing_at_once(replicas: Replicas) -> None:
    """Hits are read from the shared docstore, so rows deleted by a commit the other replica has
    not loaded yet are skipped: no wait for the poll interval before a deleted text is gone."""
    resp = upload(replicas.a, *note("saltmarrow"))
    assert resp.status_code == 201, resp.text
    doc_id = resp.json()["id"]
    seconds_until_served(replicas.b, doc_id, "saltmarrow", time.monotonic())
    gone = httpx.delete(f"{replicas.b}/v1/documents/{doc_id}", headers=ADMIN, timeout=60)
    assert gone.status_code == 200, gone.text
    for base in (replicas.a, replicas.b):
        assert not serves(base, doc_id, "saltmarrow")
        assert doc_id not in listed(base)
    assert not (replicas.home / resp.json()["source"]).exists()


def test_a_template_written_through_one_replica_is_served_by_the_other(
    replicas: Replicas,
) -> None:
    """Regression: each replica loaded the templates once, at start, so a version written
    through another one was a 404 there (and a chat naming it a 400) until a restart."""
    source = as_version(V2, 3, description="Written through replica A.")
    made = httpx.post(
        f"{replicas.a}/v1/templates/grounded-qa/versions",
        json={"source": source},
        headers=ADMIN,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    written = time.monotonic()

    def served() -> bool:
        resp = httpx.get(
            f"{replicas.b}/v1/templates/grounded-qa/versions/3", headers=QUERY, timeout=10
        )
        return resp.status_code == 200 and resp.json()["source"] == source

    wait_until(served, REFRESH_INTERVAL_S + MARGIN_S, "B to serve grounded-qa@3")
    print(f"\nB served the template {time.monotonic() - written:.2f} s after A wrote it")
    listed = httpx.get(f"{replicas.b}/v1/templates", headers=QUERY, timeout=10).json()["data"]
    assert next(t for t in listed if t["id"] == "grounded-qa")["versions"] == [1, 2, 3]
