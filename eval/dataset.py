"""Evaluation datasets: JSONL, one case a line (the format of ../shared/data/qa/dev.jsonl).

Required: ``id``, ``question``, ``ground_truth``. Optional: ``evidence`` (strings a correct
retrieved passage contains), ``reference_contexts``, ``tags``, and ``history``: the conversation
before ``question``, as chat messages (``[{"role": "user" | "assistant", "content": "..."}]``,
oldest first), for a follow-up that only makes sense after them (eval/data/dialogues.jsonl);
``ground_truth`` and ``evidence`` are then the follow-up's. Other fields are kept in ``extra``
and written back unchanged, so a dataset survives a round trip through our tools.

``python -m eval.dataset FILE...`` checks files with the loader ``eval run`` uses and prints one
JSON object per file (``{"cases": n}`` or ``{"error": message}``): the service lists and accepts
datasets through it, since ``service`` may not import ``eval``.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from eval.strings import is_dont_know

T = TypeVar("T")

_KNOWN = ("id", "question", "ground_truth", "evidence", "reference_contexts", "tags", "history")


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file and line."""


def load_toml(path: Path, parse: Callable[[dict[str, Any]], T], error: type[ValueError]) -> T:
    """``parse`` of the TOML file at ``path``; any problem raises ``error`` naming the file.

    Sweep and models files share this, so both report unreadable files, bad TOML and bad keys
    the same way (``parse`` raises ``error`` with the key; the file name is put in front).
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise error(f"{path}: not TOML: {e}") from e
    try:
        return parse(raw)
    except error as e:
        raise error(f"{path}: {e}") from e


@dataclass(frozen=True)
class Case:
    id: str
    question: str
    ground_truth: str
    evidence: tuple[str, ...] = ()
    reference_contexts: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    history: tuple[tuple[str, str], ...] = ()  # earlier turns: (role, content), oldest first
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def unanswerable(self) -> bool:
        """Whether the right answer is "I don't know": ``kind: unanswerable``, or a ground truth
        that declines.

        Missing ``evidence`` alone does not make a case unanswerable: cases made from feedback
        carry a corrected answer and no evidence.
        """
        return self.extra.get("kind") == "unanswerable" or is_dont_know(self.ground_truth)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "question": self.question}
        out["ground_truth"] = self.ground_truth
        if self.evidence:
            out["evidence"] = list(self.evidence)
        if self.reference_contexts:
            out["reference_contexts"] = list(self.reference_contexts)
        if self.tags:
            out["tags"] = list(self.tags)
        if self.history:
            out["history"] = [{"role": r, "content": c} for r, c in self.history]
        return {**out, **self.extra}


def _strings(value: Any, name: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise DatasetError(f"{where}: '{name}' must be a string or a list of strings")


def _history(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    ok = isinstance(value, list) and all(
        isinstance(m, dict)
        and m.get("role") in ("user", "assistant")
        and isinstance(m.get("content"), str)
        and set(m) == {"role", "content"}
        for m in value
    )
    if not ok:
        raise DatasetError(
            f'{where}: \'history\' must be a list of {{"role": "user" | "assistant", '
            '"content": string}} messages'
        )
    return tuple((m["role"], m["content"]) for m in value)


def parse_case(obj: Any, where: str) -> Case:
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a JSON object")
    for key in ("id", "question", "ground_truth"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise DatasetError(f"{where}: '{key}' is required and must be a non-empty string")
    return Case(
        id=obj["id"],
        question=obj["question"],
        ground_truth=obj["ground_truth"],
        evidence=_strings(obj.get("evidence"), "evidence", where),
        reference_contexts=_strings(obj.get("reference_contexts"), "reference_contexts", where),
        tags=_strings(obj.get("tags"), "tags", where),
        history=_history(obj.get("history"), where),
        extra={k: v for k, v in obj.items() if k not in _KNOWN},
    )


def load_dataset(path: Path) -> list[Case]:
    """All cases of ``path``; blank lines are skipped, duplicate ids are an error."""
    cases: list[Case] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read: {e.strerror or e}") from e
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{where}: not JSON: {e.msg}") from e
        case = parse_case(obj, where)
        if case.id in seen:
            raise DatasetError(f"{where}: duplicate id '{case.id}'")
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise DatasetError(f"{path}: no cases")
    return cases


def write_dataset(path: Path, cases: Iterable[Case]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for case in cases:
            f.write(json.dumps(case.as_dict(), ensure_ascii=False) + "\n")
    tmp.replace(path)


def select(cases: Sequence[Case], tags: Sequence[str] = ()) -> list[Case]:
    """Cases having all of ``tags`` (all cases when none are given)."""
    return [c for c in cases if all(t in c.tags for t in tags)]


def check(path: Path) -> dict[str, Any]:
    """``{"cases": n}`` when ``load_dataset`` accepts ``path``, else ``{"error": its message}``."""
    try:
        return {"cases": len(load_dataset(path))}
    except DatasetError as e:
        return {"error": str(e)}


def main(argv: Sequence[str] | None = None) -> int:
    for name in sys.argv[1:] if argv is None else argv:
        print(json.dumps(check(Path(name))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
