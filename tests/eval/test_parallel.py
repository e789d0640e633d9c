"""Parallel evaluation: questions answered ``eval.concurrency`` at a time, judge scores at once.

The model here answers from its prompt after a pause that depends on the prompt, so concurrent
answers finish out of order, and it records how many calls were in flight at once: the rows of a
concurrent run must equal a one-at-a-time run's, in the same order, while the model really saw
that many requests together (a sequential runner reaches 1 and fails these tests).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import openai
import pytest

from eval.cache import EvalCache
from eval.dataset import Case, load_dataset
from eval.judge import BREAKER, Job, JudgeConfig, JudgeStats, judge_config, run_jobs
from eval.metrics import judge_metrics
from eval.parallel import in_batches
from eval.run import BATCH, RunResult, run_sweep
from eval.sweep import Config, parse_sweep
from ingest.embed import Embedder
from service.llm.base import LLM, Completion, Delta, LLMError, Prompt, SamplingParams
from service.settings import EvalSettings, Settings
from tests.eval.test_metrics import ON_TOPIC, ScriptedJudge, fake_embed, obs
from tests.service.conftest import ScriptedLLM

N_CASES = BATCH + 3  # a full batch and a partial one


class InFlight:
    """Any ``LLM`` with a count of the calls it is answering at once (the most is kept)."""

    def __init__(self, inner: LLM, parallel: int | None = None) -> None:
        self._inner = inner
        self.name, self.style, self.context_window = inner.name, inner.style, inner.context_window
        self.parallel = inner.parallel if parallel is None else parallel
        self._lock = threading.Lock()
        self.now = self.most = self.calls = 0

    def count_tokens(self, text: str) -> int:
        return self._inner.count_tokens(text)

    def complete(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Completion:
        with self._lock:
            self.now += 1
            self.calls += 1
            self.most = max(self.most, self.now)
        try:
            return self._inner.complete(prompt, params, cancel)
        finally:
            with self._lock:
                self.now -= 1

    def stream(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Any:
        out = self.complete(prompt, params, cancel)
        yield Delta(out.text, out.finish_reason, out.prompt_tokens, out.completion_tokens)

    def ready(self) -> bool:
        return self._inner.ready()

    def close(self) -> None:
        self._inner.close()


class PromptEcho(ScriptedLLM):
    """Answers with words of its prompt chosen by the prompt's hash, after a prompt-dependent
    pause (20 to 100 ms); ``fail_on`` in a prompt raises ``LLMError`` instead."""

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__()
        self.fail_on = fail_on

    def complete(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Completion:
        text = prompt.text or ""
        digest = hashlib.sha256(text.encode()).digest()
        time.sleep(0.02 + 0.08 * digest[0] / 255)
        if self.fail_on is not None and self.fail_on in text:
            raise LLMError(f"refused: {self.fail_on}")
        words = [w for w in text.split() if w.isalpha()]
        start = digest[1] % max(1, len(words) - 6)
        answer = " ".join(words[start : start + 6]) + " [1]."
        return Completion(answer, "stop", len(text.split()), 7)


@pytest.fixture(scope="module")
def cases(shared_data: Path) -> list[Case]:
    return load_dataset(shared_data / "qa" / "dev.jsonl")[:N_CASES]


def configs_of(settings: Settings) -> tuple[Config, ...]:
    return parse_sweep({"axes": {"temperature": [0.7]}}, settings.rag).configs


def rows_of(out: Path) -> list[dict[str, Any]]:
    """rows.jsonl as written, in order, without the wall-clock latency (never repeatable)."""
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "latency_s"} for r in rows]


def differences(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[str]:
    """Where two row lists differ, as "config/case: key" (empty when they are identical)."""
    if [(r["config"], r["case"]) for r in a] != [(r["config"], r["case"]) for r in b]:
        return ["the rows are not the same (config, case) pairs in the same order"]
    return [
        f"{x['config']}/{x['case']}: {k}: {x.get(k)!r} != {y.get(k)!r}"
        for x, y in zip(a, b, strict=True)
        for k in dict.fromkeys([*x, *y])
        if x.get(k) != y.get(k)
    ]


def sweep(
    settings: Settings, name: str, cases: Sequence[Case], llm: Any, embedder: Embedder, **kw: Any
) -> RunResult:
    """Two configurations (the baseline, temperature 0.7) into HOME/name."""
    out = settings.home / name
    return run_sweep(settings, cases, configs_of(settings), out, llm=llm, embedder=embedder, **kw)


def test_concurrent_rows_equal_sequential_rows_in_order(
    cold: Any, cases: list[Case], embedder: Embedder
) -> None:
    one = InFlight(PromptEcho())
    first = sweep(cold(concurrency=1), "one", cases, one, embedder)
    three = InFlight(PromptEcho())
    ticks: list[int] = []
    third = sweep(
        cold(concurrency=3), "three", cases, three, embedder, progress=lambda d, _: ticks.append(d)
    )
    assert one.most == 1 and three.most == 3  # the setting reached, never passed
    assert one.calls == three.calls > 2 * BATCH  # every question called the model
    assert differences(rows_of(first.out_dir), rows_of(third.out_dir)) == []
    assert [r["case"] for r in third.rows] == [c.id for c in cases] * 2
    assert third.results["run"]["concurrency"] == 3 and first.results["run"]["concurrency"] == 1
    assert ticks == list(range(1, 2 * N_CASES + 1))
    assert third.cache.as_dict() == first.cache.as_dict()


def test_the_default_is_what_the_backend_batches(
    cold: Any, cases: list[Case], embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No eval.concurrency: the backend's ``parallel`` (llama-server's slots, an HTTP server's
    batch), for the judge too unless eval.judge_concurrency says otherwise."""
    judged: list[int | None] = []

    def fake_judge(observations: Any, judge: JudgeConfig, embed: Any) -> Any:
        judged.append(judge.concurrency)
        return [{} for _ in observations], JudgeStats()

    monkeypatch.setattr("eval.run.judge_metrics", fake_judge)
    judge = judge_config("http://127.0.0.1:9/v1/tiny", EvalSettings())
    llm = InFlight(PromptEcho(), parallel=4)
    result = sweep(cold(), "default", cases[:BATCH], llm, embedder, judge=judge)
    assert llm.most == 4 and result.results["run"]["concurrency"] == 4 and judged == [4, 4]
    assert result.results["run"]["judge"]["concurrency"] == 4
    llm = InFlight(PromptEcho(), parallel=4)
    sweep(cold(concurrency=2), "capped", cases[:BATCH], llm, embedder)
    assert llm.most == 2


def test_an_answer_error_stops_the_run_as_it_does_sequentially(
    cold: Any, cases: list[Case], embedder: Embedder
) -> None:
    """The first failing question in dataset order is raised; whole batches before it stay
    (a batch is ``BATCH`` questions under each configuration)."""
    failing = cases[BATCH + 1].question
    outcomes = []
    for name, n in (("seq", 1), ("par", 3)):
        settings = cold(concurrency=n)
        with pytest.raises(LLMError, match="refused") as error:
            sweep(settings, name, cases, InFlight(PromptEcho(fail_on=failing)), embedder)
        outcomes.append((str(error.value), rows_of(settings.home / name)))
    assert outcomes[0][0] == outcomes[1][0]
    assert differences(outcomes[0][1], outcomes[1][1]) == []
    assert [r["case"] for r in outcomes[0][1]] == [c.id for c in cases[:BATCH]] * 2


def test_batches_come_in_input_order_and_the_first_error_in_order_wins() -> None:
    def work(i: int) -> int:
        time.sleep(0.01 * (7 - i % 7))  # later items finish first
        if i in (5, 3):
            raise ValueError(f"item {i}")
        return i * i

    ticks: list[None] = []
    got = list(in_batches(work, range(3), workers=3, batch=2, tick=lambda: ticks.append(None)))
    assert got == [[0, 1], [4]] and len(ticks) == 3
    for workers in (1, 3):  # batches of given sizes, as a sweep's question blocks are
        sized = in_batches(lambda i: i, range(6), workers=workers, batch=[1, 3, 2], tick=tuple)
        assert list(sized) == [[0], [1, 2, 3], [4, 5]]
    with pytest.raises(ValueError, match="do not make 6"):
        next(in_batches(lambda i: i, range(6), workers=1, batch=[4, 3], tick=tuple))
    batches = in_batches(work, range(12), workers=4, batch=2, tick=lambda: None)
    assert next(batches) == [0, 1]
    with pytest.raises(ValueError, match="item 3"):  # 5 failed first; 3 comes first in order
        next(batches)


def test_a_search_asked_twice_at_once_runs_once(tmp_path: Path) -> None:
    """A question under two configurations in flight together (question order) searches once;
    the other waits and hits the cache, so the counts are those of a one-at-a-time run."""
    cache, runs, gate = EvalCache(tmp_path / "cache.sqlite"), [], threading.Barrier(2)

    def search() -> tuple[list[int], list[float]]:
        runs.append(1)
        time.sleep(0.1)
        return [3, 1], [0.9, 0.5]

    def ask() -> None:
        gate.wait()
        assert cache.retrieval(1, "q", 5, 0.2, search) == ([3, 1], [0.9, 0.5])

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(runs) == 1
    assert (cache.stats.retrieval_misses, cache.stats.retrieval_hits) == (1, 1)


# --- the judge ---------------------------------------------------------------------------------


class _Tally:
    def __init__(self) -> None:
        self.now = self.most = self.started = 0


def job(tally: _Tally, i: int, fail: BaseException | None = None) -> Job:
    async def run() -> float:
        tally.started += 1
        tally.now += 1
        tally.most = max(tally.most, tally.now)
        try:
            await asyncio.sleep(0.005 * (10 - i % 10))  # later jobs finish first
            if fail is not None:
                raise fail
            return i / 100
        finally:
            tally.now -= 1

    return Job("faithfulness" if i % 2 else "answer_accuracy", f"q{i // 2}", 1, run)


def rows_of_jobs(jobs: list[Job]) -> list[list[Job]]:
    return [jobs[i : i + 2] for i in range(0, len(jobs), 2)]


@pytest.mark.parametrize("n", [1, 3])
def test_judge_jobs_run_n_at_once_with_results_in_order(n: int) -> None:
    tally, stats = _Tally(), JudgeStats()
    jobs = [job(tally, i, ValueError("bad JSON") if i == 4 else None) for i in range(12)]
    config = JudgeConfig("http://judge/v1", "m", concurrency=n)
    rows = asyncio.run(run_jobs(rows_of_jobs(jobs), config, stats))
    assert tally.most == n
    expected = [
        {"answer_accuracy": i / 100, "faithfulness": (i + 1) / 100} for i in range(0, 12, 2)
    ]
    del expected[2]["answer_accuracy"]  # job 4 failed
    assert rows == expected
    assert [list(r) for r in rows] == [list(r) for r in expected]  # keys in job order too
    assert stats.failures == 1 and stats.errors == ["q2 answer_accuracy: ValueError: bad JSON"]


@pytest.mark.parametrize("n", [1, 3])
def test_the_breaker_stops_a_concurrent_judge_that_is_down(n: int) -> None:
    """Unreachable ``BREAKER`` times in a row (completion order): no job starts after that;
    the ones already in flight finish, and every score is counted as failed."""
    tally, stats = _Tally(), JudgeStats()
    down = openai.APIConnectionError(request=None)  # type: ignore[arg-type]
    jobs = [job(tally, i, down) for i in range(20)]
    config = JudgeConfig("http://judge/v1", "m", concurrency=n)
    rows = asyncio.run(run_jobs(rows_of_jobs(jobs), config, stats))
    assert rows == [{}] * 10 and stats.failures == 20
    assert tally.most == n and BREAKER <= tally.started <= BREAKER + n - 1
    assert stats.errors[-1].endswith(f"{20 - tally.started} later score(s) not requested")


class SlowJudge(ScriptedJudge):
    """The scripted judge, 50 ms per answer, counting requests in flight."""

    lock = threading.Lock()
    now: ClassVar[int] = 0
    most: ClassVar[int] = 0

    def do_POST(self) -> None:  # noqa: N802 (BaseHTTPRequestHandler's name)
        with self.lock:
            SlowJudge.now += 1
            SlowJudge.most = max(SlowJudge.most, SlowJudge.now)
        try:
            time.sleep(0.05)
            super().do_POST()
        finally:
            with self.lock:
                SlowJudge.now -= 1


def test_ragas_scores_over_http_are_the_same_at_once() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    observations = [obs(contexts=(ON_TOPIC,)) for _ in range(3)]
    try:
        results = []
        for n in (1, 4):
            SlowJudge.most = 0
            judge = JudgeConfig(base, "m", strictness=1, concurrency=n)
            results.append(judge_metrics(observations, judge, fake_embed))
            assert SlowJudge.most == n
    finally:
        server.shutdown()
        server.server_close()
    (rows1, stats1), (rows4, stats4) = results
    assert rows1 == rows4 and len(rows1[0]) == 5
    assert (stats1.calls, stats1.failures) == (stats4.calls, stats4.failures) == (3 * 7, 0)


def test_judge_concurrency_settings() -> None:
    """A judge server follows the run's concurrency unless told; a local judge asks one at a
    time (llama_cpp.server queues the rest while their timeouts run)."""
    remote = judge_config("http://gpu:8000/v1/judge", EvalSettings())
    local = judge_config("local", EvalSettings())
    assert remote is not None and local is not None
    assert (remote.concurrency, local.concurrency) == (None, 1)
    told = EvalSettings(judge_concurrency=6)
    assert [judge_config(j, told).concurrency for j in ("http://g/v1/m", "local")] == [6, 6]  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        EvalSettings(concurrency=0)


class Recording(PromptEcho):
    """PromptEcho that records, in call order, which case each prompt asked."""

    def __init__(self, cases: Sequence[Case]) -> None:
        super().__init__()
        self.cases = cases
        self.asked: list[str] = []
        self.prompts: list[str] = []

    def complete(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> Completion:
        text = prompt.text or ""
        self.asked += [c.id for c in self.cases if c.question in text][-1:]
        self.prompts.append(text)
        return super().complete(prompt, params, cancel)


def by_pair(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["config"], r["case"]): r for r in rows}


def test_a_question_is_asked_under_every_configuration_before_the_next(
    cold: Any, cases: list[Case], embedder: Embedder
) -> None:
    """Issue 14: consecutive prompts of a sweep share what the configurations do not change, so
    the model's prefix cache can skip it; "config" (the order before) asks one configuration's
    questions after another. The rows are the same pairs with the same content either way."""
    subset = cases[:3]
    rows = {}
    for order in ("question", "config"):
        settings = cold(concurrency=1)
        configs = parse_sweep(
            {"axes": {"temperature": [0.3, 0.7], "rag.retrieval.k": [2, 3]}}, settings.rag
        ).configs
        llm = Recording(subset)
        out = settings.home / order
        run_sweep(settings, subset, configs, out, llm=llm, embedder=embedder, order=order)
        per = len(configs)
        expected = (
            [c.id for c in subset for _ in range(per)]
            if order == "question"
            else [c.id for _ in range(per) for c in subset]
        )
        assert llm.asked == expected, order
        if order == "question":  # configurations that build the same prompt ask it back to back
            runs = [text for text, _ in itertools.groupby(llm.prompts)]
            assert len(runs) == len(set(llm.prompts)) == len(subset) * 3  # the baseline, k 2, k 3
        rows[order] = by_pair(rows_of(out))
    assert rows["question"].keys() == rows["config"].keys()
    assert len(rows["question"]) == per * len(subset) and per == 5  # the baseline and 2 × 2
    in_config_order = [rows["question"][k] for k in rows["config"]]
    assert differences(in_config_order, list(rows["config"].values())) == []
