"""One IVF quantizer per collection: shared by its segments, searched once, merged without training.

Real FAISS on small collections: ``approx_above`` is lowered so that segments of a few hundred
vectors are IVF, and ``nprobe`` is below the lists so that the shared assignment matters.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest.compact import compact
from ingest.index import IndexCorrupt, VectorIndex
from ingest.index.policy import quantizer_fits, quantizer_nlist
from ingest.index.structures import ivf_from, train_quantizer, write_index
from ingest.versions import sha256_file
from ingest.writer import Writer
from tests.ingest.test_index import (
    MODEL,
    REPO,
    _child_env,
    _kill,
    _wait_for,
    commit_doc,
    make_doc,
    open_index,
    sources_found,
    unit_vectors,
)

# Segments of >= 300 vectors are IVF; the first (400) trains 16 lists (2 * 400 / 39 -> 16), 2 of
# them probed. 3 of them merge into 1,200, which 16 lists still fit (auto_nlist(1200) = 16 < 64).
SETTINGS: dict[str, Any] = {"kind": "auto", "approx_above": 300, "nprobe": 2, "merge_factor": 3}
N = 400
QUERIES = unit_vectors(40, seed=77)
Ranked = list[tuple[list[int], list[float]]]


def shared_store(root: Path, segments: int = 3, **kw: Any) -> VectorIndex:
    idx = open_index(root, **{**SETTINGS, **kw})
    for i in range(segments):
        commit_doc(idx, f"d{i}.md", N, seed=i)
    return idx


def manifest(root: Path, segment: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "segments" / segment / "manifest.json").read_text())
    return data


def quantizer_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "quantizers").iterdir())


def own_vectors_found(idx: VectorIndex, docs: dict[str, int]) -> bool:
    """Each doc's first vectors find their own chunk first (its own list is probed first)."""
    return all(
        [h[0].text for h in idx.search(unit_vectors(N, seed)[:10], 1)]
        == [f"{source} #{i}" for i in range(10)]
        for source, seed in docs.items()
    )


def test_policy_trains_lists_for_the_tier_the_segment_grows_into() -> None:
    # Defaults: the first IVF segment (100k..160k) trains the 4,096 lists of a 1M index, which
    # serve up to ~8M vectors; a segment of 32k trains what 32k vectors support.
    assert quantizer_nlist(125_000, "auto", nlist=4096, merge_factor=8) == 4096
    assert quantizer_nlist(100_000, "auto", nlist=4096, merge_factor=8) == 4096
    assert quantizer_nlist(32_000, "auto", nlist=4096, merge_factor=8) == 1024
    assert quantizer_fits(4096, 1_000_000, "auto", nlist=4096)
    assert not quantizer_fits(4096, 9_000_000, "auto", nlist=4096)
    assert quantizer_nlist(N, "auto", nlist=4096, merge_factor=3) == 16
    assert quantizer_nlist(500, "ivf", nlist=4, merge_factor=8) == 4
    assert not quantizer_fits(8, 10_000, "ivf", nlist=4)


def test_later_ivf_segments_are_built_on_the_first_ones_quantizer(tmp_path: Path) -> None:
    root = tmp_path / "store"
    idx = shared_store(root)
    try:
        commit_doc(idx, "small.md", 20, seed=9)  # below approx_above: exact, no quantizer
        assert len(quantizer_dirs(root)) == 1  # trained once, written once
        (q,) = quantizer_dirs(root)
        refs = [manifest(root, name).get("quantizer") for name in idx.snapshot().names()]
        assert [r["name"] if r else None for r in refs] == [q, q, q, None]
        digest = sha256_file(root / "quantizers" / q / "manifest.json")[0]
        assert {r["sha256"] for r in refs if r} == {digest}
        # No retraining: the later segments were built on the very quantizer object (their
        # centroids and 8-bit ranges are checked equal to it whenever a segment is loaded).
        segs = [s.segment for s in idx.snapshot().segments]
        assert all(s.quantizer is segs[0].quantizer for s in segs[:3]) and segs[3].quantizer is None
        assert idx.stats()["structure"] == "mixed" and idx.stats()["nlist"] == 16
    finally:
        idx.close()
    again = open_index(root, **SETTINGS)
    try:
        segs = [s.segment for s in again.snapshot().segments]
        assert segs[0].quantizer is not None and segs[0].quantizer.path == root / "quantizers" / q
        assert all(s.quantizer is segs[0].quantizer for s in segs[:3])  # read once
        assert again.verify() == [] and own_vectors_found(again, {"d0.md": 0, "d2.md": 2})
    finally:
        again.close()


def test_split_search_agrees_with_the_merged_index_and_the_merge_trains_nothing(
    tmp_path: Path,
) -> None:
    """Same assignment, same codes: 3 IVF segments return what their merge does."""
    root = tmp_path / "store"
    idx = shared_store(root)
    try:
        split = idx.search_ids(QUERIES, 10)
        exact = _exact(idx, QUERIES, 10)
        (q,) = quantizer_dirs(root)
        assert compact(idx) == 1 and idx.stats()["segments"] == 1 and idx.verify() == []
        merged = idx.snapshot().segments[0].segment
        assert merged.structure == "ivf" and len(merged) == 3 * N
        assert merged.quantizer is not None and merged.quantizer.name == q
        assert quantizer_dirs(root) == [q] and manifest(root, merged.name)["quantizer"]["name"] == q
        assert _same(idx.search_ids(QUERIES, 10), split)
    finally:
        idx.close()
    # At nprobe = nlist every list is scanned: the search is exact over the 8-bit codes, so it
    # agrees with exact search over the stored vectors (what the codes decode to).
    every = open_index(root, **{**SETTINGS, "nprobe": 16})
    try:
        assert every.stats()["nprobe"] == 16
        assert _recall(every.search_ids(QUERIES, 10), exact) > 0.97
    finally:
        every.close()


def test_tombstones_are_excluded_inside_the_shared_lists(tmp_path: Path) -> None:
    root = tmp_path / "store"
    idx = open_index(root, **SETTINGS)
    try:
        commit_doc(idx, "d0.md", N, seed=0)
        with Writer.acquire(idx) as w:  # one segment of d1 and d2
            w.put(*make_doc("d1.md", N, seed=1))
            w.put(*make_doc("d2.md", N, seed=2))
            w.commit()
        doomed = unit_vectors(N, seed=1)[:20]  # d1's own vectors: each its own best match
        assert sources_found(idx, doomed, 1) == {"d1.md"}
        with Writer.acquire(idx) as w:
            w.remove("d1.md")
            w.commit()
        stats = idx.stats()
        assert stats["segments"] == 2 and stats["tombstones"] == N and idx.verify() == []
        found = idx.search_ids(doomed, 10)
        assert all(len(ids) == 10 for ids, _ in found)  # k live hits without over-fetching
        assert "d1.md" not in sources_found(idx, doomed, 10)
        merger = open_index(root, **{**SETTINGS, "merge_factor": 2})
        try:
            assert compact(merger) == 1
        finally:
            merger.close()
        assert idx.refresh() and idx.stats()["tombstones"] == 0 and idx.verify() == []
        assert _same(idx.search_ids(doomed, 10), found)
    finally:
        idx.close()


@pytest.mark.parametrize("damaged", ["quantizer.faiss", "manifest.json"])
def test_a_damaged_quantizer_is_refused(tmp_path: Path, damaged: str) -> None:
    """The digest chain reaches the quantizer: SQLite -> version -> segment -> quantizer."""
    root = tmp_path / "store"
    shared_store(root, segments=1).close()
    (q,) = quantizer_dirs(root)
    path = root / "quantizers" / q / damaged
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt):
        open_index(root, **SETTINGS)


def _rewrite_manifest(directory: Path, drop: str | None = None) -> str:
    """Recompute ``directory``'s file digests (dropping key ``drop``); returns the new digest."""
    path = directory / "manifest.json"
    data = json.loads(path.read_text())
    data.pop(drop, None)
    data["files"] = {
        p.relative_to(directory).as_posix(): dict(
            zip(("sha256", "bytes"), sha256_file(p), strict=True)
        )
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }
    path.write_text(json.dumps(data))
    return sha256_file(path)[0]


def _trained_alone(idx: VectorIndex, ids: np.ndarray) -> Any:
    """An IVF of these rows with lists of its own, as segments were built before quantizers."""
    xb = idx.vectors(ids.tolist())
    index = ivf_from(train_quantizer(xb, 8), [], (xb, ids))
    index.nprobe = 2
    return index


def test_segments_that_trained_their_own_lists_still_search_and_merge(tmp_path: Path) -> None:
    root = tmp_path / "store"
    idx = shared_store(root, segments=2, keep_versions=1)
    # Rewrite both segments as the previous format wrote them: lists trained per segment, no
    # quantizer in the manifest, digests chained up to SQLite's row.
    vdir = root / "versions" / "v00000002"
    version = json.loads((vdir / "manifest.json").read_text())
    for entry in version["segments"]:
        sdir = root / "segments" / entry["name"]
        write_index(_trained_alone(idx, np.load(sdir / "ids.npy")), sdir / "index.faiss")
        entry["sha256"] = _rewrite_manifest(sdir, drop="quantizer")
    idx.close()
    (vdir / "manifest.json").write_text(json.dumps(version))
    digest = _rewrite_manifest(vdir)
    with sqlite3.connect(root / "docstore.sqlite") as conn:
        conn.execute("UPDATE versions SET sha256 = ? WHERE version = 2", (digest,))
    shutil.rmtree(root / "quantizers")

    idx = open_index(root, **SETTINGS)
    try:
        assert all(s.segment.quantizer is None for s in idx.snapshot().segments)
        assert idx.stats()["structure"] == "ivf" and idx.verify() == []
        assert own_vectors_found(idx, {"d0.md": 0, "d1.md": 1})
        assert all(len(ids) == 10 for ids, _ in idx.search_ids(QUERIES, 10))
        commit_doc(idx, "d2.md", N, seed=2)  # no shared quantizer yet: this one trains it
        (q,) = quantizer_dirs(root)
        assert compact(idx) == 1 and idx.verify() == []  # legacy rows assigned to q's lists
        merged = idx.snapshot().segments[0].segment
        assert merged.quantizer is not None and merged.quantizer.name == q
        assert own_vectors_found(idx, {"d0.md": 0, "d1.md": 1, "d2.md": 2})
    finally:
        idx.close()


def test_a_single_file_ivf_store_still_loads_and_moves_to_a_shared_quantizer(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    idx = shared_store(root, segments=1)
    index = _trained_alone(idx, idx.snapshot().live_ids())
    idx.close()
    vdir = root / "versions" / "v00000001"
    shutil.rmtree(vdir)
    shutil.rmtree(root / "segments")
    shutil.rmtree(root / "quantizers")
    vdir.mkdir()
    write_index(index, vdir / "index.faiss")
    digest, size = sha256_file(vdir / "index.faiss")
    files = {"index.faiss": {"sha256": digest, "bytes": size}}
    manifest = {"version": 1, "ntotal": N, "structure": "ivf", "files": files}
    (vdir / "manifest.json").write_text(json.dumps(manifest))
    with sqlite3.connect(root / "docstore.sqlite") as conn:
        conn.execute("UPDATE versions SET sha256 = ? WHERE version = 1", (digest,))

    idx = open_index(root, **SETTINGS)
    try:
        assert idx.stats()["structure"] == "ivf" and idx.verify() == []
        assert own_vectors_found(idx, {"d0.md": 0})
        commit_doc(idx, "d1.md", N, seed=1)
        assert len(quantizer_dirs(root)) == 1 and idx.verify() == []
        assert own_vectors_found(idx, {"d0.md": 0, "d1.md": 1})
    finally:
        idx.close()
    again = open_index(root, **SETTINGS)
    try:
        assert again.stats()["segments"] == 2 and again.verify() == []
        assert own_vectors_found(again, {"d0.md": 0, "d1.md": 1})
    finally:
        again.close()


COMMIT_IVF = """
import json, sys
from pathlib import Path
from ingest.index import IndexCorrupt, VectorIndex
from ingest.settings import IndexSettings
from tests.ingest.test_index import commit_doc
root, settings, model, dim, n = sys.argv[1:6]
idx = VectorIndex.open(Path(root), IndexSettings(**json.loads(settings)), embed_model=model,
                       dim=int(dim))
commit_doc(idx, "b.md", int(n), seed=2)
"""

ORPHAN_AFTER_KILL = {  # the point, and what it leaves behind in quantizers/
    "quantizer-tmp-written": ".tmp",
    "quantizer-renamed": "",
    "segment-renamed": "",
}


@pytest.mark.parametrize("point", sorted(ORPHAN_AFTER_KILL))
def test_a_commit_killed_while_writing_the_quantizer_leaves_the_last_version(
    tmp_path: Path, point: str
) -> None:
    root = tmp_path / "store"
    idx = open_index(root, **SETTINGS)
    commit_doc(idx, "a.md", 3, seed=1)
    before = idx.search_ids(QUERIES, 3)
    sig = tmp_path / "reached"
    cmd = [sys.executable, "-c", COMMIT_IVF, str(root), json.dumps(SETTINGS), MODEL, "16", str(N)]
    env = _child_env(RAGTUNE_FAULT=point, RAGTUNE_FAULT_SIGNAL=str(sig))
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stderr=subprocess.PIPE)
    try:
        _wait_for(sig, proc)
    finally:
        _kill(proc)
    (orphan,) = quantizer_dirs(root)
    assert orphan.endswith(".tmp") == bool(ORPHAN_AFTER_KILL[point])
    try:
        assert not idx.refresh() and idx.search_ids(QUERIES, 3) == before
        again = open_index(root, **SETTINGS)
        assert again.version == 1 and again.verify() == []
        again.close()
        commit_doc(idx, "b.md", N, seed=2)  # the writer's start removes the orphan
        (q,) = quantizer_dirs(root)
        assert q != orphan.removesuffix(".tmp") and idx.verify() == []
        assert own_vectors_found(idx, {"b.md": 2})
    finally:
        idx.close()


def _exact(idx: VectorIndex, q: np.ndarray, k: int) -> list[list[int]]:
    ids = idx.snapshot().live_ids()
    xb = idx.vectors(ids.tolist())
    top = np.argsort(-(q @ xb.T), axis=1)[:, :k]
    return [ids[row].tolist() for row in top]


def _recall(found: Ranked, truth: list[list[int]]) -> float:
    hits = [len(set(f[0]) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def _same(a: Ranked, b: Ranked) -> bool:
    return all(
        x[0] == y[0] and x[1] == pytest.approx(y[1], abs=1e-5) for x, y in zip(a, b, strict=True)
    )
