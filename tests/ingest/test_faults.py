"""A full or failing disk during a commit: a clear error, the last version intact, a rerun that completes.

The faults are injected at the commit's named points (``ingest.faults``): an ``OSError`` raised
where the version directory or the SQLite transaction is written, or, on a small tmpfs, a disk
really filled so SQLite itself reports it full.
"""

from __future__ import annotations

import errno
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.embed import Embedder
from ingest.faults import FAULT_ENV, SIGNAL_ENV
from ingest.index import IndexStoreError, StorageError, VectorIndex
from ingest.pipeline import Summary
from ingest.scan import source_of
from ingest.watch import watch
from ingest.writer import Writer
from tests.conftest import copy_files, make_ingestor, open_store, wait_until
from tests.ingest.test_index import (
    commit_doc,
    make_doc,
    open_index,
    sources_found,
    unit_vectors,
    version_dirs,
)


def assert_still_version_one(root: Path, idx: VectorIndex) -> None:
    """Only the first version is on disk and served, with its rows, vectors and BM25 in step."""
    assert version_dirs(root) == ["v00000001"]  # the failed version's bytes were freed
    for index in (idx, reopened := open_index(root)):
        assert index.version == 1 and [d.source for d in index.documents()] == ["a.md"]
        assert sources_found(index, unit_vectors(4, 2)) == {"a.md"} and index.verify() == []
    reopened.close()


def rerun_completes(root: Path, idx: VectorIndex) -> None:
    assert commit_doc(idx, "b.md", 4, seed=2) == 2
    assert [d.source for d in idx.documents()] == ["a.md", "b.md"]
    assert idx.stats()["ntotal"] == idx.stats()["chunks"] == 7 and idx.verify() == []
    assert version_dirs(root) == ["v00000001", "v00000002"]


@pytest.mark.parametrize(
    ("point", "code"),
    [
        ("commit-tmp-written", "ENOSPC"),  # the version directory cannot be finished
        ("commit-renamed", "EIO"),  # it is in place, the pointer not yet moved
        ("commit-sqlite-open", "ENOSPC"),  # inside the SQLite transaction that moves it
    ],
)
def test_disk_error_mid_commit_keeps_the_version_and_a_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str, code: str
) -> None:
    root = tmp_path / "store"
    idx = open_index(root)
    try:
        commit_doc(idx, "a.md", 3, seed=1)
        monkeypatch.setenv(FAULT_ENV, f"{point}:{code}")
        with pytest.raises(StorageError) as failed, Writer.acquire(idx) as w:
            w.put(*make_doc("b.md", 4, seed=2))
            w.commit()
        assert failed.value.errno == getattr(errno, code)
        message = str(failed.value)
        assert "could not write index version 2" in message and os_reason(code) in message
        assert "version 1 is unchanged" in message and "\n" not in message
        assert_still_version_one(root, idx)
        monkeypatch.delenv(FAULT_ENV)
        rerun_completes(root, idx)
    finally:
        idx.close()


def os_reason(code: str) -> str:
    return os.strerror(getattr(errno, code))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs: a disk that really fills up (needs the right to mount, e.g. root in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_sqlite_disk_full_is_reported_and_the_rerun_completes(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite rolls back by itself on a full disk; the error must say so, not 'cannot rollback'."""
    root, ballast = small_disk / "store", small_disk / "ballast"
    idx = open_index(root)
    try:
        commit_doc(idx, "a.md", 3, seed=1)
        # The version directory is written; then the disk fills before SQLite writes its rows.
        monkeypatch.setenv(FAULT_ENV, "commit-renamed:fill")
        monkeypatch.setenv(SIGNAL_ENV, str(ballast))
        with pytest.raises(StorageError, match="disk is full") as failed, Writer.acquire(idx) as w:
            w.put(*make_doc("b.md", 4, seed=2))
            w.commit()
        assert failed.value.errno == errno.ENOSPC and ballast.stat().st_size > 1_000_000
        assert_still_version_one(root, idx)
        monkeypatch.delenv(FAULT_ENV)
        ballast.unlink()  # space freed
        rerun_completes(root, idx)
    finally:
        idx.close()


@pytest.mark.slow
def test_watch_reports_a_full_disk_and_retries_until_it_succeeds(
    tmp_path: Path, shared_data: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "drop"
    [doc] = copy_files([shared_data / "bench" / "nodejs-api" / "punycode.md"], drop)
    index = open_store(tmp_path / "index", embedder)
    errors: list[IndexStoreError] = []
    summaries: list[Summary] = []
    stop = threading.Event()
    monkeypatch.setenv(FAULT_ENV, "commit-tmp-written:ENOSPC")
    thread = threading.Thread(
        target=watch,
        args=(make_ingestor(index, embedder), [drop]),
        kwargs={
            "interval_s": 0.1,
            "on_summary": summaries.append,
            "on_error": errors.append,
            "stop": stop,
        },
    )
    thread.start()
    try:
        wait_until(lambda: bool(errors) or not thread.is_alive(), 120, "the failed commit")
        assert isinstance(errors[0], StorageError) and thread.is_alive()
        assert index.version == 0 and index.documents() == []
        monkeypatch.delenv(FAULT_ENV)  # space freed: the watcher's next try goes through
        wait_until(lambda: bool(summaries) or not thread.is_alive(), 120, "the retried run")
        assert thread.is_alive() and summaries[0].added == 1
        assert [d.source for d in index.documents()] == [source_of(doc)]
        assert index.verify() == []
    finally:
        stop.set()
        thread.join(30)
        index.close()
    assert not thread.is_alive()


def test_once_parks_only_while_no_signal_file_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``:once`` parks the first process (it leaves the signal file); later ones carry on."""
    from ingest.faults import fault_point

    signal_file = tmp_path / "parked"
    monkeypatch.setenv(FAULT_ENV, "ray-encode:once")
    parker = threading.Thread(target=fault_point, args=("ray-encode",), daemon=True)
    monkeypatch.delenv(SIGNAL_ENV, raising=False)
    with pytest.raises(RuntimeError, match="needs"):
        fault_point("ray-encode")
    monkeypatch.setenv(SIGNAL_ENV, str(signal_file))
    parker.start()
    wait_until(signal_file.exists, 10, "the first caller to park")
    assert parker.is_alive()  # parked (a daemon thread: it ends with the test process)
    fault_point("ray-encode")  # returns at once: the signal file is there
    fault_point("other-point")
