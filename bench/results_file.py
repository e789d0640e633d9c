"""The one way bench scripts write their results: JSON under ``bench/results``, then say where."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_results(path: Path, body: Any) -> None:
    """Write ``body`` as indented UTF-8 JSON to ``path`` (its folder made) and print the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")
