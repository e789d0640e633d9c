"""Sweep files: which serving configurations to compare, and how to search among them.

A sweep is TOML so a prompt engineer can keep it next to a template change and review it::

    seed = 7                      # sampling seed for every generation (default 0)

    [axes]                        # each a list; a left-out axis keeps the serving value
    template = ["grounded-qa@1", "grounded-qa@2"]
    temperature = [0.0, 0.3, 0.7]
    top_k = [20, 40]
    top_p = [1.0]
    max_tokens = [128]
    retrieval_k = [3, 5]
    retrieval_mode = ["dense", "hybrid"]   # dense | bm25 | hybrid
    fusion = ["rrf"]                       # rrf | blend (hybrid only)
    dense_weight = [0.3, 0.5]              # hybrid: weight of the dense side
    chunk_size = [48, 64]                  # re-chunked copies of the indexed files (eval only)
    chunk_overlap = [0]

    [search]
    method = "halving"            # "grid" (default): every configuration on every question
    metric = "semantic_similarity"  # what halving ranks by (default: the run's primary metric)
    eta = 2                       # keep the best 1/eta of the configurations per rung (>= 2)
    min_questions = 4             # questions in the first rung; each rung has eta times more

The serving configuration (``RagSettings``) is always one of the configurations, marked
``baseline``: every other one is judged against it on the same questions.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from eval.dataset import Case, load_toml
from ingest.settings import ChunkSettings
from service.settings import RagSettings

DEFAULT_SEED = 0
AXES = (
    "template",
    "temperature",
    "top_k",
    "top_p",
    "max_tokens",
    "retrieval_k",
    "retrieval_mode",
    "fusion",
    "dense_weight",
    "chunk_size",
    "chunk_overlap",
)
# Config field -> RetrievalSettings field: the sweep's, the rows' and promotion's one mapping.
RETRIEVAL_PARAMS = {"retrieval_mode": "mode", "fusion": "fusion", "dense_weight": "dense_weight"}
_CHOICES = {"retrieval_mode": ("dense", "bm25", "hybrid"), "fusion": ("rrf", "blend")}
_SEARCH_KEYS = ("method", "metric", "eta", "min_questions")


class SweepError(ValueError):
    """A sweep file that cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class Config:
    """One serving configuration under test; ``id`` is a short hash of its parameters.

    The id depends on the parameters only (not on ``baseline`` or sweep order), so a rerun or a
    grown sweep names the same configuration the same way and its results line up across runs.
    """

    template: str
    temperature: float
    top_p: float
    top_k: int | None
    max_tokens: int
    retrieval_k: int
    seed: int | None = DEFAULT_SEED
    retrieval_mode: str = "dense"
    fusion: str = "rrf"
    dense_weight: float = 0.5
    # None: the serving index's chunking. Otherwise both are set and the configuration is
    # answered from a re-chunked copy of the indexed files (eval.chunking).
    chunk_size: int | None = None
    chunk_overlap: int | None = None
    baseline: bool = field(default=False, compare=False)

    @property
    def params(self) -> dict[str, Any]:
        """The parameters, without ``baseline``: what the id hashes and what results record."""
        out = asdict(self)
        del out["baseline"]
        # Left out when unset, so configurations named before these axes keep their ids.
        for key in ("chunk_size", "chunk_overlap"):
            if out[key] is None:
                del out[key]
        return out

    @property
    def chunking(self) -> tuple[int, int] | None:
        """(size, overlap) of the index this configuration reads, None for the serving one."""
        if self.chunk_size is None or self.chunk_overlap is None:
            return None
        return self.chunk_size, self.chunk_overlap

    @property
    def id(self) -> str:
        blob = json.dumps(self.params, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    def label(self) -> str:
        """A human-readable one-liner for tables and progress bars."""
        top_k = "-" if self.top_k is None else self.top_k
        return (
            f"{self.template} T={self.temperature:g} top_p={self.top_p:g} top_k={top_k} "
            f"max_tokens={self.max_tokens} k={self.retrieval_k} {self.retrieval_text()}"
            + (f" chunks={self.chunk_size}/{self.chunk_overlap}" if self.chunking else "")
        )

    def retrieval_text(self) -> str:
        if self.retrieval_mode != "hybrid":
            return self.retrieval_mode
        return f"hybrid({self.fusion}, dense {self.dense_weight:g})"

    def retrieval_overrides(self) -> dict[str, Any]:
        """The retrieval settings this configuration fixes (mode, fusion, dense weight)."""
        return {ours: getattr(self, theirs) for theirs, ours in RETRIEVAL_PARAMS.items()}


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


def baseline_config(rag: RagSettings, seed: int | None = DEFAULT_SEED) -> Config:
    """The current serving configuration, as the sweep's reference point."""
    return Config(
        template=rag.template,
        temperature=float(rag.temperature),
        top_p=float(rag.top_p),
        top_k=rag.top_k,
        max_tokens=rag.max_tokens,
        retrieval_k=rag.k,
        seed=seed,
        **{theirs: getattr(rag.retrieval, ours) for theirs, ours in RETRIEVAL_PARAMS.items()},
        baseline=True,
    )


def _check_value(axis: str, v: Any) -> Any:
    """One axis value, type-checked and normalized (TOML ints are fine where floats are meant)."""
    where = f"axes.{axis}"
    if axis == "template":
        if not isinstance(v, str) or v.count("@") != 1 or not all(v.split("@")):
            raise SweepError(f"{where}: {v!r} is not a template 'id@version'")
        return v
    if axis in _CHOICES:
        if v not in _CHOICES[axis]:
            raise SweepError(f"{where}: {v!r} is not one of {', '.join(_CHOICES[axis])}")
        return v
    if isinstance(v, bool):
        raise SweepError(f"{where}: {v!r} is not a number")
    if axis in ("chunk_size", "chunk_overlap"):
        if not isinstance(v, int):
            raise SweepError(f"{where}: {v!r} is not an integer")
        if axis == "chunk_size" and not 16 <= v <= 254:
            raise SweepError(f"{where}: {v!r} is out of range (16 <= chunk_size <= 254)")
        if axis == "chunk_overlap" and v < 0:
            raise SweepError(f"{where}: {v!r} must be >= 0")
        return v
    if axis == "dense_weight":
        if not isinstance(v, int | float) or not 0 <= v <= 1:
            raise SweepError(f"{where}: {v!r} is not a weight between 0 and 1")
        return float(v)
    if axis in ("temperature", "top_p"):
        if not isinstance(v, int | float):
            raise SweepError(f"{where}: {v!r} is not a number")
        lo_ok = v >= 0 if axis == "temperature" else v > 0
        hi = 2.0 if axis == "temperature" else 1.0
        if not (lo_ok and v <= hi):
            bounds = "0 <= temperature <= 2" if axis == "temperature" else "0 < top_p <= 1"
            raise SweepError(f"{where}: {v!r} is out of range ({bounds})")
        return float(v)
    if not isinstance(v, int):
        raise SweepError(f"{where}: {v!r} is not an integer")
    if axis == "top_k" and v < 0:
        raise SweepError(f"{where}: {v!r} must be >= 0")
    if axis in ("max_tokens", "retrieval_k") and v < 1:
        raise SweepError(f"{where}: {v!r} must be >= 1")
    return v


def _axes(raw: Any) -> dict[str, list[Any]]:
    if not isinstance(raw, Mapping):
        raise SweepError("[axes] must be a table")
    unknown = sorted(set(raw) - set(AXES))
    if unknown:
        raise SweepError(f"unknown axis {', '.join(unknown)}; known axes: {', '.join(AXES)}")
    out: dict[str, list[Any]] = {}
    for axis, values in raw.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise SweepError(
                f"axes.{axis}: empty list (leave the axis out to keep the serving value)"
            )
        checked = [_check_value(axis, v) for v in values]
        out[axis] = list(dict.fromkeys(checked))  # duplicates would only cost time
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


def _canonical_chunking(c: Config, serving: tuple[int, int]) -> Config:
    """Both chunk fields set, or neither when they name the serving index's own chunking."""
    if c.chunk_size is None and c.chunk_overlap is None:
        return c
    size = serving[0] if c.chunk_size is None else c.chunk_size
    overlap = serving[1] if c.chunk_overlap is None else c.chunk_overlap
    if overlap >= size:
        raise SweepError(f"axes.chunk_overlap: {overlap} must be below chunk_size {size}")
    if (size, overlap) == serving:
        return replace(c, chunk_size=None, chunk_overlap=None)
    return replace(c, chunk_size=size, chunk_overlap=overlap)


def expand(
    axes: Mapping[str, Sequence[Any]], base: Config, chunking: tuple[int, int] = (64, 0)
) -> list[Config]:
    """The grid over ``axes`` with ``base`` filling the left-out ones, baseline first.

    A grid point equal to the baseline's parameters is the baseline (one configuration, not two);
    ``chunking`` is the serving index's (size, overlap), which chunk axes are measured against.
    """
    names = list(axes)
    configs = [base]
    seen = {base.id}
    for values in itertools.product(*(axes[n] for n in names)):
        c = Config(**{**base.params, **dict(zip(names, values, strict=True))})
        c = _canonical_chunking(c, chunking)
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
            f"(axes go under [axes]: {', '.join(AXES)})"
        )
    seed = raw.get("seed", DEFAULT_SEED)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SweepError(f"seed: {seed!r} must be a non-negative integer")
    axes = _axes(raw.get("axes", {}))
    search = _search(raw.get("search", {}))
    chunk = chunk or ChunkSettings()
    configs = expand(axes, baseline_config(rag, seed), (chunk.size, chunk.overlap))
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
