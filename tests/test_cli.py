"""The ``ragtune`` CLI as a user runs it: real subprocesses, real files, real SIGKILLs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from ingest.chunk import chunk_document
from ingest.convert import convert_file
from ingest.embed import Embedder
from ingest.index import VectorIndex
from ingest.scan import source_of
from ingest.settings import ChunkSettings
from tests.conftest import (
    REPO,
    cli_command,
    copy_files,
    make_ingestor,
    open_store,
    truncated_pdf,
    wait_until,
)

pytestmark = pytest.mark.integration

SUMMARY_KEYS = {
    "added",
    "updated",
    "unchanged",
    "removed",
    "quarantined",
    "skipped",
    "chunks",
    "seconds",
}
HIT_KEYS = {"text", "source", "page", "heading", "score", "chunk_id", "doc_id"}
NODE_DOCS = ("punycode.md", "string_decoder.md", "synopsis.md")


def run_cli(
    *args: str, env: dict[str, str], cwd: Path = REPO, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def ok_json(proc: subprocess.CompletedProcess[str]) -> object:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def docs_dir(shared_data: Path, tmp_path: Path) -> Path:
    """Three small real Markdown files and one corrupt PDF."""
    folder = tmp_path / "docs"
    copy_files([shared_data / "bench" / "nodejs-api" / n for n in NODE_DOCS], folder)
    truncated_pdf(shared_data, folder / "broken.pdf")
    return folder


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_ingest_search_docs_json(docs_dir: Path, home: Path, cli_env: dict[str, str]) -> None:
    summary = ok_json(run_cli("ingest", str(docs_dir), "--home", str(home), "--json", env=cli_env))
    assert isinstance(summary, dict) and set(summary) >= SUMMARY_KEYS
    assert {k: summary[k] for k in SUMMARY_KEYS - {"chunks", "seconds"}} == dict(
        added=3, updated=0, unchanged=0, removed=0, quarantined=1, skipped=0
    )
    assert summary["chunks"] > 3 and summary["seconds"] > 0

    query = "How do I decode a Buffer into a string without splitting multi-byte characters?"
    hits = ok_json(run_cli("search", query, "-k", "3", "--home", str(home), "--json", env=cli_env))
    assert isinstance(hits, list) and len(hits) == 3
    assert all(set(h) == HIT_KEYS for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert hits[0]["source"] == source_of(docs_dir / "string_decoder.md")
    assert hits[0]["page"] is None and isinstance(hits[0]["heading"], str)

    listing = ok_json(run_cli("docs", "--home", str(home), "--json", env=cli_env))
    assert isinstance(listing, dict)
    assert {d["source"] for d in listing["documents"]} == {
        source_of(docs_dir / n) for n in NODE_DOCS
    }
    assert sum(d["n_chunks"] for d in listing["documents"]) == summary["chunks"]
    [held] = listing["quarantined"]
    assert held["source"] == source_of(docs_dir / "broken.pdf") and held["reason"]

    # Every mode and a filter through the flags; the check agrees with itself.
    for mode in ("bm25", "hybrid"):
        args = ["search", query, "-k", "3", "--mode", mode, "--home", str(home), "--json"]
        found = ok_json(run_cli(*args, env=cli_env))
        assert isinstance(found, list) and found[0]["source"] == hits[0]["source"]
    only = source_of(docs_dir / NODE_DOCS[0])
    args = ["search", query, "--filter", f"source={only}", "--mmr", "0.5", "--home", str(home)]
    found = ok_json(run_cli(*args, "--json", env=cli_env))
    assert isinstance(found, list) and {h["source"] for h in found} == {only}
    bad = run_cli("search", query, "--filter", "colour=red", "--home", str(home), env=cli_env)
    assert bad.returncode == 2 and "unknown filter colour" in bad.stderr
    checked = ok_json(run_cli("docs", "--check", "--home", str(home), "--json", env=cli_env))
    assert isinstance(checked, dict) and checked["problems"] == []


def test_missing_path_exits_2(tmp_path: Path, cli_env: dict[str, str]) -> None:
    missing = tmp_path / "nowhere"
    proc = run_cli("ingest", str(missing), "--home", str(tmp_path / "home"), env=cli_env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"ragtune ingest: no such file or folder: {missing}"
    assert not (tmp_path / "home").exists()


def test_invalid_settings_exit_2(tmp_path: Path, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "RAGTUNE_CHUNK__SIZE": "5"}
    proc = run_cli("docs", "--home", str(tmp_path / "home"), env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("ragtune: invalid settings:")
    assert "chunk.size" in proc.stderr and "greater than or equal to 16" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_config_file_exits_2(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = run_cli("docs", "--config", str(tmp_path / "nope.toml"), env=cli_env)
    assert proc.returncode == 2
    assert "config file not found" in proc.stderr


def test_ragtune_home_env(
    shared_data: Path, tmp_path: Path, cli_env: dict[str, str], embedder: Embedder
) -> None:
    [doc] = copy_files([shared_data / "bench" / "nodejs-api" / "synopsis.md"], tmp_path / "docs")
    env = {**cli_env, "RAGTUNE_HOME": str(tmp_path / "home")}
    summary = ok_json(run_cli("ingest", str(doc), "--json", env=env))
    assert isinstance(summary, dict) and summary["added"] == 1
    index = open_store(tmp_path / "home" / "index", embedder)
    try:
        assert [d.source for d in index.documents()] == [source_of(doc)]
    finally:
        index.close()


@pytest.mark.parametrize("how", ["cwd", "--config"])
def test_toml_config_sets_chunk_size(
    shared_data: Path, tmp_path: Path, cli_env: dict[str, str], embedder: Embedder, how: str
) -> None:
    [doc] = copy_files(
        [shared_data / "bench" / "nodejs-api" / "string_decoder.md"], tmp_path / "docs"
    )
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "ragtune.toml").write_text("[chunk]\nsize = 32\n", encoding="utf-8")
    args = ["ingest", str(doc), "--home", str(tmp_path / "home"), "--json"]
    if how == "cwd":
        summary = ok_json(run_cli(*args, env=cli_env, cwd=conf_dir))
    else:
        summary = ok_json(run_cli(*args, "--config", str(conf_dir / "ragtune.toml"), env=cli_env))

    document = convert_file(doc)
    defaults = ChunkSettings()
    small = chunk_document(document, embedder.tokenizer, size=32, overlap=defaults.overlap)
    default = chunk_document(
        document, embedder.tokenizer, size=defaults.size, overlap=defaults.overlap
    )
    assert len(small) > len(default)
    assert isinstance(summary, dict) and summary["chunks"] == len(small)


# --- crash safety ----------------------------------------------------------------------------


def assert_consistent(index: VectorIndex) -> None:
    """Every document is fully in (its chunk rows and vectors all there); nothing is half in."""
    stats = index.stats()
    assert stats["chunks"] == stats["ntotal"] == sum(d.n_chunks for d in index.documents())
    for d in index.documents():
        assert len(index.chunks(d.doc_id)) == d.n_chunks > 0


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["commit-tmp-written", "commit-renamed", "commit-sqlite-open"])
def test_sigkill_mid_commit_keeps_previous_version(
    shared_data: Path,
    tmp_path: Path,
    home: Path,
    cli_env: dict[str, str],
    embedder: Embedder,
    fault: str,
) -> None:
    node = shared_data / "bench" / "nodejs-api"
    folder = tmp_path / "docs"
    before = copy_files([node / "punycode.md"], folder)

    # A committed first version, written in-process.
    index = open_store(home / "index", embedder)
    try:
        assert make_ingestor(index, embedder).run([folder]).added == 1
        version = index.version
        previous = {d.source: d for d in index.documents()}
    finally:
        index.close()
    assert version >= 1
    after = copy_files([node / "string_decoder.md", node / "synopsis.md"], folder)

    # The CLI parks at the fault point of its (only) commit; kill it there.
    signal_file = tmp_path / "at-fault"
    env = {**cli_env, "RAGTUNE_FAULT": fault, "RAGTUNE_FAULT_SIGNAL": str(signal_file)}
    proc = subprocess.Popen(
        cli_command("ingest", str(folder), "--home", str(home), "--json"),
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: signal_file.exists() or proc.poll() is not None, 90, f"fault point {fault}"
        )
        assert proc.poll() is None, (
            f"ingest exited early: {proc.stderr.read() if proc.stderr else ''}"
        )
        assert signal_file.read_text(encoding="utf-8") == fault
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        if proc.stderr:
            proc.stderr.close()

    # The kill landed where intended: the next version's files are on disk, half-published.
    leftover = f"v{version + 1:08d}" + (".tmp" if fault == "commit-tmp-written" else "")
    assert (home / "index" / "versions" / leftover / "tombstones.npy").is_file()
    assert (home / "index" / "segments" / f"c{version + 1:08d}" / "index.faiss").is_file()

    # The store loads at the previous version with exactly the previous documents.
    index = open_store(home / "index", embedder)
    try:
        assert index.version == version
        assert {d.source: d for d in index.documents()} == previous
        assert_consistent(index)
    finally:
        index.close()

    # A clean rerun finishes the job.
    summary = ok_json(run_cli("ingest", str(folder), "--home", str(home), "--json", env=cli_env))
    assert isinstance(summary, dict)
    assert (summary["added"], summary["unchanged"], summary["quarantined"]) == (2, 1, 0)
    index = open_store(home / "index", embedder)
    try:
        assert index.version == version + 1
        assert {d.source for d in index.documents()} == {source_of(p) for p in before + after}
        assert_consistent(index)
        versions = sorted(p.name for p in (home / "index" / "versions").iterdir())
        assert not any(name.endswith(".tmp") for name in versions)  # crash leftovers collected
        query = "How do I decode a Buffer into a string without splitting multi-byte characters?"
        [top] = index.search(embedder.encode([query]), 1)[0]
        assert top.source == source_of(folder / "string_decoder.md")
    finally:
        index.close()


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["commit-tmp-written:ENOSPC", "commit-sqlite-open:EIO"])
def test_disk_fault_mid_commit_is_one_line_and_a_rerun_completes(
    shared_data: Path, tmp_path: Path, home: Path, cli_env: dict[str, str], fault: str
) -> None:
    node = shared_data / "bench" / "nodejs-api"
    folder = tmp_path / "docs"
    copy_files([node / "punycode.md"], folder)
    ok_json(run_cli("ingest", str(folder), "--home", str(home), "--json", env=cli_env))
    copy_files([node / "string_decoder.md"], folder)

    failed = run_cli(
        "ingest", str(folder), "--home", str(home), env={**cli_env, "RAGTUNE_FAULT": fault}
    )
    reason = "No space left on device" if "ENOSPC" in fault else "Input/output error"
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    [line] = failed.stderr.strip().splitlines()
    assert line.startswith("ragtune ingest: could not write index version 2: ") and reason in line
    assert "version 1 is unchanged" in line
    assert sorted(p.name for p in (home / "index" / "versions").iterdir()) == ["v00000001"]

    summary = ok_json(run_cli("ingest", str(folder), "--home", str(home), "--json", env=cli_env))
    assert isinstance(summary, dict)
    assert (summary["added"], summary["unchanged"], summary["version"]) == (1, 1, 2)


@pytest.mark.slow
def test_watch_follows_drops_until_interrupted(
    shared_data: Path, tmp_path: Path, cli_env: dict[str, str], embedder: Embedder
) -> None:
    md = shared_data / "bench" / "nodejs-api"
    drop = tmp_path / "drop"
    [first] = copy_files([md / "punycode.md"], drop)
    home = tmp_path / "home"
    env = {**cli_env, "RAGTUNE_INGEST__WATCH_INTERVAL_S": "0.2"}
    proc = subprocess.Popen(
        cli_command("ingest", str(drop), "--watch", "--home", str(home)),
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def sources() -> set[str]:
        if not (home / "index" / "docstore.sqlite").exists():
            return set()
        index = open_store(home / "index", embedder)
        try:
            return {Path(d.source).name for d in index.documents()}
        finally:
            index.close()

    try:
        wait_until(lambda: sources() == {"punycode.md"}, 60, "the initial ingest")
        copy_files([md / "string_decoder.md"], drop)
        wait_until(lambda: sources() == {"punycode.md", "string_decoder.md"}, 60, "a dropped file")
        first.unlink()
        wait_until(lambda: sources() == {"string_decoder.md"}, 60, "a deleted file")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.count("added 1,") == 2 and "removed 1," in out


def test_docs_on_a_fresh_home_lists_nothing_and_creates_nothing(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    proc = run_cli("docs", "--home", str(tmp_path / "home"), env=cli_env)
    assert proc.returncode == 0 and "0 documents" in proc.stdout
    assert not (tmp_path / "home").exists()
