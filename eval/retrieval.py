"""Retrieval diagnostics: hit rate@k and MRR@k of the serving retrieval, and why each miss missed.

A score says how often retrieval fails; this says why. For every answerable case whose evidence
is not in the top k, the case is searched again ``depth`` deep (the serving configuration with
only k raised) to find the rank of the first chunk containing evidence and the chunks that
outranked it. Misses fall into a few kinds, each asking for a different fix:

- ``ranked``: found below k: a ranking problem (fusion weights, the floor, chunk titles).
- ``below_floor``: ranked, but its cosine is under ``min_score``, which drops it in every mode.
- ``split``: the document's text has the evidence but no single chunk does: a chunking problem.
- ``not_in_text``: the document's converted text lacks it (conversion lost or garbled it).
- ``not_found``: a chunk has it, but not within ``depth``: the question and passage do not meet.
- ``no_document``: the case names a source document the index does not hold.

The hit test is ``eval.metrics.retrieval_metrics`` (one definition of a hit, shared with
``eval run``); unanswerable cases (``kind: unanswerable`` or no evidence) are counted apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from eval.dataset import Case
from eval.metrics import Observation, retrieval_metrics
from eval.strings import evidence_key, has_evidence
from ingest.embed import Embedder
from ingest.index import Hit, IndexReader
from service import rag
from service.settings import RagSettings

Reason = Literal["ranked", "below_floor", "split", "not_in_text", "not_found", "no_document"]
REASONS: dict[str, str] = {
    "ranked": "found below k",
    "below_floor": "under min_score",
    "split": "split across chunks",
    "not_in_text": "not in converted text",
    "not_found": "not within depth",
    "no_document": "document not indexed",
}
OUTRANKED_KEPT = 10  # chunks above a miss's evidence kept per miss (the first k matter most)
PREVIEW = 120  # characters of each outranking chunk shown


@dataclass(frozen=True)
class Outranker:
    """A chunk ranked above the evidence: what took its place."""

    rank: int
    source: str
    heading: str
    score: float
    text: str  # the first PREVIEW characters, whitespace collapsed
    same_document: bool | None  # from the case's source document (None: the case names none)


@dataclass(frozen=True)
class Miss:
    id: str
    question: str
    reason: Reason
    rank: (
        int | None
    )  # rank of the first evidence chunk within depth (floor ignored for below_floor)
    outranked_count: int | None  # chunks ranked above it (None: not found)
    outranked: tuple[Outranker, ...]


@dataclass
class DatasetReport:
    dataset: str
    k: int
    depth: int
    answerable: int = 0
    unanswerable: int = 0
    hit_rate: float = 0.0
    mrr: float = 0.0
    found_at_depth: float = 0.0  # share of answerable cases with evidence within depth
    misses: list[Miss] = field(default_factory=list)

    def reasons(self) -> dict[str, int]:
        return dict(Counter(m.reason for m in self.misses).most_common())

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = self.reasons()
        return out


def is_answerable(case: Case) -> bool:
    return case.extra.get("kind") != "unanswerable" and any(e.strip() for e in case.evidence)


def diagnose(
    embedder: Embedder,
    index: IndexReader,
    cases: Sequence[Case],
    serving: RagSettings,
    *,
    dataset: str,
    depth: int = 100,
) -> DatasetReport:
    """Hit rate and MRR at ``serving.retrieval.k`` over ``cases``, with a diagnosis per miss."""
    k = serving.retrieval.k
    report = DatasetReport(dataset=dataset, k=k, depth=max(depth, k))
    hits = mrr = found = 0.0
    for case in cases:
        if not is_answerable(case):
            report.unanswerable += 1
            continue
        report.answerable += 1
        top = rag.retrieve_serving(embedder, index, case.question, serving)
        scores = retrieval_metrics(Observation(case, "", tuple(h.text for h in top)), k)
        hits += scores["hit_rate"]
        mrr += scores["mrr"]
        if scores["hit_rate"]:
            found += 1
            continue
        miss = _diagnose_miss(embedder, index, case, serving, report.depth)
        found += miss.rank is not None and miss.reason != "below_floor"
        report.misses.append(miss)
    n = report.answerable or 1
    report.hit_rate, report.mrr = hits / n, mrr / n
    report.found_at_depth = found / n
    return report


def _diagnose_miss(
    embedder: Embedder, index: IndexReader, case: Case, serving: RagSettings, depth: int
) -> Miss:
    deep = rag.with_retrieval(serving, k=depth)
    ranked = rag.retrieve_serving(embedder, index, case.question, deep)
    rank = _evidence_rank(ranked, case)
    reason: Reason = "ranked"
    if rank is None and serving.retrieval.min_score is not None:
        unfloored = deep.retrieval.model_copy(update={"min_score": None})
        floorless = rag.retrieve_serving(
            embedder, index, case.question, deep.model_copy(update={"retrieval": unfloored})
        )
        rank = _evidence_rank(floorless, case)
        if rank is not None:
            ranked, reason = floorless, "below_floor"
    if rank is None:
        reason = _absence(index, case)
    above = ranked[: rank - 1] if rank is not None else ranked
    source = _case_source(case)
    return Miss(
        id=case.id,
        question=case.question,
        reason=reason,
        rank=rank,
        outranked_count=None if rank is None else rank - 1,
        outranked=tuple(_outranker(r, h, source) for r, h in enumerate(above[:OUTRANKED_KEPT], 1)),
    )


def _evidence_rank(hits: Sequence[Hit], case: Case) -> int | None:
    return next((r for r, h in enumerate(hits, 1) if has_evidence(h.text, case.evidence)), None)


def _case_source(case: Case) -> str | None:
    source = case.extra.get("source")
    return Path(source).name if isinstance(source, str) and source else None


def _absence(index: IndexReader, case: Case) -> Reason:
    """Why no chunk within depth holds the evidence: the document's own chunks tell."""
    name = _case_source(case)
    if name is None:
        return "not_found"
    docs = [d for d in index.documents() if Path(d.source).name == name]
    if not docs:
        return "no_document"
    chunks = [c for d in docs for c in index.chunks(d.doc_id)]
    if any(has_evidence(c.text, case.evidence) for c in chunks):
        return "not_found"
    joined = evidence_key(" ".join(c.text for c in sorted(chunks, key=lambda c: c.start)))
    if any(e.strip() and evidence_key(e) in joined for e in case.evidence):
        return "split"
    return "not_in_text"


def _outranker(rank: int, hit: Hit, source: str | None) -> Outranker:
    return Outranker(
        rank=rank,
        source=Path(hit.source).name,
        heading=rag.heading_text(hit),
        score=round(float(hit.score), 4),
        text=" ".join(hit.text.split())[:PREVIEW],
        same_document=None if source is None else Path(hit.source).name == source,
    )


# --- output ------------------------------------------------------------------------------------


def dataset_label(path: Path) -> str:
    """``qa2/qa.jsonl``: the file and its folder, which tells datasets apart better than a name."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def summary_table(reports: Sequence[DatasetReport]) -> str:
    """One line per dataset: scores, counts and the kinds of misses (``@depth``: found at all)."""
    w = max([len("dataset"), *(len(r.dataset) for r in reports)])
    lines = [
        f"{'dataset':<{w}} {'cases':>5} {'skip':>4} {'hit@k':>6} {'MRR@k':>6} "
        f"{'@depth':>6}  misses by kind"
    ]
    for r in reports:
        kinds = ", ".join(f"{REASONS[name]} {n}" for name, n in r.reasons().items()) or "-"
        lines.append(
            f"{r.dataset:<{w}} {r.answerable:>5} {r.unanswerable:>4} {r.hit_rate:>6.3f} "
            f"{r.mrr:>6.3f} {r.found_at_depth:>6.3f}  {kinds}"
        )
    return "\n".join(lines)


def misses_text(report: DatasetReport, shown: int | None = None) -> str:
    """Each miss: its rank (or why it has none) and the chunks that took the top places."""
    shown = report.k if shown is None else shown
    out = [
        f"{report.dataset}: {len(report.misses)} misses at k={report.k} (depth {report.depth}; "
        "outranking chunks marked = from the case's document, x from another)"
    ]
    for m in report.misses:
        where = f"rank {m.rank}" if m.rank is not None else "not ranked"
        out.append(f"  {m.id}  {where}, {REASONS[m.reason]}: {m.question}")
        for o in m.outranked[:shown]:
            mark = {True: "=", False: "x", None: " "}[o.same_document]
            heading = f" [{o.heading}]" if o.heading else ""
            out.append(f"    {o.rank:>2}. {mark} {o.score:.4f} {o.source}{heading}")
            out.append(f"          {o.text}")
    return "\n".join(out)
