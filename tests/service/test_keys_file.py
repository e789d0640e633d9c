"""The keys file loader: a bad line is named by its number, never echoed (it may be a real key)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from service.security import hash_key, load_keys


@pytest.mark.parametrize(
    "bad", ["sk-live-abcdefghijklmnopqrstuvwxyz", "{ok} sk-live-abcdefghijklmnopqrstuvwxyz"]
)
def test_plaintext_key_is_never_echoed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, bad: str
) -> None:
    secret = "sk-live-abcdefghijklmnopqrstuvwxyz"
    keys = tmp_path / "keys"
    keys.write_text(f"# accepted keys\n{hash_key('ok')}\n{bad.format(ok=hash_key('ok'))}\n")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ValueError) as e:
        load_keys([], [], keys)
    assert "line 3" in str(e.value)
    for fragment in (secret[:6], secret[3:9], secret[-6:]):
        assert fragment not in str(e.value) and fragment not in caplog.text


def test_digests_roles_and_comments_load(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(
        f"{hash_key('a').upper()}  # ops\n\n{hash_key('b')} admin\n{hash_key('c')} query\n"
    )
    loaded = load_keys([SecretStr("c"), SecretStr("")], [SecretStr("d")], keys)
    # A bare line is a query key; a key given with two roles keeps the higher one.
    assert loaded == {
        hash_key("a"): "query",
        hash_key("b"): "admin",
        hash_key("c"): "query",
        hash_key("d"): "admin",
    }
    assert load_keys([SecretStr("b")], [], keys)[hash_key("b")] == "admin"
