"""The sweep runner: every configuration × question through the serving code path, scored.

Each answer goes through ``service.rag`` exactly as the API would produce it (``eval.answer``),
with the eval cache slotted in under the index and the model, ``eval.concurrency`` questions at
a time (``eval.parallel``: rows keep dataset order and content). Rows are appended to
``OUT/rows.jsonl`` as they complete, so a killed run resumes where it stopped; the results files
are rewritten from all rows at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from eval.answer import answer_case
from eval.cache import CacheStats, CachingLLM, EvalCache, MemoEmbedder, RowStore
from eval.chunking import chunked_index
from eval.dataset import Case
from eval.judge import JudgeConfig, JudgeStats
from eval.metrics import METRICS, Observation, answer_metrics, judge_metrics, retrieval_metrics
from eval.parallel import in_batches
from eval.results import build_results, write_outputs
from eval.stats import Bootstrap
from eval.sweep import Config, Search, successive_halving
from ingest.embed import Embedder
from service.deps import AppState
from service.llm.base import LLM
from service.settings import EvalSettings, RagSettings, Settings, template_for
from service.state import build_state, close_state

# Key facts rank answers the way reading them does; semantic similarity rewards sounding like the
# ground truth (bench/metric_agreement.py) and stays a secondary column.
DEFAULT_PRIMARY = "key_facts"
MAX_ERRORS = 20  # judge error messages kept in results.json
BATCH = 8  # cases scored together; a kill loses at most one batch of (cached) work

Order = Literal["question", "config"]  # which pairs of a sweep are answered one after another

Progress = Callable[[int, int], None]  # (pairs done, pairs planned) in this invocation


def serving_rag(settings: Settings) -> RagSettings:
    """The configuration the service answers with now: settings plus the promoted one, if any."""
    from service.serving import ServingStore

    return ServingStore(settings.home).effective(settings.rag)[0]


def bootstrap_of(settings: EvalSettings) -> Bootstrap:
    """The comparison statistics settings ask for (resamples, seed, confidence level)."""
    return Bootstrap(
        resamples=settings.bootstrap_resamples,
        seed=settings.bootstrap_seed,
        level=settings.confidence_level,
    )


@dataclass
class RunResult:
    """What a sweep produced: the content of results.json and what this invocation did."""

    out_dir: Path
    results: dict[str, Any]
    computed: int  # (config, case) pairs evaluated now
    resumed: int  # pairs taken from an earlier, interrupted run's rows.jsonl
    cache: CacheStats = field(default_factory=CacheStats)

    @property
    def winner(self) -> str:
        return str(self.results["winner"])

    @property
    def configs(self) -> list[dict[str, Any]]:
        return list(self.results["configs"])

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(self.results["rows"])

    def config(self, config_id: str) -> dict[str, Any]:
        return next(c for c in self.configs if c["id"] == config_id)


@dataclass
class _Context:
    """What one run shares across configurations: the app's components behind the cache."""

    settings: Settings
    rag: RagSettings  # the serving configuration in force (settings plus any promotion)
    state: AppState
    embedder: MemoEmbedder
    llm: CachingLLM
    cache: EvalCache
    store: RowStore
    judge: JudgeConfig | None
    progress: Progress | None
    workers: int = 1  # questions answered at once (eval.concurrency, else the backend's batch)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    judge_stats: list[JudgeStats] = field(default_factory=list)
    # (size, overlap) -> the app state answering from that re-chunked copy, and its cache tag
    chunked: dict[tuple[int, int], tuple[AppState, str]] = field(default_factory=dict)
    missing_files: int = 0
    done: int = 0
    planned: int = 0

    def state_for(self, config: Config) -> tuple[AppState, str]:
        """The state ``config`` answers from: the serving index, or a re-chunked copy of it."""
        chunking = config.chunking(self.settings.chunk)
        if chunking is None:
            return self.state, ""
        if chunking not in self.chunked:
            copy = chunked_index(self.settings, self.state.embedder, self.state.index, *chunking)
            self.stack.callback(copy.index.close)
            self.missing_files = max(self.missing_files, copy.missing)
            state = dataclasses.replace(self.state, index=copy.index)
            self.chunked[chunking] = (state, copy.tag)
        return self.chunked[chunking]

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, max(self.planned, self.done))


def _evaluate(
    ctx: _Context, configs: Sequence[Config], cases: Sequence[Case], order: Order = "question"
) -> None:
    """Answer and score every pair of ``configs`` × ``cases`` not done yet; rows are appended
    per batch of ``BATCH`` questions, grouped by configuration.

    ``order="question"`` answers a question under every configuration before the next question,
    configurations that differ only in sampling back to back: consecutive prompts then share
    everything the configurations do not change (all of it when only sampling differs, the
    instruction and examples when retrieval does), and
    the model's prefix cache skips it: whole 64-token blocks in-process (exactly what a fresh
    evaluation computes, so rows do not change), vLLM's automatic prefix caching over HTTP.
    ``"config"`` is the order before (one configuration after another), kept for the benchmark.
    ``ctx.workers`` pairs are answered at once (``eval.parallel``); each batch is scored and
    written in that order once all its answers are in.
    """
    batches = _batches(ctx.store, configs, cases, order)
    if not batches:
        return
    todo = [pair for batch in batches for pair in batch]
    states = {config.id: ctx.state_for(config) for config, _ in todo}

    def answer(item: tuple[Config, Case]) -> tuple[Observation, dict[str, Any]]:
        config, case = item
        state, tag = states[config.id]
        return answer_case(
            config,
            case,
            state=state,
            serving=ctx.rag,
            cache=ctx.cache,
            embedder=ctx.embedder,
            llm=ctx.llm,
            index_tag=tag,
        )

    sizes = [len(batch) for batch in batches]
    answered = in_batches(answer, todo, workers=ctx.workers, batch=sizes, tick=ctx.tick)
    with contextlib.closing(answered):
        for batch, pairs in zip(batches, answered, strict=True):
            groups: dict[str, list[tuple[Observation, dict[str, Any]]]] = {}
            for (config, _), pair in zip(batch, pairs, strict=True):
                groups.setdefault(config.id, []).append(pair)
            for config in configs:  # rows in the sweep's order of configurations
                if not (group := groups.get(config.id)):
                    continue
                _score(ctx, config, group)
                ctx.store.append([row for _, row in group])


def _batches(
    store: RowStore, configs: Sequence[Config], cases: Sequence[Case], order: Order
) -> list[list[tuple[Config, Case]]]:
    """The pairs not done yet, in batches: ``BATCH`` consecutive questions under every
    configuration ("question"), or under one configuration after another ("config"). A
    configuration's rows are scored with the same questions in either order, and on resume."""
    blocks = [cases[i : i + BATCH] for i in range(0, len(cases), BATCH)]
    if order == "question":
        adjacent = _same_prompts_together(configs)
        chunks = [[(c, q) for q in block for c in adjacent] for block in blocks]
    else:
        chunks = [[(c, q) for q in block] for c in configs for block in blocks]
    batches = [[(c, q) for c, q in chunk if not store.done(c, q)] for chunk in chunks]
    return [batch for batch in batches if batch]


def _same_prompts_together(configs: Sequence[Config]) -> list[Config]:
    """``configs`` with those that differ only in sampling next to each other (in order of first
    appearance): they build the same prompt for a question, and the in-process engine keeps
    only the previous prompt, so asked one after another they reuse all of it. A sweep over
    temperature × k would otherwise alternate k and reuse only the instruction and examples."""

    def prompt_part(config: Config) -> str:
        return repr([(p, v) for p, v in config.values if not p.startswith("rag.sampling.")])

    rank: dict[str, int] = {}
    for config in configs:
        rank.setdefault(prompt_part(config), len(rank))
    return sorted(configs, key=lambda c: rank[prompt_part(c)])


def _score(
    ctx: _Context, config: Config, pairs: Sequence[tuple[Observation, dict[str, Any]]]
) -> None:
    """Fill each row's metrics: retrieval, judge-free answer metrics, then the judge's."""
    observations = [obs for obs, _ in pairs]
    answer = answer_metrics(observations, ctx.embedder.encode)
    judged: list[dict[str, float]] = [{} for _ in pairs]
    if ctx.judge is not None:
        judged, stats = judge_metrics(observations, ctx.judge, ctx.embedder.encode)
        ctx.judge_stats.append(stats)
    for (obs, row), a, j in zip(pairs, answer, judged, strict=True):
        values = {**retrieval_metrics(obs, config.retrieval_k), **a, **j}
        row["metrics"] = {k: float(v) for k, v in values.items() if v is not None}


def _pending(store: RowStore, configs: Sequence[Config], cases: Sequence[Case]) -> int:
    return sum(not store.done(c, q) for c in configs for q in cases)


def _grid(
    ctx: _Context, configs: Sequence[Config], cases: Sequence[Case], order: Order
) -> dict[str, int]:
    ctx.planned = _pending(ctx.store, configs, cases)
    _evaluate(ctx, configs, cases, order)
    return {c.id: len(cases) for c in configs}


def _halving(
    ctx: _Context, configs: Sequence[Config], cases: Sequence[Case], search: Search, metric: str
) -> dict[str, int]:
    def evaluate(rung: Sequence[Config], subset: Sequence[Case], future: int) -> None:
        ctx.planned = ctx.done + _pending(ctx.store, rung, subset) + future
        _evaluate(ctx, rung, subset)

    def score(config: Config, subset: Sequence[Case]) -> float | None:
        values = [
            r["metrics"][metric] for r in ctx.store.of(config, subset) if metric in r["metrics"]
        ]
        return sum(values) / len(values) if values else None

    higher = METRICS[metric].higher_is_better if metric in METRICS else True
    return successive_halving(configs, cases, search, evaluate, score, higher_is_better=higher)


def merge_stats(items: Sequence[JudgeStats]) -> dict[str, Any]:
    """Judge statistics of every batch added up: counts summed, error messages kept (capped)."""
    total: dict[str, Any] = dataclasses.asdict(JudgeStats())
    for item in items:
        for k, v in dataclasses.asdict(item).items():
            total[k] = (total[k] + v)[:MAX_ERRORS] if isinstance(v, list) else total[k] + v
    return total


def run_sweep(
    settings: Settings,
    dataset_cases: Sequence[Case],
    configs: Sequence[Config],
    out_dir: Path,
    *,
    judge: JudgeConfig | None = None,
    progress: Progress | None = None,
    llm: LLM | None = None,
    embedder: Embedder | None = None,
    search: Search | None = None,
    primary_metric: str = DEFAULT_PRIMARY,
    dataset: str = "",
    order: Order = "question",
) -> RunResult:
    """Evaluate ``configs`` (one of them the baseline) on ``dataset_cases``; write OUT's files.

    ``llm`` and ``embedder`` are injected by tests (a scripted model); otherwise they are built
    from ``settings`` exactly as the service builds them. ``judge`` is ``metrics.parse_judge``'s
    config, or None for the metrics that need no judge model. ``order``: see ``_evaluate``
    (the same rows either way; "question" lets the model's prefix cache work).
    """
    if sum(c.baseline for c in configs) != 1:
        raise ValueError("exactly one configuration must be the baseline")
    if not dataset_cases:
        raise ValueError("no cases to evaluate")
    search = search or Search()
    bootstrap = bootstrap_of(settings.eval)
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        state = build_state(settings, llm=llm, embedder=embedder)
        stack.callback(close_state, state)
        cache = stack.enter_context(
            contextlib.closing(EvalCache(settings.home / "eval" / "cache.sqlite"))
        )
        serving, serving_version = state.serving.effective(settings.rag)
        for c in configs:  # an unknown template fails now, not an hour into the sweep
            state.registry.get(template_for(c.template, state.llm.style))
        store = RowStore(out_dir / "rows.jsonl", state.llm.name, state.index.version, dataset_cases)
        workers = settings.eval.concurrency or state.llm.parallel
        if judge is not None and judge.concurrency is None:
            judge = dataclasses.replace(judge, concurrency=workers)
        ctx = _Context(
            settings=settings,
            rag=serving,
            state=state,
            embedder=MemoEmbedder(state.embedder),
            llm=CachingLLM(state.llm, cache),
            cache=cache,
            store=store,
            judge=judge,
            progress=progress,
            workers=workers,
            stack=stack,
        )
        if search.method == "halving":
            metric = search.metric or primary_metric
            seen = _halving(ctx, configs, dataset_cases, search, metric)
        else:
            seen = _grid(ctx, configs, dataset_cases, order)
        results = build_results(
            configs=[c for c in configs if c.id in seen],
            rows_of=lambda c: store.of(c, dataset_cases),
            metrics=METRICS,
            n_questions=len(dataset_cases),
            run={
                "dataset": dataset,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "cases": len(dataset_cases),
                "model": state.llm.name,
                "backend": state.backend,
                "context_window": state.llm.context_window,
                "index_version": state.index.version,
                "chunked_indexes": {tag: s.index.version for s, tag in ctx.chunked.values()},
                "unchunkable_files": ctx.missing_files,
                "min_score": serving.retrieval.min_score,
                "serving_version": serving_version,
                "judge": _judge_info(judge, ctx.judge_stats),
                "primary_metric": primary_metric,
                "search": dataclasses.asdict(search),
                "cache": cache.stats.as_dict(),
                "concurrency": workers,
                "computed": ctx.done,
                "resumed": store.resumed,
                "seconds": round(time.perf_counter() - t0, 2),
                "bootstrap": dataclasses.asdict(bootstrap),
            },
            bootstrap=bootstrap,
        )
        write_outputs(out_dir, results)
        return RunResult(out_dir, results, ctx.done, store.resumed, cache.stats)


def _judge_info(judge: JudgeConfig | None, stats: list[JudgeStats]) -> dict[str, Any] | None:
    if judge is None:
        return None
    # Only what identifies the judge: its config carries the API key.
    return {
        "base_url": judge.base_url,
        "model": judge.model,
        "local": judge.local,
        "concurrency": judge.concurrency,
        "stats": merge_stats(stats),
    }
