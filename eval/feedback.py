"""Turn what users said about answers into evaluation cases and few-shot candidates.

A thumbs-down with a corrected answer becomes a case: the question, the correction as ground
truth, and the passages the original answer was given as reference contexts (so non-LLM context
metrics can tell whether retrieval was the problem). A thumbs-up answer is a candidate example
for a template's few-shot bank; ``accept_examples`` writes them into a new template version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from eval.dataset import Case
from prompts.registry import Template, TemplateRegistry, write_version
from service.feedback import Feedback, FeedbackStore


def feedback_rows(home: Path, since: datetime | None = None) -> list[Feedback]:
    path = home / "feedback.sqlite"
    if not path.is_file():
        return []
    store = FeedbackStore(path)
    try:
        return store.feedback(since=since.timestamp() if since else None)
    finally:
        store.close()


def cases_from_feedback(rows: Sequence[Feedback]) -> list[Case]:
    """One case per thumbs-down that carries a corrected answer (the latest one per response)."""
    latest: dict[str, Feedback] = {}
    for r in rows:
        if r.rating == "down" and (r.corrected_answer or "").strip():
            latest[r.response_id] = r
    return [
        Case(
            id=f"feedback-{r.id}",
            question=r.answer.question,
            ground_truth=(r.corrected_answer or "").strip(),
            reference_contexts=tuple(c.text for c in r.answer.citations),
            tags=("feedback",),
            extra={
                "response_id": r.response_id,
                "original_answer": r.answer.text,
                "comment": r.comment,
                "prompt": r.answer.provenance.prompt,
            },
        )
        for r in latest.values()
    ]


def example_candidates(rows: Sequence[Feedback]) -> list[dict[str, Any]]:
    """Thumbs-up answers with the passages they were given, in the template example format."""
    out, seen = [], set()
    for r in rows:
        if r.rating != "up" or r.response_id in seen:
            continue
        seen.add(r.response_id)
        out.append(
            {
                "question": r.answer.question,
                "passages": [
                    {"text": c.text, "source": Path(c.source).name, "page": c.page}
                    for c in r.answer.citations
                ],
                "answer": r.answer.text,
                "response_id": r.response_id,
            }
        )
    return out


def accept_examples(
    registry: TemplateRegistry, ref: str, candidates_file: Path, user_dir: Path
) -> Path:
    """Write ``ref``'s template with the candidates appended, as the next version in ``user_dir``.

    ``prompts.registry.write_version`` validates before writing and never replaces a version
    (the API's ``POST /v1/templates/{id}/versions`` writes through it too).
    """
    base: Template = registry.get(ref)
    if base.path is None:
        raise ValueError(f"{ref} has no source file to derive a new version from")
    data = yaml.safe_load(base.path.read_text())
    candidates = [
        json.loads(line) for line in candidates_file.read_text().splitlines() if line.strip()
    ]
    if not candidates:
        raise ValueError(f"{candidates_file}: no candidates")
    for c in candidates:
        c.pop("response_id", None)
        for p in c.get("passages", []):
            if p.get("page") is None:
                p.pop("page", None)
        if "[" not in c["answer"] and c.get("passages"):
            # Examples must show the citation habit; a liked answer usually rests on the top passage.
            c["answer"] = c["answer"].rstrip() + " [1]"
    data["examples"] = list(data.get("examples", [])) + candidates
    version = registry.next_version(base.id)
    data["version"] = version
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    written = write_version(user_dir, text, base.id, version)
    assert written.path is not None  # write_version's template is the file it wrote
    return written.path
