"""The judge model: where it is (``--judge``), and running scores on it without hiding failures.

``eval.metrics`` builds the ragas metrics (it is the only module that imports ragas) and hands
them here as jobs. This module owns what makes a judge run trustworthy and bounded: one HTTP
client that counts requests, no retries at any layer (the OpenAI client's, instructor's re-asks),
a per-request timeout plus an overall deadline per score, and a breaker that stops calling a judge
that is down instead of waiting out every remaining timeout. A failed score is counted by kind and
its first messages kept; callers see exactly how much was not measured.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import openai

from service.settings import EvalSettings

MAX_ERRORS = 10  # messages kept in JudgeStats.errors; the counts cover everything
BREAKER = 3  # consecutive "judge unreachable or timed out" failures before the rest is skipped
_UNPARSABLE = {
    "InstructorRetryException",  # instructor's wrapper around a failed validation
    "IncompleteOutputException",  # output cut at max_tokens, never valid JSON
    "ValidationError",
    "JSONDecodeError",
}
_EXAMPLE = "http://127.0.0.1:8001/v1/gemma"
T = TypeVar("T")


@dataclass(frozen=True)
class JudgeConfig:
    """An OpenAI-compatible judge endpoint and the limits every request to it runs under.

    The defaults equal settings' ``eval`` section's; commands build this with ``judge_config``.
    """

    base_url: str  # up to and including /v1
    model: str
    api_key: str | None = None
    timeout_s: float = 60.0  # per request; a score gets this times its request count
    max_tokens: int = 1024  # ragas' own default: statement lists need room
    strictness: int = 3  # questions answer_relevancy generates per answer (ragas' default)


@dataclass
class JudgeStats:
    """What one ``judge_metrics`` call cost and what it failed to measure.

    ``calls`` counts HTTP requests sent to the judge; ``failures`` counts scores (one metric for
    one observation) not produced, of which ``timeouts`` and ``unparsable`` are the usual kinds.
    """

    calls: int = 0
    failures: int = 0
    timeouts: int = 0
    unparsable: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, message: str, kind: str = "error") -> None:
        self.failures += 1
        if kind == "timeout":
            self.timeouts += 1
        elif kind == "unparsable":
            self.unparsable += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)


def parse_judge(spec: str) -> JudgeConfig:
    """``--judge BASE_URL/MODEL`` as a config, e.g. ``http://127.0.0.1:8001/v1/gemma``.

    The model is everything after the ``/v1/`` path segment when there is one, so vLLM's
    ``org/name`` model ids work (``http://gpu:8000/v1/Qwen/Qwen2.5-7B-Instruct``); without
    ``/v1/`` it is the last path segment. The key and limits come from settings, not the URL.
    """
    parts = urlsplit(spec.strip())
    path = parts.path.rstrip("/")
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"--judge {spec!r}: expected BASE_URL/MODEL, e.g. {_EXAMPLE}")
    cut = (path + "/").find("/v1/")  # "/v1" with nothing after it names no model
    base, _, model = (path[: cut + 3], "", path[cut + 4 :]) if cut >= 0 else path.rpartition("/")
    if not model:
        raise ValueError(f"--judge {spec!r}: no model name after the base URL, e.g. {_EXAMPLE}")
    return JudgeConfig(base_url=f"{parts.scheme}://{parts.netloc}{base}", model=model)


def judge_config(spec: str | None, settings: EvalSettings) -> JudgeConfig | None:
    """The run's judge: ``--judge`` if given, else settings' judge_base_url and judge_model.

    None when neither names one (the metrics that need no judge). The key and the limits always
    come from settings, so a judge on the command line is called like a configured one.
    """
    if spec:
        where = parse_judge(spec)
        base_url, model = where.base_url, where.model
    elif settings.judge_base_url or settings.judge_model:
        if not (settings.judge_base_url and settings.judge_model):
            raise ValueError("eval.judge_base_url and eval.judge_model go together: set both")
        base_url, model = settings.judge_base_url.rstrip("/"), settings.judge_model
    else:
        return None
    key = settings.judge_api_key
    return JudgeConfig(
        base_url=base_url,
        model=model,
        api_key=key.get_secret_value() if key is not None else None,
        timeout_s=settings.judge_timeout_s,
        max_tokens=settings.judge_max_tokens,
        strictness=settings.judge_strictness,
    )


def open_client(config: JudgeConfig, stats: JudgeStats) -> openai.AsyncOpenAI:
    """An async OpenAI client for the judge that never retries and counts what it sends."""

    async def count(_: httpx.Request) -> None:
        stats.calls += 1

    timeout = httpx.Timeout(config.timeout_s)
    return openai.AsyncOpenAI(
        base_url=config.base_url,
        api_key=config.api_key or "none",  # local servers want no key; the client wants one
        timeout=timeout,
        max_retries=0,
        http_client=httpx.AsyncClient(timeout=timeout, event_hooks={"request": [count]}),
    )


@dataclass(frozen=True)
class Job:
    """One score to ask the judge for: ``run()`` returns a number or a ragas ``MetricResult``."""

    metric: str
    label: str  # names the observation in error messages
    requests: int  # most judge requests ``run`` makes, for its overall deadline
    run: Callable[[], Awaitable[Any]]


def _kind(e: BaseException) -> str:
    if isinstance(e, TimeoutError | openai.APITimeoutError):
        return "timeout"
    if _UNPARSABLE & {c.__name__ for c in type(e).__mro__}:
        return "unparsable"
    return "error"


def _unavailable(e: BaseException) -> bool:
    """The judge did not answer at all (as opposed to answering badly)."""
    return isinstance(e, TimeoutError | openai.APIConnectionError | openai.InternalServerError)


def _describe(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


async def run_jobs(
    jobs: Sequence[Sequence[Job]], config: JudgeConfig, stats: JudgeStats
) -> list[dict[str, float]]:
    """One score dict per observation; jobs run one at a time, failures go to ``stats``."""
    rows: list[dict[str, float]] = []
    down = 0  # consecutive failures to reach the judge
    skipped = 0
    for row_jobs in jobs:
        row: dict[str, float] = {}
        for job in row_jobs:
            if down >= BREAKER:
                skipped += 1
                stats.failures += 1
                continue
            try:
                deadline = config.timeout_s * max(1, job.requests) + 1
                result = await asyncio.wait_for(job.run(), timeout=deadline)
                value = float(getattr(result, "value", result))
            except Exception as e:  # every failure is counted below, none escapes
                down = down + 1 if _unavailable(e) else 0
                stats.fail(f"{job.label} {job.metric}: {_describe(e)}", _kind(e))
                continue
            down = 0
            if not math.isfinite(value):
                stats.fail(f"{job.label} {job.metric}: no score (the judge gave nothing to count)")
                continue
            row[job.metric] = min(1.0, max(0.0, value))  # cosine-based relevancy can dip below 0
        rows.append(row)
    if skipped and len(stats.errors) < MAX_ERRORS:
        stats.errors.append(
            f"judge unreachable {BREAKER} times in a row: {skipped} later score(s) not requested"
        )
    return rows


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, also from code that already has an event loop running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
