"""The Ray engine against the local one: same files, same store contents, on a real local Ray.

One Ray for the module (``ray.init(num_cpus=2)`` through ``ingest.ray_engine.connect``), the
real encoder, real documents copied into temp folders, and a broken PDF for quarantine parity.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest.embed import Embedder
from ingest.faults import FAULT_ENV, SIGNAL_ENV
from ingest.index import VectorIndex
from ingest.pipeline import Ingestor, Summary
from ingest.ray_engine import MISSING, RayIngestor, RayUnavailable, connect, import_ray
from ingest.settings import ChunkSettings, EmbedSettings, IngestSettings
from tests.conftest import (
    REPO,
    cli_command,
    copy_files,
    corpus_files,
    open_store,
    random_pdf,
    truncated_pdf,
    wait_until,
)

# int8 dynamic quantization scales activations per encoder call, so a chunk's vector moves with
# the chunks it is embedded with. Measured on this corpus: embedding each document alone, or two
# at a time, instead of in the local engine's batches moves a component by up to 0.029 (cosine
# down to 0.984). The Ray engine forms the local engine's batches, so on one machine its vectors
# are the local ones; the bounds allow float noise, far below that batching effect.
MAX_ABS = 1e-5
MIN_COSINE = 0.99999
# A run resumed after a crash embeds what is left in other batches than one whole run (on either
# engine): its vectors are bounded by that batching effect instead.
REGROUPED_MAX_ABS = 0.05
REGROUPED_MIN_COSINE = 0.98


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """A local Ray with 2 CPUs for the module, shut down after it."""
    ray = import_ray()
    assert not ray.is_initialized()
    assert connect(num_cpus=2)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def corpus(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real documents (text, HTML, Markdown, a PDF) and two broken PDFs, in one folder."""
    folder = tmp_path_factory.mktemp("ray-corpus") / "docs"
    copy_files(corpus_files(shared_data), folder)
    truncated_pdf(shared_data, folder / "broken.pdf")
    random_pdf(folder / "noise.pdf")
    return folder


def settings(**overrides: Any) -> IngestSettings:
    return IngestSettings.model_validate({"workers": 1, **overrides})


def local_run(
    home: Path, embedder: Embedder, roots: list[Path], **overrides: Any
) -> tuple[VectorIndex, Summary]:
    index = open_store(home / "index", embedder)
    return index, Ingestor(index, embedder, ChunkSettings(), settings(**overrides)).run(roots)


def ray_ingestor(
    index: VectorIndex, embedder: Embedder, embed: EmbedSettings, **overrides: Any
) -> RayIngestor:
    return RayIngestor(index, embedder, ChunkSettings(), settings(**overrides), embed)


@pytest.fixture(scope="module")
def local(
    corpus: Path, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[VectorIndex, Summary]]:
    """The local engine's ingest of ``corpus``: what every Ray run must reproduce."""
    index, summary = local_run(tmp_path_factory.mktemp("local-home"), embedder, [corpus])
    yield index, summary
    index.close()


def contents(index: VectorIndex) -> tuple[dict[str, Any], dict[int, np.ndarray]]:
    """Everything a reader sees: documents, their chunks, quarantine; vectors by chunk id."""
    docs: dict[str, Any] = {}
    vectors: dict[int, np.ndarray] = {}
    for d in index.documents():
        hits = index.chunks(d.doc_id)
        chunks = [(h.chunk_id, h.text, h.heading, h.page, h.start, h.end) for h in hits]
        docs[d.source] = (d.doc_id, d.title, d.kind, d.n_chunks, d.content_hash, d.size, chunks)
        ids = [h.chunk_id for h in hits]
        vectors.update(zip(ids, index.vectors(ids), strict=True))
    held = {q.source: (q.content_hash, q.reason) for q in index.quarantined()}
    return {"documents": docs, "quarantined": held}, vectors


def assert_same_store(
    ray_index: VectorIndex,
    local_index: VectorIndex,
    max_abs: float = MAX_ABS,
    min_cosine: float = MIN_COSINE,
) -> None:
    """Identical documents, chunk ids, texts and quarantine; vectors within the tolerance."""
    got, got_vectors = contents(ray_index)
    want, want_vectors = contents(local_index)
    assert got == want
    assert got_vectors.keys() == want_vectors.keys()
    a = np.stack([got_vectors[i] for i in sorted(want_vectors)])
    b = np.stack([want_vectors[i] for i in sorted(want_vectors)])
    assert float(np.abs(a - b).max()) <= max_abs
    assert float((a * b).sum(axis=1).min()) >= min_cosine
    assert ray_index.verify() == []
    assert ray_index.stats()["chunks"] == local_index.stats()["chunks"]


def counts(summary: Summary) -> dict[str, int]:
    keys = ("added", "updated", "unchanged", "removed", "quarantined", "skipped", "chunks")
    return {k: getattr(summary, k) for k in keys}


@pytest.mark.slow
def test_ray_ingest_equals_local_ingest(
    ray_cluster: Any,
    corpus: Path,
    local: tuple[VectorIndex, Summary],
    embedder: Embedder,
    embed_settings: EmbedSettings,
    tmp_path: Path,
) -> None:
    local_index, local_summary = local
    assert (local_summary.added, local_summary.quarantined) == (6, 2)  # the corpus is what it says
    index = open_store(tmp_path / "index", embedder)
    try:
        summary = ray_ingestor(index, embedder, embed_settings).run([corpus])
        assert counts(summary) == counts(local_summary)
        assert sorted(map(str, summary.problems)) == sorted(map(str, local_summary.problems))
        assert_same_store(index, local_index)
        # A rerun finds everything done, on either engine.
        again = ray_ingestor(index, embedder, embed_settings).run([corpus])
        assert (again.added, again.unchanged, again.quarantined) == (0, 6, 2)
        assert again.version == summary.version
    finally:
        index.close()


@pytest.mark.slow
def test_a_killed_encoder_actor_is_restarted_and_nothing_is_lost(
    ray_cluster: Any,
    corpus: Path,
    local: tuple[VectorIndex, Summary],
    embedder: Embedder,
    embed_settings: EmbedSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first encoder actor parks at its first batch and is SIGKILLed there; Ray starts a
    new one, which retries the batch, and the run ends with exactly the local result."""
    signal_file = tmp_path / "parked"
    monkeypatch.setenv(FAULT_ENV, "ray-encode:once")
    monkeypatch.setenv(SIGNAL_ENV, str(signal_file))
    killed: list[int] = []

    def kill_parked_actor() -> None:
        wait_until(signal_file.exists, 120, "the encoder actor to park")
        for pid in actor_pids():  # the pool has one actor: the parked one
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_parked_actor, daemon=True)
    killer.start()
    index = open_store(tmp_path / "index", embedder)
    try:
        summary = ray_ingestor(index, embedder, embed_settings).run([corpus])
        killer.join(10)
        assert killed, "the encoder actor was never killed"
        assert (summary.added, summary.quarantined) == (6, 2)
        assert_same_store(index, local[0])
    finally:
        index.close()


@pytest.mark.slow
def test_per_document_limits_quarantine_alike(
    ray_cluster: Any,
    shared_data: Path,
    embedder: Embedder,
    embed_settings: EmbedSettings,
    tmp_path: Path,
) -> None:
    """A file over ``max_file_mb`` (refused by the driver, unread) and a document over
    ``max_chunks`` (refused in the chunking task) get the local engine's reasons."""
    node = shared_data / "bench" / "nodejs-api"
    folder = tmp_path / "docs"
    copy_files([node / "punycode.md", node / "string_decoder.md"], folder)
    copy_files([shared_data / "papers" / "u-net.pdf"], folder)  # 1.6 MB
    (folder / "note.txt").write_text("A short note that fits every limit.\n", encoding="utf-8")
    limits = {"max_file_mb": 1.0, "max_chunks": 20}
    local_index, local_summary = local_run(tmp_path / "local", embedder, [folder], **limits)
    index = open_store(tmp_path / "ray" / "index", embedder)
    try:
        summary = ray_ingestor(index, embedder, embed_settings, **limits).run([folder])
        reasons = sorted(p["reason"].split(" (")[0] for p in summary.problems)
        assert reasons == ["file too large", "too many chunks", "too many chunks"]
        assert counts(summary) == counts(local_summary)
        assert (summary.added, summary.quarantined) == (1, 3)
        assert_same_store(index, local_index)
    finally:
        index.close()
        local_index.close()


def actor_pids() -> list[int]:
    """Processes of the encoder actors (Ray titles an actor's process ``ray::Encoder...``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if cmdline.startswith("ray::Encoder"):
            pids.append(int(entry.name))
    return pids


class Crash(Exception):
    """Stands for the driver dying after its first commit."""


@pytest.mark.slow
def test_a_run_killed_after_a_commit_keeps_it_and_a_rerun_completes(
    ray_cluster: Any,
    corpus: Path,
    local: tuple[VectorIndex, Summary],
    embedder: Embedder,
    embed_settings: EmbedSettings,
    tmp_path: Path,
) -> None:
    """The driver dies after its first commit (commit_every=2): the two documents and the
    quarantine records of that commit stay; the rerun skips them, adds the rest and matches
    the local run, chunk ids included."""
    index = open_store(tmp_path / "index", embedder)

    def crash_after_first_commit(_: int) -> None:
        if index.version > 0:  # a document staged after the first commit: it is lost
            raise Crash

    try:
        crashing = ray_ingestor(index, embedder, embed_settings, commit_every=2)
        with pytest.raises(Crash):
            crashing.run([corpus], progress=crash_after_first_commit)
        local_docs = contents(local[0])[0]["documents"]
        first_two = sorted(local_docs.values(), key=lambda d: d[6][0][0])[:2]
        kept, kept_vectors = contents(index)
        assert sorted(kept["documents"].values()) == sorted(first_two)
        assert kept["quarantined"] == contents(local[0])[0]["quarantined"]
        assert index.version == 1 and index.verify() == []

        rerun = ray_ingestor(index, embedder, embed_settings).run([corpus])
        assert (rerun.added, rerun.unchanged, rerun.quarantined) == (4, 2, 2)
        # Chunk ids and texts as one uninterrupted local run; vectors regrouped by the rerun.
        assert_same_store(index, local[0], REGROUPED_MAX_ABS, REGROUPED_MIN_COSINE)
        # What was committed before the crash is untouched: same ids, same vectors.
        after = contents(index)[1]
        assert all(np.array_equal(after[i], v) for i, v in kept_vectors.items())
    finally:
        index.close()


@pytest.mark.slow
def test_cli_engine_ray_joins_a_cluster_by_address(
    ray_cluster: Any,
    corpus: Path,
    local: tuple[VectorIndex, Summary],
    embedder: Embedder,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """``ragtune ingest --engine ray --address ADDR`` joins the running cluster and leaves the
    store the local engine would."""
    home = tmp_path / "home"
    address = ray_cluster.get_runtime_context().gcs_address
    args = ["ingest", str(corpus), "--home", str(home), "--json"]
    proc = subprocess.run(
        cli_command(*args, "--engine", "ray", "--address", address),
        # Ray 2.60 starts clusters with token authentication; a driver joining one says so
        # (the token itself is ~/.ray/auth_token, which ray.init wrote).
        env=dict(cli_env, RAY_AUTH_MODE="token"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert (summary["added"], summary["quarantined"]) == (6, 2)
    index = open_store(home / "index", embedder)
    try:
        assert_same_store(index, local[0])
    finally:
        index.close()


def test_cli_refuses_watch_and_a_missing_extra(
    tmp_path: Path, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clear one-line errors, before any model is loaded: no ray extra; --watch on Ray."""
    (tmp_path / "a.txt").write_text("hello\n", encoding="utf-8")
    # A `ray` that cannot be imported, as in an install without the extra.
    fake = tmp_path / "no-ray"
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text("raise ImportError('no ray here')\n")
    env = dict(cli_env, PYTHONPATH=os.pathsep.join([str(REPO), str(fake)]))
    args = ["ingest", str(tmp_path / "a.txt"), "--home", str(tmp_path / "home")]
    missing = subprocess.run(
        cli_command(*args, "--engine", "ray"), env=env, capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"ragtune ingest: {MISSING}"
    watch = subprocess.run(
        cli_command(*args, "--engine", "ray", "--watch"),
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert watch.returncode == 2 and "--watch runs on the local engine only" in watch.stderr
    assert not (tmp_path / "home" / "index").exists()

    # In process: the engine's import refuses with the same message.
    import builtins

    real_import = builtins.__import__

    def no_ray(name: str, *a: Any, **k: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(RayUnavailable, match=r"pip install 'ragtune\[ray\]'"):
        import_ray()


def test_more_encoder_actors_than_the_cluster_can_hold_is_refused(
    ray_cluster: Any, tmp_path: Path, embedder: Embedder, embed_settings: EmbedSettings
) -> None:
    """Two actors would hold both CPUs for the run and conversion would never be scheduled."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("hello\n", encoding="utf-8")
    index = open_store(tmp_path / "index", embedder)
    try:
        engine = ray_ingestor(index, embedder, embed_settings, ray_encoders=2)
        with pytest.raises(RayUnavailable, match="has 2 CPUs: 2 encoder actors"):
            engine.run([tmp_path / "docs"])
        assert index.documents() == []
    finally:
        index.close()


def test_settings_name_the_engine() -> None:
    assert IngestSettings().engine == "local"
    s = IngestSettings.model_validate({"engine": "ray", "ray_address": "auto"})
    assert (s.engine, s.ray_address) == ("ray", "auto")
    with pytest.raises(ValueError):
        IngestSettings.model_validate({"engine": "spark"})
