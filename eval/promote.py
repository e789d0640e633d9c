"""Promote a configuration from an evaluation run to serving; list and roll back promotions.

The promotion itself is ``service.runs.promote``: the API's ``POST /v1/eval/promotions`` calls it
too, and ``service`` may not import ``eval``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.runs import choose, load_results, promote
from service.serving import ServingStore

__all__ = ["choose", "history", "load_results", "promote", "rollback"]


def history(home: Path) -> list[dict[str, Any]]:
    return ServingStore(home).history()


def rollback(home: Path) -> int:
    return ServingStore(home).rollback()
