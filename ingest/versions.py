"""The on-disk layout of index versions: one complete, checksummed directory per commit.

``versions/v00000042/`` holds the FAISS file, the BM25 snapshot and ``manifest.json``, which lists
every file with its sha256 and size. A directory is written under a ``.tmp`` name, fsynced, and
renamed into place before the SQLite pointer flips to it; readers verify files against the
manifest while streaming them (never holding a second copy in memory), so neither a torn write nor
later bit rot is served silently. Nothing here knows FAISS or BM25: callers write the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest.faults import fault_point

__all__ = [
    "MANIFEST_FILE",
    "collect_garbage",
    "fsync_dir",
    "read_manifest",
    "sha256_file",
    "verify_files",
    "vname",
    "write_version_dir",
]

MANIFEST_FILE = "manifest.json"
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


def write_version_dir(
    versions: Path, version: int, write: Callable[[Path], None], manifest: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Have ``write`` fill a fresh directory, then publish it as ``version``; returns its files.

    Only called under the writer lock: a leftover of a crashed commit with this number is never
    the current version, so it is removed first.
    """
    final = versions / vname(version)
    tmp = versions / (vname(version) + ".tmp")
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
    fault_point("commit-tmp-written")
    os.rename(tmp, final)
    fsync_dir(versions)
    fault_point("commit-renamed")
    return files


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
