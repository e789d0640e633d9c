"""Tests for the conversion worker pool: real spawned workers, real time and memory limits."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from ingest.pool import ConversionPool, Converted, Failed, Outcome, convert_path
from tests.conftest import copy_files, random_pdf, truncated_pdf


def by_name(outcomes: list[Outcome]) -> dict[str, Outcome]:
    names = [o.path.name for o in outcomes]
    assert len(names) == len(set(names)), f"an outcome was reported twice: {names}"
    return dict(zip(names, outcomes, strict=True))


@pytest.fixture
def docs(shared_data: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    node = shared_data / "bench" / "nodejs-api"
    copy_files([node / "punycode.md", shared_data / "papers" / "u-net.pdf"], folder)
    (folder / "note.txt").write_text("A short note about conversion pools.\n", encoding="utf-8")
    return folder


def test_converts_and_classifies_failures(docs: Path) -> None:
    paths = sorted(docs.iterdir())
    (docs / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    random_pdf(docs / "noise.pdf")
    paths = [*paths, docs / "image.png", docs / "noise.pdf", docs / "missing.md"]
    with ConversionPool(workers=2, timeout_s=60) as pool:
        got = by_name(list(pool.imap(paths)))
    assert set(got) == {p.name for p in paths}
    for name in ("punycode.md", "u-net.pdf", "note.txt"):
        outcome = got[name]
        assert isinstance(outcome, Converted), outcome
        assert outcome.content_hash == hashlib.sha256((docs / name).read_bytes()).hexdigest()
    assert got["u-net.pdf"].document.kind == "pdf"  # type: ignore[union-attr]
    assert len(got["u-net.pdf"].document.pages) == 8  # type: ignore[union-attr]
    assert got["note.txt"].document.text == "A short note about conversion pools."  # type: ignore[union-attr]

    png = got["image.png"]
    assert isinstance(png, Failed) and png.skipped
    assert png.reason == "unsupported file type '.png'"
    noise = got["noise.pdf"]
    assert isinstance(noise, Failed) and not noise.skipped and noise.reason
    assert noise.content_hash == hashlib.sha256((docs / "noise.pdf").read_bytes()).hexdigest()
    missing = got["missing.md"]
    assert isinstance(missing, Failed) and not missing.skipped
    assert missing.content_hash is None and missing.reason.startswith("cannot read:")
    assert mp.active_children() == []


def test_truncated_pdf_is_quarantined_not_skipped(shared_data: Path, tmp_path: Path) -> None:
    outcome = convert_path(truncated_pdf(shared_data, tmp_path / "cut.pdf"), max_bytes=10**9)
    assert isinstance(outcome, Failed)
    assert not outcome.skipped and outcome.reason and outcome.content_hash is not None


def test_file_over_size_limit_is_not_read(docs: Path) -> None:
    with ConversionPool(max_file_mb=0.001) as pool:
        [outcome] = list(pool.imap([docs / "punycode.md"]))
    assert isinstance(outcome, Failed) and not outcome.skipped
    assert outcome.content_hash is None
    assert outcome.reason.startswith("file too large (")


def test_tiny_timeout_kills_slow_conversions_and_pool_survives(docs: Path) -> None:
    paths = [docs / "u-net.pdf", docs / "note.txt", docs / "punycode.md", docs / "u-net.pdf"]
    with ConversionPool(timeout_s=0.001) as pool:
        outcomes = list(pool.imap(paths))
    assert [o.path for o in outcomes] == paths  # one at a time: a fresh worker after each kill
    # A PDF takes ~0.1 s: always killed. The tiny text files may finish within the millisecond
    # (worker start-up does not count against them); either way each gets an outcome.
    for outcome in outcomes:
        if outcome.path.suffix == ".pdf":
            assert isinstance(outcome, Failed) and not outcome.skipped
        if isinstance(outcome, Failed):
            assert outcome.reason == "conversion timed out after 0.001 s"
        else:
            assert isinstance(outcome, Converted)
    assert mp.active_children() == []


@pytest.mark.slow
def test_hung_conversion_times_out_and_next_files_convert(docs: Path) -> None:
    # Reading a FIFO nobody writes to blocks forever: a real hang, like a dead network mount.
    fifo = docs / "hung.txt"
    os.mkfifo(fifo)
    paths = [fifo, docs / "note.txt", docs / "u-net.pdf"]
    with ConversionPool(workers=1, timeout_s=3.0) as pool:
        outcomes = list(pool.imap(paths))
    assert [o.path for o in outcomes] == paths
    hung, note, pdf = outcomes
    assert isinstance(hung, Failed) and hung.reason == "conversion timed out after 3 s"
    assert isinstance(note, Converted) and isinstance(pdf, Converted)
    assert mp.active_children() == []


def test_memory_limit_fails_the_document_not_the_run(docs: Path) -> None:
    big = docs / "big.txt"
    big.write_text(("many words in a very large text file\n") * 450_000, encoding="utf-8")  # 17 MB
    with ConversionPool(workers=1, memory_mb=128) as pool:
        outcomes = list(pool.imap([big, docs / "note.txt"]))
    first, second = outcomes
    assert isinstance(first, Failed) and not first.skipped
    assert first.path == big
    assert first.reason in {
        "conversion exceeded the worker memory limit",
        "conversion worker died (exit code 1)",
    }
    assert isinstance(second, Converted)
    assert second.document.text == "A short note about conversion pools."


def test_consumer_stopping_early_leaves_no_workers(docs: Path) -> None:
    paths = [docs / "note.txt", docs / "punycode.md", docs / "u-net.pdf"] * 3
    with ConversionPool(workers=2) as pool:
        for _ in pool.imap(paths):
            break
    assert mp.active_children() == []


def test_worker_killed_while_idle_does_not_stop_the_run(docs: Path) -> None:
    with ConversionPool() as pool:
        [first] = list(pool.imap([docs / "note.txt"]))
        assert isinstance(first, Converted)
        for w in pool._workers:  # the idle worker dies (OOM killer, operator, ...)
            w.proc.kill()
            w.proc.join(5)
        outcomes = list(pool.imap([docs / "note.txt", docs / "punycode.md"]))
    assert [o.path for o in outcomes] == [docs / "note.txt", docs / "punycode.md"]
    assert isinstance(outcomes[-1], Converted)
