"""The on-disk layout of index versions and segments: checksummed directories, written once.

``segments/<name>/`` holds one immutable segment (its FAISS file, BM25 postings and chunk ids),
``quantizers/<name>/`` the IVF quantizer its manifest names, if any;
``versions/v00000042/`` names the segments a version is made of and the chunk ids deleted from
them. Each directory has a ``manifest.json`` listing every file with its sha256 and size; a
version's manifest also records the sha256 of each of its segments' manifests (and a segment's,
that of its quantizer's), and SQLite records the sha256 of the version's manifest, so one digest
in the committed row vouches for every byte served. A directory is written under a ``.tmp`` name, fsynced, and renamed into place before the
SQLite pointer flips to it; readers verify files against the manifest while streaming them (never
holding a second copy in memory), so neither a torn write nor later bit rot is served silently.
Nothing here knows FAISS or BM25: callers write the files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ingest.faults import fault_point

__all__ = [
    "MANIFEST_FILE",
    "collect_garbage",
    "collect_quantizers",
    "collect_segments",
    "fsync_dir",
    "merge_lock",
    "merging",
    "read_manifest",
    "sha256_file",
    "verify_files",
    "vname",
    "write_dir",
]

MANIFEST_FILE = "manifest.json"
MERGE_LOCK = "MERGE"
MERGED_PREFIX = "m"  # segments written by a merge; those of commits are named after the version
_VERSION_DIR = re.compile(r"^v(\d{8})$")
_HASH_BLOCK = 1 << 20


class VersionFileError(Exception):
    """A version directory does not match its manifest (caller maps it to IndexCorrupt)."""


def vname(version: int) -> str:
    return f"v{version:08d}"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> tuple[str, int]:
    """Digest and size of ``path``, read in blocks so a large index is never held twice."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def _fsync_tree(root: Path) -> dict[str, dict[str, Any]]:
    """fsync every file under ``root`` (and the directories) and describe it for the manifest."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
        digest, size = sha256_file(path)
        files[path.relative_to(root).as_posix()] = {"sha256": digest, "bytes": size}
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        fsync_dir(d)
    return files


def write_dir(
    parent: Path,
    name: str,
    write: Callable[[Path], None],
    manifest: dict[str, Any],
    *,
    stage: str = "commit",
) -> str:
    """Have ``write`` fill a fresh directory, then publish it as ``parent/name``.

    Returns the sha256 of the manifest written with it (which lists every file's digest). Only
    called where nobody else writes this name (versions under the writer lock, merged segments
    under the merge lock, named uniquely): a leftover of a crashed attempt is removed first.
    """
    final = parent / name
    tmp = parent / (name + ".tmp")
    for stale in (tmp, final):
        if stale.exists():
            shutil.rmtree(stale)
    tmp.mkdir()
    write(tmp)
    files = _fsync_tree(tmp)
    body = json.dumps({**manifest, "files": files}, indent=2).encode()
    with open(tmp / MANIFEST_FILE, "wb") as fh:
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(tmp)
    fault_point(f"{stage}-tmp-written")  # the fault points of tests: commit-, segment-, quantizer-
    os.rename(tmp, final)
    fsync_dir(parent)
    fault_point(f"{stage}-renamed")
    return hashlib.sha256(body).hexdigest()


def read_manifest(vdir: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((vdir / MANIFEST_FILE).read_text(encoding="utf-8"))
    return manifest


def verify_files(vdir: Path, manifest: dict[str, Any], prefix: str = "") -> None:
    """Check every manifest file under ``prefix`` against its recorded digest and size."""
    for name, expected in manifest["files"].items():
        if not name.startswith(prefix):
            continue
        path = vdir / name
        digest, size = sha256_file(path)
        if digest != expected["sha256"] or size != expected["bytes"]:
            raise VersionFileError(f"{path}: sha256 {digest} ({size} bytes) differs from manifest")


def collect_garbage(versions: Path, current: int, keep: int) -> None:
    """Drop old versions beyond ``keep`` and anything a crashed commit left behind.

    Only called under the writer lock, so no commit is writing here; readers that already
    loaded a removed version keep it (memory-mapped files stay readable after unlink on POSIX),
    and a reader racing the pointer retries.
    """
    dirs: dict[int, Path] = {}
    for entry in versions.iterdir():
        match = _VERSION_DIR.match(entry.name)
        if entry.name.endswith(".tmp"):
            shutil.rmtree(entry, ignore_errors=True)
        elif match:
            dirs[int(match.group(1))] = entry
    kept = sorted(v for v in dirs if v <= current)[-keep:]
    for v, entry in dirs.items():
        if v > current or (v not in kept and v != current):
            shutil.rmtree(entry, ignore_errors=True)


def collect_segments(segments: Path, referenced: set[str], *, spare_merges: bool) -> None:
    """Drop segment directories no kept version names, and leftovers of crashed writes.

    Only called under the writer lock. ``spare_merges``: a merge is writing outside that lock
    (it holds the merge lock), so its new segment, not yet named by any version, stays.
    """
    for entry in segments.iterdir():
        name = entry.name.removesuffix(".tmp")
        if spare_merges and name.startswith(MERGED_PREFIX):
            continue
        if entry.name.endswith(".tmp") or name not in referenced:
            shutil.rmtree(entry, ignore_errors=True)


def collect_quantizers(quantizers: Path, segments: Path) -> None:
    """Drop quantizer directories no segment directory names, and leftovers of crashed writes.

    Only called under the writer lock, after ``collect_segments``, and never while a merge
    runs (it may have written a quantizer that no segment names yet).
    """
    used = set()
    for sdir in segments.iterdir():
        with contextlib.suppress(OSError, ValueError, KeyError):
            used.add(read_manifest(sdir)["quantizer"]["name"])
    collect_segments(quantizers, used, spare_merges=False)


@contextlib.contextmanager
def merge_lock(root: Path) -> Iterator[bool]:
    """Hold the store's merge lock if it is free; yields whether this caller got it.

    One merge at a time per store, across processes; flock dies with its process, so a killed
    merge never leaves it held.
    """
    fd = os.open(root / MERGE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def merging(root: Path) -> bool:
    """Whether a merge holds ``root``'s merge lock now (in this process or another)."""
    with merge_lock(root) as free:
        return not free
