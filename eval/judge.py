"""The judge model: where it is (``--judge``), and running scores on it without hiding failures.

``eval.metrics`` builds the ragas metrics (it is the only module that imports ragas) and hands
them here as jobs. This module owns what makes a judge run trustworthy and bounded: one HTTP
client that counts requests, no retries at any layer (the OpenAI client's, instructor's re-asks),
a per-request timeout plus an overall deadline per score, and a breaker that stops calling a judge
that is down instead of waiting out every remaining timeout. A failed score is counted by kind and
its first messages kept; callers see exactly how much was not measured.

``--judge local`` needs no server of the user's: ``serving`` runs an embedded instruct preset
under ``llama_cpp.server`` on a private loopback port for the length of the run, and its output is
constrained to each request's JSON schema, so a small model's judgements parse.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import openai

from service.settings import EvalSettings, Settings

MAX_ERRORS = 10  # messages kept in JudgeStats.errors; the counts cover everything
BREAKER = 3  # "judge unreachable or timed out" failures in a row (completion order): skip the rest
_UNPARSABLE = {
    "InstructorRetryException",  # instructor's wrapper around a failed validation
    "IncompleteOutputException",  # output cut at max_tokens, never valid JSON
    "ValidationError",
    "JSONDecodeError",
}
_EXAMPLE = "http://127.0.0.1:8001/v1/gemma"
LOCAL = "local"  # --judge local[:PRESET]
# eval.metrics' judge metrics, cheapest first (requests per answer: 2, 2, strictness, k, 1)
JUDGE_METRICS = (
    "answer_accuracy",
    "faithfulness",
    "answer_relevancy",
    "llm_context_precision",
    "llm_context_recall",
)
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
    json_schema: bool = False  # send the response schema in response_format (llama.cpp's grammar)
    metrics: tuple[str, ...] = JUDGE_METRICS  # the judge metrics to ask for
    local: str | None = None  # the embedded preset ``serving`` starts; base_url is set then
    concurrency: int | None = None  # scores in flight at once; None: the run's eval concurrency

    @property
    def label(self) -> str:
        """Names the judge in run folders and reports: stable across runs (a local judge's port
        is not)."""
        return f"{LOCAL}:{self.local}" if self.local else f"{self.base_url}/{self.model}"


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
    ``local`` or ``local:PRESET`` is an embedded instruct model (``eval.local_judge`` by default)
    that ``serving`` starts for the run.
    """
    limits = JudgeConfig(
        base_url="",
        model="",
        timeout_s=settings.judge_timeout_s,
        max_tokens=settings.judge_max_tokens,
        strictness=settings.judge_strictness,
        metrics=_known_metrics(settings.judge_metrics),
        concurrency=settings.judge_concurrency,
    )
    if spec and (spec.strip() == LOCAL or spec.strip().startswith(f"{LOCAL}:")):
        name = spec.strip().partition(":")[2] or settings.local_judge
        # llama_cpp.server answers one request at a time: more in flight only wait out timeouts.
        one = settings.judge_concurrency or 1
        local = _chat_preset(name)
        return dataclasses.replace(
            limits, model=name, json_schema=True, local=local, concurrency=one
        )
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
    return dataclasses.replace(
        limits,
        base_url=base_url,
        model=model,
        api_key=key.get_secret_value() if key is not None else None,
        json_schema=settings.judge_json_schema,
    )


def _known_metrics(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in JUDGE_METRICS]
    if unknown or not names:
        raise ValueError(
            f"eval.judge_metrics: {', '.join(unknown) or 'empty'}: "
            f"choose from {', '.join(JUDGE_METRICS)}"
        )
    return tuple(dict.fromkeys(names))


def _chat_preset(name: str) -> str:
    """``name`` if it is an instruct preset; a base model cannot follow a judge's instructions."""
    from service.llm.presets import PRESETS

    chat = [n for n, p in PRESETS.items() if p.style == "chat"]
    if name not in chat:
        raise ValueError(f"--judge {LOCAL}:{name}: a local judge is one of {', '.join(chat)}")
    return name


class JudgeUnavailable(RuntimeError):
    """The local judge could not be started: its model is not installed, or its server failed."""


@contextlib.contextmanager
def serving(judge: JudgeConfig | None, settings: Settings) -> Iterator[JudgeConfig | None]:
    """``judge`` as it is reachable while the block runs: a local judge is started first.

    The preset's GGUF is joined and verified as for serving (a clear error names what to
    install) and served by ``llama_cpp.server`` on 127.0.0.1 with ``llm.threads`` threads and
    ``eval.local_judge_n_ctx`` of context; it is stopped when the block exits. Any other judge is
    yielded as it is.
    """
    if judge is None or judge.local is None:
        yield judge
        return
    from service.llm.llama_server import LlamaServerError, llama_server
    from service.llm.llamacpp import usable_cpus
    from service.llm.presets import ModelFileError, model_file, preset

    threads = settings.llm.threads or usable_cpus()
    with contextlib.ExitStack() as stack:
        try:
            path = model_file(preset(judge.local))
            server = llama_server(
                path, n_ctx=settings.eval.local_judge_n_ctx, threads=threads, alias=judge.local
            )
            base = stack.enter_context(server)
        except (ModelFileError, LlamaServerError) as e:
            raise JudgeUnavailable(f"{judge.label}: {e}") from e
        yield dataclasses.replace(judge, base_url=base)


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
    """One score dict per observation, keys in job order; failures go to ``stats``.

    Up to ``config.concurrency`` jobs are in flight at once, started in job order (the
    semaphore is first come, first served: one at a time is the sequential run). Each job's
    deadline starts when it gets its turn, not while it waits for one. The breaker counts
    "unreachable" failures in completion order: once ``BREAKER`` complete in a row, jobs not yet
    started are skipped (and counted as failures); those already in flight finish.
    """
    turn = asyncio.Semaphore(config.concurrency or 1)
    breaker = _Breaker()

    async def score(job: Job) -> float | None:
        async with turn:
            if breaker.down >= BREAKER:
                breaker.skipped += 1
                stats.failures += 1
                return None
            try:
                deadline = config.timeout_s * max(1, job.requests) + 1
                result = await asyncio.wait_for(job.run(), timeout=deadline)
                value = float(getattr(result, "value", result))
            except Exception as e:  # every failure is counted below, none escapes
                breaker.down = breaker.down + 1 if _unavailable(e) else 0
                stats.fail(f"{job.label} {job.metric}: {_describe(e)}", _kind(e))
                return None
            breaker.down = 0
            if not math.isfinite(value):
                stats.fail(f"{job.label} {job.metric}: no score (the judge gave nothing to count)")
                return None
            return min(1.0, max(0.0, value))  # cosine-based relevancy can dip below 0

    values = await asyncio.gather(*(score(job) for row in jobs for job in row))
    rows: list[dict[str, float]] = []
    at = 0
    for row_jobs in jobs:
        scored = zip(row_jobs, values[at : at + len(row_jobs)], strict=True)
        rows.append({job.metric: v for job, v in scored if v is not None})
        at += len(row_jobs)
    if breaker.skipped and len(stats.errors) < MAX_ERRORS:
        stats.errors.append(
            f"judge unreachable {BREAKER} times in a row: {breaker.skipped} later score(s) "
            "not requested"
        )
    return rows


@dataclass
class _Breaker:
    """``run_jobs``' breaker: unreachable failures in a row (completion order), jobs skipped."""

    down: int = 0
    skipped: int = 0


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, also from code that already has an event loop running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
