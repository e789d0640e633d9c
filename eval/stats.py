"""Honest comparison: each configuration against the baseline on the same questions.

A mean that is 0.02 higher on twenty questions is usually noise. Every metric gets the mean
paired difference (candidate minus baseline, question by question) and a paired bootstrap
confidence interval (95% unless settings' ``eval.confidence_level`` says otherwise); a
configuration is ``better`` only when that interval excludes zero in the metric's good
direction, and only such a configuration can win. ``eval.results`` builds the results files from
these numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

RESAMPLES = 2000
BOOTSTRAP_SEED = 20240601  # fixed: the same rows always give the same intervals
# Below this many paired questions nothing is called better or worse: a percentile bootstrap
# on n pairs excludes 0 whenever all n differences share a sign, which pure noise does with
# probability 1/2^n per direction (1 in 4 for two questions); at 5 it is 3%, near nominal.
MIN_PAIRS = 5
LEVEL = 0.95


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are computed; a run takes these from settings' ``eval`` section."""

    resamples: int = RESAMPLES
    seed: int = BOOTSTRAP_SEED
    level: float = LEVEL


DEFAULT_BOOTSTRAP = Bootstrap()


@dataclass(frozen=True)
class Comparison:
    """Candidate vs baseline on one metric over the questions both have a value for."""

    n: int
    mean: float
    baseline_mean: float
    diff: float
    ci_low: float
    ci_high: float
    better: bool
    worse: bool

    def as_dict(self) -> dict[str, Any]:
        return {k: _finite(v) for k, v in asdict(self).items()}


def ci_name(level: Any = LEVEL) -> str:
    """``95% CI``: an interval's name at a run's confidence level (a run without one: 95%)."""
    ok = isinstance(level, int | float) and not isinstance(level, bool) and 0 < level < 1
    return f"{(level if ok else LEVEL) * 100:g}% CI"


def _finite(v: Any) -> Any:
    """JSON has no NaN: missing values are written as null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def paired_bootstrap(
    candidate: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    higher_is_better: bool = True,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = LEVEL,
) -> Comparison:
    """Mean paired difference with a percentile bootstrap CI over resampled questions.

    Questions, not answers, are resampled: the pairs stay together, so question difficulty (the
    largest source of variance) cancels out of the difference.
    """
    a = np.asarray(candidate, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired samples must have the same length")
    n = len(a)
    if n == 0:
        nan = float("nan")
        return Comparison(0, nan, nan, nan, nan, nan, False, False)
    d = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    means = d[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = (float(x) for x in np.percentile(means, [tail, 100 - tail]))
    diff = float(d.mean())
    if np.all(d == d[0]):  # no spread: the interval is the point, exactly (no rounding noise)
        low = high = diff
    enough = n >= MIN_PAIRS
    up, down = enough and low > 0, enough and high < 0
    return Comparison(
        n=n,
        mean=float(a.mean()),
        baseline_mean=float(b.mean()),
        diff=diff,
        ci_low=low,
        ci_high=high,
        better=up if higher_is_better else down,
        worse=down if higher_is_better else up,
    )


def by_case(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, float]:
    """Case id -> value of ``metric`` for the rows of one configuration (missing values left out)."""
    out = {}
    for r in rows:
        v = r["metrics"].get(metric)
        if v is not None and math.isfinite(v):
            out[r["case"]] = float(v)
    return out


def compare(
    rows: Sequence[Mapping[str, Any]],
    baseline_rows: Sequence[Mapping[str, Any]],
    metric: str,
    *,
    higher_is_better: bool = True,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> Comparison:
    """``rows`` (one configuration) against ``baseline_rows`` on the questions both have."""
    mine, base = by_case(rows, metric), by_case(baseline_rows, metric)
    common = [c for c in mine if c in base]
    return paired_bootstrap(
        [mine[c] for c in common],
        [base[c] for c in common],
        higher_is_better=higher_is_better,
        resamples=bootstrap.resamples,
        seed=bootstrap.seed,
        level=bootstrap.level,
    )


def mean_metrics(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, float]:
    """Per-metric mean over the rows that have it; metrics no row has are left out."""
    out = {}
    for name in names:
        values = list(by_case(rows, name).values())
        if values:
            out[name] = float(np.mean(values))
    return out


def latency_p50(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """Median seconds per answer over the rows where the model was actually asked."""
    values = [r["latency_s"] for r in rows if r.get("called")]
    return float(np.median(values)) if values else None


def tokens_mean(rows: Sequence[Mapping[str, Any]]) -> float | None:
    values = [r["completion_tokens"] for r in rows if r.get("called")]
    return float(np.mean(values)) if values else None


def pick_winner(
    configs: Sequence[Mapping[str, Any]],
    primary: str,
    *,
    higher_is_better: bool = True,
    n_questions: int | None = None,
) -> str:
    """The best configuration on ``primary`` among those significantly better than the baseline.

    Without one the baseline stays: changing what serves needs evidence, not a lucky mean.
    With ``n_questions``, only configurations evaluated on every question may win (halving's
    early exits were judged on a subset).
    """
    baseline = next(c for c in configs if c["baseline"])
    sign = 1.0 if higher_is_better else -1.0
    best, best_key = baseline["id"], -math.inf
    for c in configs:
        cmp = c["vs_baseline"].get(primary)
        if c["baseline"] or cmp is None or not cmp["better"]:
            continue
        if n_questions is not None and c["questions"] < n_questions:
            continue
        key = sign * c["metrics"][primary]
        if key > best_key:
            best, best_key = c["id"], key
    return str(best)
