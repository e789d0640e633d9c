"""The keys file loader: a bad line is named by its number, never echoed (it may be a real key)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from service.security import hash_key, load_key_hashes


def test_plaintext_key_is_never_echoed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-live-abcdefghijklmnopqrstuvwxyz"
    keys = tmp_path / "keys"
    keys.write_text(f"# accepted keys\n{hash_key('ok')}\n{secret}\n")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ValueError) as e:
        load_key_hashes([], keys)
    assert "line 3" in str(e.value)
    for fragment in (secret[:6], secret[3:9], secret[-6:]):
        assert fragment not in str(e.value) and fragment not in caplog.text


def test_digests_and_comments_load(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{hash_key('a').upper()}  # ops\n\n{hash_key('b')}\n")
    assert load_key_hashes(["c"], keys) == [hash_key("c"), hash_key("a"), hash_key("b")]
