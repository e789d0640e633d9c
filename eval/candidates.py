"""Models files: the candidate backends of a model selection and the weights that rank them.

A models file is TOML, reviewed like a sweep file::

    [weights]                     # factor = weight (>= 0); these are the matrix's columns
    key_facts = 6                 # any eval metric: correctness first (hit_rate, rouge_l, ...)
    semantic_similarity = 0.5     # a small weight at most: it rewards fluent wrong answers
    latency_p50_ms = 1            # median model call, lower is better
    tokens_per_s = 1              # completion tokens / model seconds, higher is better
    cost_per_1k_tokens = 1        # as configured per candidate, lower is better
    context_window = 0.5          # as configured, else what the backend reports; higher is better

    [budgets]                     # optional hard limits: a candidate outside one cannot win
    latency_p50_ms = 6000         # at most this (a lower-is-better factor), at least for higher

    [[candidates]]
    name = "gemma-270m-cpu"       # letters, digits, . _ -; names the rows and the cache entries
    cost_per_1k_tokens = 0.0
    [candidates.llm]              # an `llm` settings section; left-out fields take the defaults
    backend = "llamacpp"
    threads = 2

    [[candidates]]
    name = "gemma-1b-vllm"
    cost_per_1k_tokens = 0.02
    context_window = 32768        # optional
    api_key_env = "VLLM_API_KEY"  # the key comes from this variable, never from the file
    [candidates.llm]
    backend = "openai"
    base_url = "http://gpu:8000/v1"
    model = "google/gemma-3-1b-it"

Each candidate's ``llm`` section starts from the defaults, not from the serving settings, so a
models file means the same on every machine. A candidate's model is named after the candidate
unless its ``llm.name`` says otherwise: the eval cache keys answers and their timings by model
name, and two backends serving the same weights must not share timings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from eval.dataset import load_toml
from eval.matrix import factors
from service.llm.settings import LLMSettings

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CANDIDATE_KEYS = ("name", "llm", "cost_per_1k_tokens", "context_window", "api_key_env")


class ModelsFileError(ValueError):
    """A models file that cannot be used; the message names the file, the key and why."""


@dataclass(frozen=True)
class Candidate:
    """One backend under test: an ``llm`` settings profile and its configured factors."""

    name: str
    llm: LLMSettings  # with the key from ``api_key_env`` already filled in
    cost_per_1k_tokens: float | None = None
    context_window: int | None = None  # None: what the backend reports
    api_key_env: str | None = None

    def profile(self) -> dict[str, Any]:
        """The llm settings as recorded in models.json: never the key, only where it came from."""
        out = self.llm.model_dump(mode="json", exclude={"api_key"})
        return {**out, "api_key_env": self.api_key_env}


@dataclass(frozen=True)
class ModelsSpec:
    """A parsed models file: the weights (factor -> weight), the candidates in file order, and
    the budgets (factor -> the most, or for a higher-is-better factor the least, it may be)."""

    weights: dict[str, float]
    candidates: tuple[Candidate, ...]
    budgets: dict[str, float] = field(default_factory=dict)


def _number(where: str, v: Any, *, integer: bool = False, low: float = 0) -> Any:
    kind = int if integer else int | float
    if isinstance(v, bool) or not isinstance(v, kind) or v < low:
        what = "an integer" if integer else "a number"
        raise ModelsFileError(f"{where}: {v!r} must be {what} >= {low:g}")
    return v if integer else float(v)


def _factor_table(table: str, raw: Any, what: str) -> dict[str, float]:
    """``[table]`` as factor -> number >= 0; names outside the factor catalogue are errors."""
    if not isinstance(raw, Mapping) or not raw:
        raise ModelsFileError(f"[{table}] must be a table of factor = {what}")
    known = factors()
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ModelsFileError(
            f"{table}.{unknown[0]}: unknown factor; known factors: {', '.join(known)}"
        )
    return {f: _number(f"{table}.{f}", v) for f, v in raw.items()}


def _weights(raw: Any) -> dict[str, float]:
    weights = _factor_table("weights", raw, "weight")
    if not any(weights.values()):
        raise ModelsFileError("[weights]: every weight is 0; give at least one factor a weight > 0")
    return weights


def _llm(where: str, raw: Any, name: str, key: str | None) -> LLMSettings:
    if not isinstance(raw, Mapping):
        raise ModelsFileError(
            f"{where}: missing [candidates.llm] (backend = 'llamacpp' or 'openai', and its settings)"
        )
    if "api_key" in raw:
        raise ModelsFileError(
            f"{where}.llm.api_key: keys do not go in the file; set an environment variable "
            "and name it with api_key_env"
        )
    try:
        llm = LLMSettings.model_validate({"name": name, **raw})
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ModelsFileError(f"{where}.llm.{loc}: {err['msg']}") from e
    return llm.model_copy(update={"api_key": SecretStr(key) if key else None})


def _candidate(i: int, raw: Any, weights: Mapping[str, float], env: Mapping[str, str]) -> Candidate:
    if not isinstance(raw, Mapping):
        raise ModelsFileError(f"candidates: entry {i} is not a table ([[candidates]])")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        what = "has no name" if name is None else f"name {name!r} is not letters, digits, . _ -"
        raise ModelsFileError(f"candidates: entry {i} {what}")
    where = f"candidates.{name}"
    unknown = sorted(set(raw) - set(_CANDIDATE_KEYS))
    if unknown:
        raise ModelsFileError(
            f"{where}.{unknown[0]}: unknown key; a candidate has {', '.join(_CANDIDATE_KEYS)}"
        )
    key_env = raw.get("api_key_env")
    if key_env is not None and (not isinstance(key_env, str) or not key_env):
        raise ModelsFileError(f"{where}.api_key_env: must name an environment variable")
    if key_env and not env.get(key_env):
        raise ModelsFileError(f"{where}.api_key_env: environment variable {key_env} is not set")
    cost, window = raw.get("cost_per_1k_tokens"), raw.get("context_window")
    if cost is None and weights.get("cost_per_1k_tokens"):
        raise ModelsFileError(
            f"{where}.cost_per_1k_tokens: missing, and [weights] scores cost_per_1k_tokens "
            "(0.0 for a model you run yourself)"
        )
    llm_name = (raw.get("llm") or {}).get("name") if isinstance(raw.get("llm"), Mapping) else None
    return Candidate(
        name=name,
        llm=_llm(where, raw.get("llm"), llm_name or name, env.get(key_env) if key_env else None),
        cost_per_1k_tokens=None if cost is None else _number(f"{where}.cost_per_1k_tokens", cost),
        context_window=(
            None
            if window is None
            else _number(f"{where}.context_window", window, integer=True, low=1)
        ),
        api_key_env=key_env,
    )


def parse_models(raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ModelsSpec:
    """A models spec from an already-parsed TOML document; ``env`` holds the keys (os.environ)."""
    unknown = sorted(set(raw) - {"weights", "budgets", "candidates"})
    if unknown:
        raise ModelsFileError(
            f"unknown key {', '.join(unknown)}; a models file has [weights], [[candidates]] "
            "and optionally [budgets]"
        )
    weights = _weights(raw.get("weights"))
    budgets = _factor_table("budgets", raw["budgets"], "limit") if "budgets" in raw else {}
    entries = raw.get("candidates")
    if not isinstance(entries, list) or not entries:
        raise ModelsFileError("no [[candidates]]: name at least one backend to score")
    env = os.environ if env is None else env
    candidates = [_candidate(i, c, weights, env) for i, c in enumerate(entries, 1)]
    seen: dict[tuple[str, str], int] = {}
    for i, c in enumerate(candidates, 1):
        for label, value in (("name", c.name), ("llm.name", c.llm.name or "")):
            first = seen.setdefault((label, value), i)
            if first != i:
                raise ModelsFileError(
                    f"candidates: entry {i} {label} {value!r} is also entry {first}'s; each "
                    "candidate needs its own (answers and timings are cached by it)"
                )
    return ModelsSpec(weights=weights, candidates=tuple(candidates), budgets=budgets)


def load_models(path: Path, env: Mapping[str, str] | None = None) -> ModelsSpec:
    """The models file at ``path``; every error names the file and the key."""
    return load_toml(path, lambda raw: parse_models(raw, env), ModelsFileError)
