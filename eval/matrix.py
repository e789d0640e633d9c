"""The weighted-factors matrix of a model selection: factors, their directions, scores and ranks.

The design notes pick a model by scoring each candidate on weighted factors rather than on one
metric: quality alone would pick the largest model, cost alone the smallest. Every factor is put
on a 0..1 scale across the candidates (min-max; 1 is the best candidate on it, whichever way the
factor counts), so a factor's weight is its share of the score and no factor wins by its units.
The score is the weighted mean of the normalized values; candidates rank by it, ties share a rank.

Nothing here runs a model: ``eval.selection`` measures the raw values and hands them over, so
this module is plain arithmetic that the tests check with hand-made numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

# Ties in a factor or a score are values closer than this, relative to their size: a factor two
# candidates share exactly must not split them by float rounding.
_TIE = 1e-9


@dataclass(frozen=True)
class Factor:
    """One column of the matrix: which way it counts, its unit and what it measures."""

    name: str
    higher_is_better: bool
    unit: str
    description: str

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


# The factors that are not answer-quality metrics: measured while answering, or configured.
SYSTEM_FACTORS = (
    Factor("latency_p50_ms", False, "ms", "median time of one model call, over calls made"),
    Factor("tokens_per_s", True, "tokens/s", "completion tokens / seconds spent in model calls"),
    Factor("cost_per_1k_tokens", False, "per 1k tokens", "price per 1,000 tokens, as configured"),
    Factor("context_window", True, "tokens", "as configured, else what the backend reports"),
)


@cache
def factors() -> dict[str, Factor]:
    """Every factor a models file may weight: each eval metric, then the system factors."""
    from eval.metrics import METRICS

    out = {
        m.name: Factor(m.name, m.higher_is_better, "mean", m.description) for m in METRICS.values()
    }
    out.update({f.name: f for f in SYSTEM_FACTORS})
    return out


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= _TIE * max(1.0, abs(a), abs(b))


def normalize(values: Sequence[float | None], higher_is_better: bool) -> list[float | None]:
    """Min-max to 0..1 across candidates, 1 for the best; equal values are 1.0 for all.

    A missing value (a metric a candidate could not be scored on) stays None: it is not the worst
    measured value, it is no value, and ``score`` counts it as 0.
    """
    present = [v for v in values if v is not None]
    if not present:
        return [None] * len(values)
    lo, hi = min(present), max(present)
    if _same(lo, hi):
        return [None if v is None else 1.0 for v in values]
    span = hi - lo
    return [
        None if v is None else (v - lo) / span if higher_is_better else (hi - v) / span
        for v in values
    ]


def competition_rank(scores: Sequence[float]) -> list[int]:
    """1 for the best; equal scores share a rank and the next rank skips (1, 1, 3)."""
    return [1 + sum(1 for o in scores if o > s and not _same(o, s)) for s in scores]


@dataclass(frozen=True)
class Scored:
    """One candidate's row of the matrix."""

    name: str
    raw: dict[str, float | None]
    normalized: dict[str, float | None]
    contributions: dict[str, float]  # weight × normalized / total weight; they sum to the score
    score: float
    rank: int


def score_matrix(
    raw: Mapping[str, Mapping[str, float | None]],
    weights: Mapping[str, float],
    higher_is_better: Mapping[str, bool],
) -> list[Scored]:
    """Score each candidate (``raw``: name -> factor -> value) on the weighted factors.

    ``weights`` names the matrix's factors; a factor with weight 0 is shown, not counted. The
    result is best first; candidates with equal scores keep ``raw``'s order.
    """
    total = sum(weights.values())
    if not weights or min(weights.values()) < 0 or total <= 0:
        raise ValueError("weights must be >= 0 with at least one above 0")
    names = list(raw)
    norm: dict[str, dict[str, float | None]] = {n: {} for n in names}
    for f in weights:
        column = normalize([raw[n].get(f) for n in names], higher_is_better[f])
        for n, v in zip(names, column, strict=True):
            norm[n][f] = v
    parts = {n: {f: w * (norm[n][f] or 0.0) / total for f, w in weights.items()} for n in names}
    scores = [sum(parts[n].values()) for n in names]
    ranks = competition_rank(scores)
    rows = [
        Scored(n, {f: raw[n].get(f) for f in weights}, norm[n], parts[n], s, r)
        for n, s, r in zip(names, scores, ranks, strict=True)
    ]
    return sorted(rows, key=lambda row: row.rank)
