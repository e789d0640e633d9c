"""The installation's fence key: made once, owner-only, the same for every process."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from service.fence_key import FILE, KEY_BYTES, load_fence_key


def test_key_is_made_once_owner_only_and_kept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = load_fence_key(home)
    assert len(key) == KEY_BYTES
    assert stat.S_IMODE((home / FILE).stat().st_mode) == 0o600
    assert load_fence_key(home) == key
    assert load_fence_key(tmp_path / "other") != key


def test_concurrent_first_loads_agree(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_fence_key(tmp_path), range(16)))
    assert len(keys) == 1


def test_a_damaged_key_file_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    (tmp_path / FILE).write_text("not hex\n")
    with pytest.raises(ValueError, match="remove it"):
        load_fence_key(tmp_path)
