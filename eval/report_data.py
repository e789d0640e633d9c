"""results.json as the report reads it: the run, its metrics and configurations, and their labels.

The page's sections all need the same lookups (which configuration is the baseline, which won,
which way a metric is good, how a configuration is named), and a results file from an older or
foreign writer may lack optional keys. Doing those lookups once here keeps every section tolerant
in the same way, and keeps the HTML modules free of data handling.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eval.stats import ci_name
from service import tunables

Cfg = Mapping[str, Any]
# The parameters every configuration's label shows; the swept ones are added after them.
LABEL_PARAMS = ("rag.template", "rag.sampling.temperature", "rag.sampling.top_k", "rag.retrieval.k")


def by_path(c: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration with its parameters keyed by path (older results used short names)."""
    return {**c, **tunables.params_of(c)}


def num(v: Any) -> float | None:
    """A finite float, or None for null, NaN, booleans and anything else a writer left there."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def param_text(path: str, value: Any) -> str:
    """``top-k 40``, ``k=5``: how the verdict sentence and the legends name one parameter value."""
    shown = "–" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    name = tunables.label(path)
    return f"{name}={shown}" if path == "rag.retrieval.k" else f"{name} {shown}"


def config_label(c: Mapping[str, Any], extras: Sequence[str] = ()) -> str:
    """``grounded-qa@2, T=0.3, top-k 40, k=5``; ``extras`` adds the other swept parameters."""
    t = num(c.get("rag.sampling.temperature"))
    parts = [str(c.get("rag.template", "?")), "T=?" if t is None else f"T={t:g}"]
    parts += [param_text(p, c.get(p)) for p in (*LABEL_PARAMS[2:], *extras)]
    return ", ".join(parts)


@dataclass(frozen=True)
class Metric:
    """A metric as the page shows it: its direction decides colours, "better" and sort order."""

    name: str
    title: str
    description: str
    higher_is_better: bool


def comparison(c: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    """``c``'s paired comparison with the baseline on ``metric``, if the writer recorded one."""
    cmp = (c.get("vs_baseline") or {}).get(metric)
    return cmp if isinstance(cmp, Mapping) and num(cmp.get("diff")) is not None else None


def ci_text(cmp: Mapping[str, Any], digits: int | None = None) -> str:
    """``+0.05 [0.01, 0.09]``: the mean paired difference and its interval.

    Tables pass ``digits`` so a column lines up; prose drops a third decimal that says nothing.
    """
    diff, lo, hi = num(cmp.get("diff")) or 0.0, num(cmp.get("ci_low")), num(cmp.get("ci_high"))
    bounds = [v for v in (lo, hi) if v is not None]
    # Three decimals, unless two say it exactly (so "+0.05 [0.01, 0.09]" reads as written).
    d = digits or (2 if all(abs(v * 100 - round(v * 100)) < 1e-6 for v in (diff, *bounds)) else 3)
    ci = f" [{lo:.{d}f}, {hi:.{d}f}]" if lo is not None and hi is not None else ""
    return f"{diff:+.{d}f}{ci}"


def metrics_of(results: Mapping[str, Any]) -> list[Metric]:
    """Every metric some configuration has, the primary one first, then in catalogue order.

    The direction of each metric comes from results.json's own catalogue, else from
    ``eval.metrics.METRICS`` (imported only here), else "higher is better", which holds for
    nearly all of ours: a report of an older or foreign results file still renders.
    """
    known: dict[str, Any] = {}
    try:
        for name, info in importlib.import_module("eval.metrics").METRICS.items():
            known[name] = {k: getattr(info, k, None) for k in ("description", "higher_is_better")}
    except (ImportError, AttributeError):
        pass
    known.update(results.get("metrics") or {})
    seen: dict[str, None] = {}
    for c in results.get("configs") or []:
        seen.update(dict.fromkeys(c.get("metrics") or {}))
    primary = (results.get("run") or {}).get("primary_metric")
    order = {name: i for i, name in enumerate(known)}
    names = sorted(seen, key=lambda n: (n != primary, order.get(n, len(order))))
    return [
        Metric(
            name=n,
            title=n.replace("_", " "),
            description=str((known.get(n) or {}).get("description") or ""),
            higher_is_better=(known.get(n) or {}).get("higher_is_better") is not False,
        )
        for n in names
    ]


class Run:
    """The results with the lookups every section needs, tolerant of missing optional keys."""

    def __init__(self, results: Mapping[str, Any]) -> None:
        self.info: Mapping[str, Any] = results.get("run") or {}
        self.ci = ci_name(self.info.get("confidence_level"))  # "95% CI"
        self.configs: list[Cfg] = [by_path(c) for c in results.get("configs") or []]
        self.rows: list[Cfg] = list(results.get("rows") or [])
        self.metrics = metrics_of(results)
        self.primary = self.metrics[0] if self.metrics else None
        base_id = self.info.get("baseline")
        self.baseline = next(
            (c for c in self.configs if c.get("baseline") or c.get("id") == base_id),
            self.configs[0] if self.configs else None,
        )
        self.winner = next(
            (
                c
                for c in self.configs
                if c.get("id") == results.get("winner") and c is not self.baseline
            ),
            None,
        )
        self.extras = [
            t.path
            for t in tunables.tunables()
            if t.path not in LABEL_PARAMS and len({str(c.get(t.path)) for c in self.configs}) > 1
        ]
        self.cases = list(dict.fromkeys(row_case(r) for r in self.rows))

    def label(self, c: Cfg) -> str:
        return config_label(c, self.extras)

    def value(self, c: Cfg, metric: str) -> float | None:
        return num((c.get("metrics") or {}).get(metric))

    def ranked(self) -> list[Cfg]:
        """Configurations best first on the primary metric (missing values last)."""
        p = self.primary
        sign = -1.0 if p is None or p.higher_is_better else 1.0

        def key(c: Cfg) -> tuple[bool, float]:
            v = self.value(c, p.name) if p else None
            return (v is None, sign * (v or 0.0))

        return sorted(self.configs, key=key)

    def challenger(self) -> Cfg | None:
        """The winner, else the best other configuration: what the per-question table compares."""
        if self.winner is not None:
            return self.winner
        return next((c for c in self.ranked() if c is not self.baseline), None)


def row_case(r: Cfg) -> str:
    return str(r.get("case_id", r.get("case", "")))


def row_config(r: Cfg) -> str:
    return str(r.get("config_id", r.get("config", "")))


def verdict(run: Run) -> str:
    """The one sentence the page exists for (plain text; the caller escapes it)."""
    if run.primary is None or run.baseline is None:
        return "No metrics were recorded, so there is nothing to compare."
    m = run.primary
    if run.winner is not None and (cmp := comparison(run.winner, m.name)):
        who = run.label(run.winner)
        return f"{who} beats the serving configuration on {m.title} by {ci_text(cmp)}."
    if len(run.configs) < 2:
        return "Only the serving configuration was evaluated; there is nothing to compare it with."
    return f"No configuration beats the baseline beyond noise on {m.title}."
