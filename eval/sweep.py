"""Sweep files: which serving configurations to compare, and how to search among them.

A sweep is TOML so a prompt engineer can keep it next to a template change and review it::

    seed = 7                      # sampling seed for every generation (default 0)

    [axes]                        # each a list of values; a left-out axis keeps the serving value
    "rag.template" = ["grounded-qa@1", "grounded-qa@2"]
    "rag.sampling.temperature" = [0.0, 0.3, 0.7]
    "rag.sampling.top_k" = [20, 40]
    "rag.retrieval.k" = [3, 5]
    "rag.retrieval.mode" = ["dense", "hybrid"]   # dense | bm25 | hybrid
    "rag.retrieval.dense_weight" = [0.3, 0.5]    # hybrid: weight of the dense side
    "chunk.size" = [48, 64]       # re-chunked copies of the indexed files (eval only)

An axis is a tunable's path (``service.tunables``: every field under ``rag``, plus ``chunk.size``
and ``chunk.overlap``), written quoted as above, as a dotted key (``rag.retrieval.k = [3, 5]``)
or as a table (``[axes.rag.sampling]``). The short names of older sweep files
(``temperature``, ``retrieval_k``, ``retrieval_mode``, ``chunk_size``...) still work.

    [search]
    method = "halving"            # "grid" (default): every configuration on every question
    metric = "key_facts"          # what halving ranks by (default: the run's primary metric)
    eta = 2                       # keep the best 1/eta of the configurations per rung (>= 2)
    min_questions = 4             # questions in the first rung; each rung has eta times more

The serving configuration (``RagSettings`` with any promotion applied) is always one of the
configurations, marked ``baseline``: every other one is judged against it on the same questions.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from eval.dataset import Case, load_toml
from ingest.settings import ChunkSettings
from service import tunables
from service.settings import RagSettings

DEFAULT_SEED = 0
_SEARCH_KEYS = ("method", "metric", "eta", "min_questions")


class SweepError(ValueError):
    """A sweep file that cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class Config:
    """One configuration under test: a value for every tunable; ``id`` is a short hash of them.

    The id depends on the values and the seed only (not on ``baseline`` or sweep order), so a
    rerun or a grown sweep names the same configuration the same way and its results line up
    across runs.
    """

    values: tuple[tuple[str, Any], ...]  # (path, value) for every tunable, declaration order
    seed: int | None = DEFAULT_SEED
    baseline: bool = field(default=False, compare=False)

    @classmethod
    def of(
        cls, values: Mapping[str, Any], seed: int | None = DEFAULT_SEED, *, baseline: bool = False
    ) -> Config:
        """A configuration from ``{path: value}``; every tunable must be given."""
        missing = [t.path for t in tunables.tunables() if t.path not in values]
        if missing:
            raise ValueError(f"configuration without {', '.join(missing)}")
        ordered = tuple((t.path, values[t.path]) for t in tunables.tunables())
        return cls(ordered, seed, baseline)

    def __getitem__(self, path: str) -> Any:
        return dict(self.values)[path]

    def replace(self, **changes: Any) -> Config:
        """This configuration with ``{path: value}`` changes (paths or short names)."""
        update = {tunables.resolve(k): v for k, v in changes.items()}
        return Config.of({**dict(self.values), **update}, self.seed, baseline=self.baseline)

    @property
    def params(self) -> dict[str, Any]:
        """Every tunable by path plus the seed: what the id hashes and what results record."""
        return {**dict(self.values), "seed": self.seed}

    @property
    def id(self) -> str:
        identifying = tunables.identifying(self.params)
        blob = json.dumps(identifying, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    @property
    def template(self) -> str | None:
        """The template asked for; None: the built-in one for the model's prompt style."""
        value = self["rag.template"]
        return None if value is None else str(value)

    @property
    def retrieval_k(self) -> int:
        return int(self["rag.retrieval.k"])

    def rag(self, serving: RagSettings) -> RagSettings:
        """The serving settings with this configuration's serve-scope values applied."""
        return tunables.apply(serving, dict(self.values))

    def chunking(self, serving: ChunkSettings) -> tuple[int, int] | None:
        """(size, overlap) of the re-chunked copy this configuration reads; None: the index."""
        mine = (int(self["chunk.size"]), int(self["chunk.overlap"]))
        return None if mine == (serving.size, serving.overlap) else mine

    def label(self, paths: Sequence[str] | None = None) -> str:
        """A one-liner for tables and progress bars: template, then each of ``paths`` labelled.

        ``paths`` defaults to ``LABEL_PATHS``; a run adds the paths its configurations differ in.
        """
        shown = paths if paths is not None else LABEL_PATHS
        parts = [self.template or "auto template"]
        parts += [f"{tunables.label(p)}={_text(self[p])}" for p in shown if p != "rag.template"]
        return " ".join(parts)


# What a configuration's label shows unless a run names the axes it swept.
LABEL_PATHS = (
    "rag.sampling.temperature",
    "rag.sampling.top_p",
    "rag.sampling.top_k",
    "rag.sampling.max_tokens",
    "rag.retrieval.k",
    "rag.retrieval.mode",
)


def _text(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


@dataclass(frozen=True)
class Search:
    """How configurations are explored: the full grid, or successive halving on question subsets.

    Halving evaluates every configuration on ``min_questions`` questions, keeps the best
    ``1/eta`` of them by ``metric`` (the baseline always stays), multiplies the subset by ``eta``
    and repeats until the survivors have seen every question; it trades certainty about the weak
    configurations for time spent on the strong ones.
    """

    method: Literal["grid", "halving"] = "grid"
    metric: str | None = None  # None: the run's primary metric
    eta: int = 2
    min_questions: int = 4


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file: the configurations (baseline first) and the search strategy."""

    configs: tuple[Config, ...]
    search: Search = Search()
    seed: int | None = DEFAULT_SEED

    @property
    def baseline(self) -> Config:
        return next(c for c in self.configs if c.baseline)


def baseline_config(
    rag: RagSettings, seed: int | None = DEFAULT_SEED, chunk: ChunkSettings | None = None
) -> Config:
    """The current serving configuration, as the sweep's reference point."""
    return Config.of(tunables.values_of(rag, chunk or ChunkSettings()), seed, baseline=True)


def _axes(raw: Any) -> dict[str, list[Any]]:
    if not isinstance(raw, Mapping):
        raise SweepError("[axes] must be a table")
    out: dict[str, list[Any]] = {}
    for name, values in tunables.flatten(raw).items():
        try:
            path = tunables.resolve(name)
        except tunables.TunableError:
            known = ", ".join(t.path for t in tunables.tunables())
            raise SweepError(f"unknown axis {name}; known axes: {known}") from None
        if path in out:
            raise SweepError(f"axes.{name}: {path} is given twice")
        values = values if isinstance(values, list) else [values]
        if not values:
            raise SweepError(
                f"axes.{name}: empty list (leave the axis out to keep the serving value)"
            )
        checked = []
        for v in values:
            try:
                checked.append(tunables.check(path, v))
            except tunables.TunableError as e:
                raise SweepError(f"axes.{name}: {v!r}: {e}") from None
        out[path] = list(dict.fromkeys(checked))  # duplicates would only cost time
    return out


def _search(raw: Any) -> Search:
    if not isinstance(raw, Mapping):
        raise SweepError("[search] must be a table")
    unknown = sorted(set(raw) - set(_SEARCH_KEYS))
    if unknown:
        raise SweepError(
            f"unknown key search.{', search.'.join(unknown)}; known: {', '.join(_SEARCH_KEYS)}"
        )
    method = raw.get("method", "grid")
    if method not in ("grid", "halving"):
        raise SweepError(f"search.method: {method!r} is not 'grid' or 'halving'")
    metric = raw.get("metric")
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise SweepError("search.metric must be a metric name")
    for key, low in (("eta", 2), ("min_questions", 1)):
        v = raw.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
            raise SweepError(f"search.{key}: {v!r} must be an integer >= {low}")
    if method == "grid" and any(k in raw for k in ("eta", "min_questions")):
        raise SweepError("search.eta and search.min_questions apply to method = 'halving' only")
    return Search(
        method=method,
        metric=metric,
        eta=raw.get("eta", Search.eta),
        min_questions=raw.get("min_questions", Search.min_questions),
    )


def expand(axes: Mapping[str, Sequence[Any]], base: Config) -> list[Config]:
    """The grid over ``axes`` ({path: values}) with ``base`` filling the rest, baseline first.

    A grid point equal to the baseline's values is the baseline (one configuration, not two).
    """
    names = list(axes)
    configs = [base]
    seen = {base.id}
    for values in itertools.product(*(axes[n] for n in names)):
        update = dict(zip(names, values, strict=True))
        c = Config.of({**dict(base.values), **update}, base.seed)
        size, overlap = c["chunk.size"], c["chunk.overlap"]
        if overlap >= size:
            raise SweepError(f"axes.chunk.overlap: {overlap} must be below chunk.size {size}")
        if c.id not in seen:
            seen.add(c.id)
            configs.append(c)
    return configs


def parse_sweep(
    raw: Mapping[str, Any], rag: RagSettings, chunk: ChunkSettings | None = None
) -> Sweep:
    """A sweep from an already-parsed TOML document (tests and callers without a file)."""
    unknown = sorted(set(raw) - {"axes", "search", "seed"})
    if unknown:
        raise SweepError(
            f"unknown key {', '.join(unknown)}; a sweep has [axes], [search] and seed "
            f"(axes go under [axes]: {', '.join(t.path for t in tunables.tunables())})"
        )
    seed = raw.get("seed", DEFAULT_SEED)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SweepError(f"seed: {seed!r} must be a non-negative integer")
    axes = _axes(raw.get("axes", {}))
    search = _search(raw.get("search", {}))
    configs = expand(axes, baseline_config(rag, seed, chunk))
    return Sweep(configs=tuple(configs), search=search, seed=seed)


def load_sweep(path: Path | None, rag: RagSettings, chunk: ChunkSettings | None = None) -> Sweep:
    """The sweep in ``path``; without a file, the baseline alone (an evaluation of what serves)."""
    if path is None:
        return parse_sweep({}, rag, chunk)
    return load_toml(path, lambda raw: parse_sweep(raw, rag, chunk), SweepError)


def halving_rungs(n_configs: int, n_questions: int, search: Search) -> list[tuple[int, int]]:
    """(configurations kept, questions) per rung; the baseline is not counted and always stays.

    The schedule depends only on the counts, so the progress bar knows the total in advance.
    """
    rungs: list[tuple[int, int]] = []
    keep, q = n_configs, min(search.min_questions, n_questions)
    while True:
        rungs.append((keep, q))
        if q >= n_questions:
            return rungs
        keep, q = max(1, math.ceil(keep / search.eta)), min(n_questions, q * search.eta)


def successive_halving(
    configs: Sequence[Config],
    cases: Sequence[Case],
    search: Search,
    evaluate: Callable[[Sequence[Config], Sequence[Case], int], None],
    score: Callable[[Config, Sequence[Case]], float | None],
    *,
    higher_is_better: bool = True,
) -> dict[str, int]:
    """Run the halving schedule; returns how many questions each configuration got.

    ``evaluate(configs, questions, future_pairs)`` answers and scores one rung (rows already
    there are skipped by the caller); ``score(config, questions)`` is its mean on the ranking
    metric (None: unmeasured, ranks last). The question subset is a seeded shuffle, not the
    file's head, and each rung's subset extends the previous one so earlier rows are reused.
    """
    base = next(c for c in configs if c.baseline)
    alive = [c for c in configs if not c.baseline]
    order = list(cases)
    random.Random(base.seed or 0).shuffle(order)
    rungs = halving_rungs(len(alive), len(cases), search)
    sign = -1.0 if higher_is_better else 1.0

    def rank_key(c: Config, subset: Sequence[Case]) -> float:
        s = score(c, subset)
        return math.inf if s is None else sign * s

    seen: dict[str, int] = {}
    for r, (keep, q) in enumerate(rungs):
        if r:  # stable sort: ties keep the sweep's order
            alive = sorted(alive, key=lambda c: rank_key(c, order[: rungs[r - 1][1]]))[:keep]
        future = sum(
            k * (q2 - q1) for (k, q2), (_, q1) in zip(rungs[r + 1 :], rungs[r:], strict=False)
        )
        evaluate([base, *alive], order[:q], future)
        seen.update(dict.fromkeys((c.id for c in (base, *alive)), q))
    return seen
