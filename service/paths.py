"""Server paths as clients may see them: relative to HOME, or only a file name.

Responses and error messages must not reveal where the server keeps its files (``/srv/...``,
a user's home folder). What lies under HOME (uploads) is named relative to it; any other absolute
path in a message is cut to its file name, which is all a client can act on anyway.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

# An absolute POSIX path not part of a URL (no scheme, host or word just before the slash).
_ABSOLUTE = re.compile(r"(?<![\w.:/~-])(?:/[^\s'\"()\[\]<>:,;/]+)+")


def public_path(source: str, home: Path) -> str:
    """``source`` relative to ``home`` when under it; otherwise unchanged (an operator's corpus)."""
    for root in _roots(home):
        if source.startswith(root + "/"):
            return source[len(root) + 1 :]
    return source


def indexed_source(value: str, home: Path) -> str:
    """A source as clients name it (``public_path``'s form) back to the indexed one: a relative
    value is read under ``home``, an absolute one is kept (an operator's own corpus)."""
    if value.startswith("/"):
        return value
    return os.path.normpath(os.path.join(str(home.resolve()), value))


def indexed_filters(
    filters: Mapping[str, str | Sequence[str]] | None, home: Path | None
) -> dict[str, str | Sequence[str]] | None:
    """A request's retrieval filters with its ``source`` values as indexed (``indexed_source``)."""
    if not filters or home is None or "source" not in filters:
        return None if filters is None else dict(filters)
    wanted = filters["source"]
    values = [wanted] if isinstance(wanted, str) else list(wanted)
    return {**filters, "source": [indexed_source(v, home) for v in values]}


def redact(text: str, home: Path | None) -> str:
    """``text`` with HOME paths made relative and other absolute paths cut to file names."""
    if home is not None:
        for root in _roots(home):
            text = text.replace(root + "/", "")
    return _ABSOLUTE.sub(lambda m: m.group(0).rsplit("/", 1)[-1], text)


def _roots(home: Path) -> list[str]:
    roots = {str(home.absolute()), str(home.resolve())}
    return sorted(roots, key=len, reverse=True)  # the longer first, so a prefix never cuts short
