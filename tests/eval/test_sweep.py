"""Sweep files, the eval cache, resuming, the results files and the ``eval run`` command.

The runner tests use a scripted model (generation is not what they test) with the real encoder
and a real index of llm-guide.txt and zlib-usage.html; one slow test runs the embedded Gemma.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from eval.cli import UsageError, check_fail_under, main, parse_fail_under
from eval.dataset import Case, load_dataset, write_dataset
from eval.judge import JudgeStats
from eval.metrics import parse_judge
from eval.results import ROW_COLUMNS
from eval.run import RunResult, run_sweep
from eval.sweep import Config, SweepError, baseline_config, halving_rungs, load_sweep, parse_sweep
from ingest.embed import Embedder
from ingest.index import VectorIndex
from ingest.settings import ChunkSettings, EmbedSettings
from service.settings import RagSettings, Settings
from service.tunables import tunables
from tests.service.conftest import ScriptedLLM

T, K, P, M = (
    "rag.sampling.temperature",
    "rag.retrieval.k",
    "rag.sampling.top_p",
    "rag.sampling.max_tokens",
)
CASE_IDS = ("dev-01", "dev-17")  # MQA in llm-guide.txt; zpipe's CHUNK in zlib-usage.html


# --- sweep files ---------------------------------------------------------------------------------


def test_grid_expands_axes_and_keeps_serving_values_for_the_rest() -> None:
    rag = RagSettings(temperature=0.1, k=5, top_p=0.9, max_tokens=64)
    sweep = parse_sweep({"axes": {"temperature": [0.1, 0.7], "retrieval_k": [3, 5]}}, rag)
    base = sweep.configs[0]
    assert base.baseline and sweep.baseline is base
    assert (base[T], base[K], base[P], base[M]) == (0.1, 5, 0.9, 64)
    # (0.1, 5) is the baseline itself: four grid points, four configurations, one baseline
    points = {(c[T], c[K]) for c in sweep.configs}
    assert points == {(0.1, 3), (0.1, 5), (0.7, 3), (0.7, 5)}
    assert len(sweep.configs) == 4 and sum(c.baseline for c in sweep.configs) == 1
    assert all(c[P] == 0.9 and c[M] == 64 and c.template == rag.template for c in sweep.configs)


def test_the_baseline_is_included_even_when_the_grid_misses_it() -> None:
    sweep = parse_sweep({"axes": {"template": ["grounded-qa@2"], "top_k": [20, 40]}}, RagSettings())
    assert [c.baseline for c in sweep.configs] == [True, False, False]
    assert sweep.configs[0] == baseline_config(RagSettings())
    assert {c["rag.sampling.top_k"] for c in sweep.configs[1:]} == {20, 40}


def test_no_sweep_file_evaluates_the_baseline_alone() -> None:
    sweep = load_sweep(None, RagSettings())
    assert len(sweep.configs) == 1 and sweep.configs[0].baseline
    assert sweep.search.method == "grid"


def test_config_ids_are_stable_and_depend_on_parameters_only() -> None:
    a = baseline_config(RagSettings(template="grounded-qa@1", temperature=0.1, k=5), 0)
    # pinned: ids name configurations across runs, promotions and reports (changed when every
    # tunable became a settings path, when follow-ups began to be condensed by default, and when
    # wrong [n] markers began to be fixed)
    assert a.id == "91e2efc637"
    assert a.replace(**{"rag.verify.fix_markers": False}).id == "b6b29f7563"
    assert a.replace(**{"rag.retrieval.mode": "dense"}).id != a.id
    assert Config(a.values, 0, baseline=False).id == a.id  # baseline or not: one configuration
    parsed = parse_sweep({"axes": {"temperature": [1]}}, RagSettings())
    toml_int = parsed.configs[1]
    same = parsed.baseline.replace(temperature=1.0)
    assert toml_int[T] == 1.0 and isinstance(toml_int[T], float) and toml_int.id == same.id
    assert Config(a.values, 1).id != a.id
    assert a.replace(retrieval_k=3).id != a.id
    # a tunable added later keeps earlier ids at the value that behaves as before it existed
    assert a["rag.retrieval.group_by"] == "chunk"
    assert a.replace(**{"rag.retrieval.group_by": "document"}).id != a.id
    before = {"rag.conversation.condense": "none", "rag.conversation.history_tokens": 0}
    before["rag.verify.fix_markers"] = False
    assert a.replace(**before).id == "7a759a88c0"  # what it was before conversations
    # every tunable is part of a configuration, by its path
    assert [p for p, _ in a.values] == [t.path for t in tunables()]


def test_axes_are_paths_in_any_toml_spelling_and_old_names_still_work(tmp_path: Path) -> None:
    spellings = [
        '[axes]\n"rag.sampling.temperature" = [0.0, 0.5]',
        "[axes]\nrag.sampling.temperature = [0.0, 0.5]",
        "[axes.rag.sampling]\ntemperature = [0.0, 0.5]",
        "[axes]\ntemperature = [0.0, 0.5]",
    ]
    ids = []
    for i, text in enumerate(spellings):
        path = tmp_path / f"s{i}.toml"
        path.write_text(text)
        ids.append([c.id for c in load_sweep(path, RagSettings()).configs])
    assert all(x == ids[0] for x in ids) and len(ids[0]) == 3
    with pytest.raises(SweepError, match="given twice"):
        parse_sweep(
            {"axes": {"temperature": [0.1], "rag.sampling.temperature": [0.2]}}, RagSettings()
        )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[axes]\ntemprature = [0.1]",
            r"unknown axis temprature; known axes: rag.template, rag.retrieval.k",
        ),
        ("temperature = [0.1]", r"unknown key temperature; .*go under \[axes\]"),
        ("[axes]\ntemperature = []", r"axes.temperature: empty list"),
        ("[axes]\ntemperature = [3.0]", r"axes.temperature: 3.0: .*less than or equal to 2"),
        ("[axes]\ntemperature = [true]", r"axes.temperature: True: .*valid number"),
        ("[axes]\ntop_p = [0]", r"axes.top_p: 0: .*greater than 0"),
        ("[axes]\ntop_k = [1.5]", r"axes.top_k: 1.5: .*valid integer"),
        ("[axes]\nretrieval_k = [0]", r"axes.retrieval_k: 0: .*greater than or equal to 1"),
        ("[axes]\ntemplate = ['grounded-qa']", r"'grounded-qa' is not a template 'id@version'"),
        ("axes = 3", r"\[axes\] must be a table"),
        ("[search]\nmethod = 'random'", r"search.method: 'random' is not 'grid' or 'halving'"),
        ("[search]\nmethod = 'halving'\neta = 1", r"search.eta: 1 must be an integer >= 2"),
        ("[search]\neta = 3", r"apply to method = 'halving' only"),
        ("[search]\nbudget = 3", r"unknown key search.budget"),
        ("seed = -1", r"seed: -1 must be a non-negative integer"),
        ("[axes\n", r"not TOML"),
    ],
)
def test_sweep_file_errors_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(toml)
    with pytest.raises(SweepError, match=message) as e:
        load_sweep(path, RagSettings())
    assert str(path) in str(e.value)


def test_halving_schedule() -> None:
    search = parse_sweep(
        {"search": {"method": "halving", "eta": 2, "min_questions": 4}}, RagSettings()
    ).search
    assert halving_rungs(8, 20, search) == [(8, 4), (4, 8), (2, 16), (1, 20)]
    assert halving_rungs(3, 2, search) == [(3, 2)]  # fewer questions than a first rung


# --- the runner ----------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, service_home: Path, embed_settings: EmbedSettings) -> Settings:
    """A private copy of the shared index, so each test's cache starts empty."""
    home = tmp_path / "home"
    shutil.copytree(service_home / "index", home / "index")
    return Settings(home=home, embed=embed_settings)


@pytest.fixture(scope="module")
def cases(shared_data: Path) -> list[Case]:
    by_id = {c.id: c for c in load_dataset(shared_data / "qa" / "dev.jsonl")}
    return [by_id[i] for i in CASE_IDS]


def sweep_of(settings: Settings, **axes: list[Any]) -> tuple[Config, ...]:
    return parse_sweep({"axes": axes}, settings.rag).configs


def run(
    settings: Settings,
    cases: list[Case],
    configs: Any,
    out: Path,
    llm: Any,
    embedder: Embedder,
    **kw: Any,
) -> RunResult:
    return run_sweep(settings, cases, configs, out, llm=llm, embedder=embedder, dataset="dev", **kw)


def test_added_temperature_reuses_the_cache_for_everything_else(
    settings: Settings, cases: list[Case], embedder: Embedder, tmp_path: Path
) -> None:
    first = sweep_of(settings, temperature=[0.3, 0.7])  # + the baseline at 0.1
    r1 = run(settings, cases, first, tmp_path / "a", ScriptedLLM(), embedder)
    assert all(row["called"] for row in r1.rows), "both questions must retrieve passages"
    assert r1.cache.generation_hits == 0 and r1.cache.generation_misses == 3 * len(cases)
    # same k everywhere: one dense and one BM25 search per question (hybrid is the default)
    assert r1.cache.retrieval_misses == 2 * len(cases)

    llm = ScriptedLLM()
    second = sweep_of(settings, temperature=[0.3, 0.7, 1.0])
    r2 = run(settings, cases, second, tmp_path / "b", llm, embedder)
    assert r2.cache.generation_hits == len(first) * len(cases)
    assert r2.cache.generation_misses == 1 * len(cases)
    assert len(llm.prompts) == len(cases)  # the model saw only the new temperature's prompts
    assert r2.cache.retrieval_misses == 0
    assert r2.results["run"]["cache"] == r2.cache.as_dict()
    # cached rows keep the original measurements
    original = {(r["config"], r["case"]): r for r in r1.rows}
    cached = [r for r in r2.rows if r["cached"]]
    assert len(cached) == len(first) * len(cases)
    for r in cached:
        was = original[r["config"], r["case"]]
        assert (r["latency_s"], r["completion_tokens"]) == (
            was["latency_s"],
            was["completion_tokens"],
        )


def test_a_killed_run_resumes_with_only_the_missing_rows(
    settings: Settings, cases: list[Case], embedder: Embedder, tmp_path: Path
) -> None:
    configs = sweep_of(settings, temperature=[0.3, 0.7])
    out = tmp_path / "run"
    full = run(settings, cases, configs, out, ScriptedLLM(), embedder)
    total = len(configs) * len(cases)
    assert full.computed == total and len(full.rows) == total

    # The kill: two rows made it to disk, the third was half written; the cache went too, so
    # every row recomputed shows up as a call on the model.
    rows = (out / "rows.jsonl").read_text().splitlines(keepends=True)
    (out / "rows.jsonl").write_text("".join(rows[:2]) + rows[2][:40])
    for f in settings.home.glob("eval/cache.sqlite*"):
        f.unlink()
    llm = ScriptedLLM()
    resumed = run(settings, cases, configs, out, llm, embedder)
    assert (resumed.resumed, resumed.computed) == (2, total - 2)
    assert len(llm.prompts) == total - 2
    assert len(resumed.rows) == total
    assert [json.loads(line)["case"] for line in (out / "rows.jsonl").read_text().splitlines()]

    again = run(settings, cases, configs, out, ScriptedLLM(), embedder)
    assert (again.resumed, again.computed) == (total, 0)
    assert again.cache.as_dict() == dict.fromkeys(again.cache.as_dict(), 0)


def test_results_files_structure(
    settings: Settings, cases: list[Case], embedder: Embedder, tmp_path: Path
) -> None:
    configs = sweep_of(settings, temperature=[0.7], retrieval_k=[3])
    seen: list[tuple[int, int]] = []
    out = tmp_path / "run"
    result = run(
        settings,
        cases,
        configs,
        out,
        ScriptedLLM(),
        embedder,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[-1] == (4, 4) and [d for d, _ in seen] == [1, 2, 3, 4]

    data = json.loads((out / "results.json").read_text())
    assert data == json.loads(json.dumps(result.results))
    assert set(data) == {"run", "metrics", "configs", "winner", "rows"}
    run_info = data["run"]
    for key in (
        "dataset",
        "created",
        "model",
        "index_version",
        "judge",
        "primary_metric",
        "cache",
        "seconds",
    ):
        assert key in run_info, key
    assert run_info["model"] == "scripted" and run_info["judge"] is None
    assert run_info["baseline"] == configs[0].id
    assert (
        "semantic_similarity" in data["metrics"]
        and data["metrics"]["dont_know"]["higher_is_better"] is False
    )

    assert [c["id"] for c in data["configs"]] == [c.id for c in configs]
    for c in data["configs"]:
        for key in (
            "id",
            "baseline",
            "label",
            *(t.path for t in tunables()),
            "seed",
            "questions",
            "metrics",
            "vs_baseline",
            "latency_p50",
            "tokens_mean",
        ):
            assert key in c, key
        assert c["questions"] == len(cases)
        assert set(c["vs_baseline"]) == set(data["metrics"])
        assert set(c["vs_baseline"]["semantic_similarity"]) >= {
            "diff",
            "ci_low",
            "ci_high",
            "better",
            "n",
        }
    base = data["configs"][0]
    assert base["baseline"] and base["vs_baseline"]["rouge_l"]["diff"] == 0.0
    # the scripted model answers the same everywhere: nothing can beat the baseline
    assert data["winner"] == base["id"]

    row = data["rows"][0]
    assert row["template"] == "grounded-qa@1" and row["index_version"] >= 1
    assert set(row["params"]) == {*(t.path for t in tunables()), "seed"}
    assert set(row["sampling"]) >= {"temperature", "top_p", "top_k", "max_tokens", "seed"}
    assert row["passages"] and {"source", "text", "score"} <= set(row["passages"][0])
    assert row["passages"][0]["source"].endswith((".txt", ".html"))
    assert row["cited"] == [1] and row["metrics"]["citation_support"] in (0.0, 1.0)
    assert {"hit_rate", "mrr", "semantic_similarity", "rouge_l"} <= set(row["metrics"])
    # the service's sentence verification reaches the row as the "supported" metric
    assert row["metrics"]["supported"] in (0.0, 1.0) and "supported" in data["metrics"]

    with (out / "results.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(configs) * len(cases)
    assert list(table[0])[: len(ROW_COLUMNS)] == list(ROW_COLUMNS)
    assert set(data["metrics"]) <= set(table[0])
    summary = (out / "summary.md").read_text()
    assert "No configuration beat the baseline" in summary and configs[1].id in summary


def test_halving_drops_configs_on_a_question_subset(
    settings: Settings, cases: list[Case], embedder: Embedder, tmp_path: Path
) -> None:
    sweep = parse_sweep(
        {
            "axes": {"temperature": [0.2, 0.4, 0.6, 0.8]},
            "search": {"method": "halving", "min_questions": 1},
        },
        settings.rag,
    )
    llm = ScriptedLLM()
    result = run(
        settings, cases, sweep.configs, tmp_path / "run", llm, embedder, search=sweep.search
    )
    questions = sorted(c["questions"] for c in result.configs)
    assert questions == [1, 1, 2, 2, 2]  # rung 1: four configs on one question; two go on
    # rung 1: baseline + 4 on the first question; rung 2: baseline + 2 survivors on the second
    assert len(llm.prompts) == (1 + 4) + (1 + 2)
    assert result.config(result.winner)["baseline"]


def test_judge_scores_and_failures_reach_the_results(
    settings: Settings,
    cases: list[Case],
    embedder: Embedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runner's side of the judge path: scores merged per row, failures summed per run."""
    calls: list[int] = []

    def fake_judge(observations: Any, judge: Any, embed: Any) -> tuple[Any, JudgeStats]:
        calls.append(len(observations))
        stats = JudgeStats(calls=2 * len(observations), failures=1, timeouts=1)
        stats.errors.append("timeout after 60 s")
        return [{"faithfulness": 0.5}] + [{} for _ in observations[1:]], stats

    monkeypatch.setattr("eval.run.judge_metrics", fake_judge)
    judge = parse_judge("http://127.0.0.1:9/v1/tiny")
    configs = sweep_of(settings, temperature=[0.7])
    result = run(settings, cases, configs, tmp_path / "run", ScriptedLLM(), embedder, judge=judge)
    assert calls == [len(cases)] * len(configs)  # one batch per configuration
    info = result.results["run"]["judge"]
    assert (info["base_url"], info["model"]) == ("http://127.0.0.1:9/v1", "tiny")
    assert info["stats"]["calls"] == 2 * len(cases) * len(configs)
    assert (info["stats"]["failures"], info["stats"]["timeouts"]) == (2, 2)
    assert info["stats"]["errors"] == ["timeout after 60 s"] * 2
    assert [("faithfulness" in r["metrics"]) for r in result.rows] == [True, False] * 2
    assert result.results["metrics"]["faithfulness"]["needs_judge"] is True


# --- the command ---------------------------------------------------------------------------------


def test_fail_under_parsing_and_checks() -> None:
    assert parse_fail_under(["rouge_l=0.5", "hit_rate = 1"]) == {"rouge_l": 0.5, "hit_rate": 1.0}
    with pytest.raises(
        UsageError, match=r"unknown metric 'rouge'; known metrics: key_facts, key_fact_recall"
    ):
        parse_fail_under(["rouge=0.5"])
    with pytest.raises(UsageError, match="METRIC=VALUE"):
        parse_fail_under(["rouge_l"])
    results = {
        "winner": "b",
        "configs": [
            {"id": "a", "metrics": {"rouge_l": 0.9}},
            {"id": "b", "metrics": {"rouge_l": 0.4, "hit_rate": 1.0}},
        ],
    }
    assert check_fail_under(results, {"hit_rate": 1.0}) == []
    assert check_fail_under(results, {"rouge_l": 0.5}) == [
        "rouge_l = 0.4000 is below 0.5 (config b)"
    ]
    assert "no values" in check_fail_under(results, {"faithfulness": 0.1})[0]


def test_unknown_metric_exits_2_with_the_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "d.jsonl"
    write_dataset(dataset, [Case("q1", "What?", "That.")])
    home = ["--home", str(tmp_path / "home")]
    assert main(["eval", "run", "--dataset", str(dataset), *home, "--fail-under", "bleu=0.3"]) == 2
    assert "unknown metric 'bleu'; known metrics: key_facts" in capsys.readouterr().err
    assert main(["eval", "run", "--dataset", str(dataset), *home, "--primary", "bleu"]) == 2
    bad = tmp_path / "s.toml"
    bad.write_text("[axes]\nfoo = [1]\n")
    assert main(["eval", "run", "--dataset", str(dataset), *home, "--sweep", str(bad)]) == 2
    assert "unknown axis foo" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()  # nothing loaded, nothing written


@pytest.mark.slow
def test_real_model_end_to_end_through_the_command(
    settings: Settings,
    cases: list[Case],
    tmp_path: Path,
    embed_settings: EmbedSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``ragtune eval run`` with the embedded Gemma: 2 configurations × 2 questions."""
    monkeypatch.setenv("RAGTUNE_EMBED__CACHE_DIR", str(embed_settings.cache_dir))
    monkeypatch.setenv("RAGTUNE_RAG__MAX_TOKENS", "16")
    monkeypatch.delenv("RAGTUNE_CONFIG", raising=False)
    dataset, sweep, out = tmp_path / "dev2.jsonl", tmp_path / "sweep.toml", tmp_path / "out"
    write_dataset(dataset, cases)
    sweep.write_text("seed = 3\n[axes]\ntemperature = [0.7]\n")
    argv = ["eval", "run", "--dataset", str(dataset), "--sweep", str(sweep), "--out", str(out)]
    argv += ["--home", str(settings.home)]
    assert main([*argv, "--fail-under", "semantic_similarity=-1"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["run"]["model"].lower().startswith("gemma") and data["run"]["backend"] == "llamacpp"
    assert len(data["configs"]) == 2 and len(data["rows"]) == 4
    assert all(r["answer"] and r["completion_tokens"] <= 16 for r in data["rows"])
    assert all(r["sampling"]["max_tokens"] == 16 and r["params"]["seed"] == 3 for r in data["rows"])
    assert "semantic_similarity" in data["configs"][1]["vs_baseline"]
    assert "configurations" in capsys.readouterr().err
    # the same command again: every row resumed, the gate now fails
    assert main([*argv, "--fail-under", "semantic_similarity=1.01"]) == 1
    again = json.loads((out / "results.json").read_text())
    assert again["run"]["resumed"] == 4 and again["run"]["computed"] == 0


def test_retrieval_axes_parse_and_validate() -> None:
    sweep = parse_sweep(
        {"axes": {"retrieval_mode": ["dense", "hybrid"], "dense_weight": [0.3, 1]}}, RagSettings()
    )
    modes = {(c["rag.retrieval.mode"], c["rag.retrieval.dense_weight"]) for c in sweep.configs}
    assert {("dense", 0.3), ("hybrid", 1.0)} <= modes
    assert sweep.baseline["rag.retrieval.mode"] == RagSettings().retrieval.mode
    assert "search=hybrid" in sweep.baseline.label()
    with pytest.raises(SweepError, match="'dense', 'bm25' or 'hybrid'"):
        parse_sweep({"axes": {"retrieval_mode": ["sparse"]}}, RagSettings())
    with pytest.raises(SweepError, match="less than or equal to 1"):
        parse_sweep({"axes": {"dense_weight": [1.5]}}, RagSettings())


def test_chunk_axes_are_canonical_against_the_serving_chunking() -> None:
    rag, chunk = RagSettings(), ChunkSettings(size=64, overlap=0)
    same = parse_sweep({"axes": {"chunk_size": [64], "chunk_overlap": [0]}}, rag, chunk)
    assert len(same.configs) == 1 and same.configs[0].chunking(chunk) is None  # the serving index
    sweep = parse_sweep({"axes": {"chunk_size": [48, 64], "chunk_overlap": [0, 8]}}, rag, chunk)
    assert {c.chunking(chunk) for c in sweep.configs} == {None, (48, 0), (48, 8), (64, 8)}
    c48 = next(c for c in sweep.configs if c.chunking(chunk) == (48, 8))
    assert "chunk=48 overlap=8" in c48.label(["chunk.size", "chunk.overlap"])
    only_overlap = parse_sweep({"axes": {"chunk.overlap": [16]}}, rag, chunk).configs[1]
    assert only_overlap.chunking(chunk) == (64, 16)
    with pytest.raises(SweepError, match=r"must be below chunk\.size 16"):
        parse_sweep({"axes": {"chunk_size": [16], "chunk_overlap": [16]}}, rag, chunk)
    with pytest.raises(SweepError, match="greater than or equal to 16"):
        parse_sweep({"axes": {"chunk_size": [8]}}, rag, chunk)


def test_chunk_axes_answer_from_a_rechunked_copy(
    settings: Settings, cases: list[Case], embedder: Embedder, tmp_path: Path
) -> None:
    configs = parse_sweep({"axes": {"chunk_size": [48, 64]}}, settings.rag, settings.chunk).configs
    assert len(configs) == 2  # 64 is what the serving index was built with: the baseline
    [c48] = [c for c in configs if not c.baseline]
    r1 = run(settings, cases, configs, tmp_path / "a", ScriptedLLM(), embedder)
    copy = settings.home / "eval" / "indexes" / "chunk48-overlap0"
    assert r1.results["run"]["chunked_indexes"] == {"chunk48-overlap0": 1}
    assert r1.results["run"]["unchunkable_files"] == 0
    assert {r["params"]["chunk.size"] for r in r1.rows if r["config"] == c48.id} == {48}
    assert {r["params"]["chunk.size"] for r in r1.rows if r["config"] != c48.id} == {64}
    model, dim = embedder.name, embedder.dim
    serving = VectorIndex.open(settings.index_dir, settings.index, embed_model=model, dim=dim)
    smaller = VectorIndex.open(copy, settings.index, embed_model=model, dim=dim)
    try:
        assert smaller.stats()["documents"] == serving.stats()["documents"] == 2
        assert smaller.stats()["chunks"] > serving.stats()["chunks"]  # same files, smaller pieces
    finally:
        serving.close()
        smaller.close()
    # A second run neither re-ingests the copy nor searches again: both were done.
    r2 = run(settings, cases, configs, tmp_path / "b", ScriptedLLM(), embedder)
    assert r2.results["run"]["chunked_indexes"] == {"chunk48-overlap0": 1}
    assert r2.cache.retrieval_misses == 0 and r2.cache.generation_misses == 0
    with pytest.raises(ValueError, match="re-ingest"):
        from eval.promote import promote

        promote(settings.home, tmp_path / "a", c48.id)
