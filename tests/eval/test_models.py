"""``eval models``: the matrix arithmetic, models files, the outputs, and two real backends.

The arithmetic and the output files are checked on hand-made numbers; one slow test runs the
command end to end with the packaged Gemma embedded in-process and served by a real
``llama_cpp.server`` on loopback, on two dev questions.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eval.candidates import ModelsFileError, load_models, parse_models
from eval.cli import main
from eval.dataset import load_dataset, write_dataset
from eval.matrix import competition_rank, factors, normalize, score_matrix
from eval.report_models import render, summary_markdown
from eval.selection import CandidateRun, build_selection, run_info, write_selection
from ingest.settings import EmbedSettings
from tests.conftest import TEST_MODEL, base_gguf, running_llama_server

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "eval" / "examples" / "models.toml"
LLAMA = {"backend": "llamacpp"}

# --- the matrix ----------------------------------------------------------------------------------


def test_normalize_min_max_both_directions_ties_and_missing() -> None:
    assert normalize([0.2, 0.6, 0.4], higher_is_better=True) == pytest.approx([0.0, 1.0, 0.5])
    assert normalize([100.0, 300.0, 150.0], higher_is_better=False) == pytest.approx(
        [1.0, 0.0, 0.75]
    )
    assert normalize([7.0, 7.0], higher_is_better=False) == [1.0, 1.0]  # equal: best for all
    assert normalize([0.3, 0.3 + 1e-15], higher_is_better=True) == [1.0, 1.0]  # float noise
    assert normalize([None, 2.0, 4.0], higher_is_better=True) == [None, 0.0, 1.0]
    assert normalize([None, None], higher_is_better=True) == [None, None]


def test_score_weights_lower_is_better_and_ranks() -> None:
    raw = {
        "a": {"q": 0.8, "latency": 100.0, "cost": 0.0},
        "b": {"q": 0.6, "latency": 50.0, "cost": 0.0},
        "c": {"q": 0.4, "latency": 200.0, "cost": 1.0},
    }
    higher = {"q": True, "latency": False, "cost": False}
    rows = score_matrix(raw, {"q": 2, "latency": 1, "cost": 1}, higher)
    assert [r.name for r in rows] == ["a", "b", "c"] and [r.rank for r in rows] == [1, 2, 3]
    a, b, c = rows
    assert a.normalized == pytest.approx({"q": 1.0, "latency": 2 / 3, "cost": 1.0})
    assert b.normalized == pytest.approx({"q": 0.5, "latency": 1.0, "cost": 1.0})
    assert c.normalized == {"q": 0.0, "latency": 0.0, "cost": 0.0}
    assert a.score == pytest.approx((2 * 1.0 + 2 / 3 + 1.0) / 4)
    assert b.score == pytest.approx((2 * 0.5 + 1.0 + 1.0) / 4)
    assert c.score == 0.0
    assert sum(a.contributions.values()) == pytest.approx(a.score)
    assert a.raw == raw["a"]

    # Cheaper latency weight flips a and b: b is fastest and only half a step worse on q.
    flipped = score_matrix(raw, {"q": 1, "latency": 3, "cost": 0}, higher)
    assert [r.name for r in flipped] == ["b", "a", "c"]
    assert all(r.contributions["cost"] == 0.0 for r in flipped)  # weight 0: shown, not counted


def test_ties_share_a_rank_and_keep_file_order() -> None:
    raw = {"x": {"q": 0.5}, "y": {"q": 0.9}, "w": {"q": None}, "z": {"q": 0.9}, "v": {"q": 0.7}}
    rows = score_matrix(raw, {"q": 1}, {"q": True})
    ranked = [(r.name, r.rank) for r in rows]
    assert ranked == [("y", 1), ("z", 1), ("v", 3), ("x", 4), ("w", 4)]
    # missing counts as 0: level with the worst measured value, never above it
    assert rows[-1].normalized == {"q": None} and rows[-1].score == 0.0
    assert competition_rank([1.0, 3.0, 3.0, 2.0]) == [4, 1, 1, 3]
    with pytest.raises(ValueError, match="at least one above 0"):
        score_matrix(raw, {"q": 0}, {"q": True})


def test_every_metric_and_system_factor_has_a_direction() -> None:
    f = factors()
    assert f["semantic_similarity"].higher_is_better and not f["dont_know"].higher_is_better
    assert not f["latency_p50_ms"].higher_is_better and not f["cost_per_1k_tokens"].higher_is_better
    assert f["tokens_per_s"].higher_is_better and f["context_window"].higher_is_better


# --- models files --------------------------------------------------------------------------------


def test_example_file_parses_with_the_key_from_the_environment() -> None:
    spec = load_models(EXAMPLE, env={"VLLM_API_KEY": "sk-test"})
    assert spec.weights["key_facts"] == 6.0 and len(spec.candidates) == 2
    cpu, vllm = spec.candidates
    assert (cpu.llm.backend, cpu.llm.threads, cpu.llm.name) == ("llamacpp", 2, "gemma-270m-cpu")
    assert vllm.llm.api_key is not None and vllm.llm.api_key.get_secret_value() == "sk-test"
    assert vllm.context_window == 32768 and cpu.context_window is None
    assert "sk-test" not in json.dumps(vllm.profile())
    assert vllm.profile()["api_key_env"] == "VLLM_API_KEY"


def _candidate(name: str = "a", **kw: Any) -> dict[str, Any]:
    return {"name": name, "cost_per_1k_tokens": 0.0, "llm": LLAMA, **kw}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"weights": {"bleu": 1}, "candidates": [_candidate()]}, r"weights.bleu: unknown factor"),
        ({"weights": {"rouge_l": 0, "mrr": 0}, "candidates": [_candidate()]}, r"every weight is 0"),
        ({"weights": {"rouge_l": -1}, "candidates": [_candidate()]}, r"weights.rouge_l: -1 must"),
        ({"weights": {"rouge_l": True}, "candidates": [_candidate()]}, r"weights.rouge_l: True"),
        ({"candidates": [_candidate()]}, r"\[weights\] must be a table"),
        ({"weights": {"rouge_l": 1}}, r"no \[\[candidates\]\]"),
        ({"weights": {"rouge_l": 1}, "candidate": []}, r"unknown key candidate"),
        ({"weights": {"rouge_l": 1}, "candidates": [{"llm": LLAMA}]}, r"entry 1 has no name"),
        ({"weights": {"rouge_l": 1}, "candidates": [_candidate("a b")]}, r"'a b' is not letters"),
        (
            {"weights": {"rouge_l": 1}, "candidates": [_candidate(), _candidate()]},
            r"entry 2 name 'a' is also entry 1's",
        ),
        (
            {
                "weights": {"rouge_l": 1},
                "candidates": [_candidate(), _candidate("b", llm={"name": "a"})],
            },
            r"entry 2 llm.name 'a' is also entry 1's",
        ),
        (
            {"weights": {"rouge_l": 1}, "candidates": [{"name": "a"}]},
            r"candidates.a: missing \[candidates.llm\]",
        ),
        (
            {"weights": {"rouge_l": 1}, "candidates": [_candidate(llm={"api_key": "sk"})]},
            r"candidates.a.llm.api_key: keys do not go in the file",
        ),
        (
            {"weights": {"rouge_l": 1}, "candidates": [_candidate(llm={"backend": "vllm"})]},
            r"candidates.a.llm.backend: Input should be 'llamacpp' or 'openai'",
        ),
        (
            {"weights": {"rouge_l": 1}, "candidates": [_candidate(prise=1)]},
            r"candidates.a.prise: unknown key",
        ),
        (
            {"weights": {"cost_per_1k_tokens": 1}, "candidates": [{"name": "a", "llm": LLAMA}]},
            r"candidates.a.cost_per_1k_tokens: missing, and \[weights\] scores",
        ),
        (
            {"weights": {"rouge_l": 1}, "candidates": [_candidate(context_window=0)]},
            r"candidates.a.context_window: 0 must be an integer >= 1",
        ),
        (
            {"weights": {"rouge_l": 1}, "candidates": [_candidate(api_key_env="NO_SUCH_KEY")]},
            r"candidates.a.api_key_env: environment variable NO_SUCH_KEY is not set",
        ),
    ],
)
def test_models_file_errors_name_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelsFileError, match=message):
        parse_models(raw, env={})


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text("[weights\n")
    with pytest.raises(ModelsFileError, match=rf"{path}: not TOML"):
        load_models(path)
    path.write_text("[weights]\nspeed = 1\n")
    with pytest.raises(ModelsFileError, match=rf"{path}: weights.speed: unknown factor"):
        load_models(path)


def test_command_rejects_bad_files_and_unjudged_judge_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "d.jsonl"
    write_dataset(dataset, load_dataset(REPO.parent / "shared" / "data" / "qa" / "dev.jsonl")[:1])
    models = tmp_path / "models.toml"
    models.write_text("[weights]\nbleu = 1\n")
    argv = ["eval", "models", "--models", str(models), "--dataset", str(dataset)]
    argv += ["--home", str(tmp_path / "home")]
    assert main(argv) == 2
    assert "weights.bleu: unknown factor; known factors: key_facts" in capsys.readouterr().err
    models.write_text(
        '[weights]\nfaithfulness = 1\n[[candidates]]\nname = "a"\n[candidates.llm]\n'
        'backend = "llamacpp"\n'
    )
    assert main(argv) == 2
    assert "weights.faithfulness needs a judge" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([*argv, "--limit", "0"])
    assert e.value.code == 2 and "--limit: '0' is not a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()  # nothing loaded, nothing written


# --- outputs from hand-made runs -----------------------------------------------------------------


def _run(name: str, sim: float, latencies: list[float], tokens: int, window: int) -> CandidateRun:
    spec_rows = [
        {
            "case": f"q{i}",
            "question": f"Question {i} <script>x</script>?",
            "ground_truth": "answer",
            "answer": f"{name} says <b>{i}</b>",
            "called": True,
            "latency_s": lat,
            "completion_tokens": tokens,
            "metrics": {"semantic_similarity": sim},
        }
        for i, lat in enumerate(latencies)
    ]
    config = {"template": "grounded-qa@1", "temperature": 0.1, "top_p": 1.0, "top_k": None}
    config |= {"max_tokens": 16, "retrieval_k": 5, "seed": 0, "questions": len(latencies)}
    config |= {"metrics": {"semantic_similarity": sim}, "latency_p50": sorted(latencies)[1]}
    run = {"context_window": window, "model": f"{name}-model", "cases": len(latencies)}
    run |= {"index_version": 3, "resumed": 0, "computed": len(latencies), "serving_version": None}
    return CandidateRun(None, {"configs": [config], "rows": spec_rows, "run": run}, Path(name))  # type: ignore[arg-type]


def test_selection_files(tmp_path: Path) -> None:
    spec = parse_models(
        {
            "weights": {"semantic_similarity": 2, "latency_p50_ms": 1, "tokens_per_s": 1}
            | {"cost_per_1k_tokens": 1, "context_window": 0},
            "candidates": [
                _candidate("fast", cost_per_1k_tokens=0.5),
                _candidate("good", context_window=8192),
            ],
        },
        env={},
    )
    fast, good = spec.candidates
    runs = [
        CandidateRun(fast, _run("fast", 0.5, [0.1, 0.2, 0.3], 10, 2048).results, tmp_path / "f"),
        CandidateRun(good, _run("good", 0.7, [1.0, 2.0, 3.0], 20, 2048).results, tmp_path / "g"),
    ]
    sel = build_selection(spec, runs, run_info(runs, "dev.jsonl", None, 0.0))
    by = {c["name"]: c for c in sel["candidates"]}
    assert by["fast"]["raw"] == pytest.approx(
        {
            "semantic_similarity": 0.5,
            "latency_p50_ms": 200.0,
            "tokens_per_s": 30 / 0.6,
            "cost_per_1k_tokens": 0.5,
            "context_window": 2048.0,  # reported by the backend
        }
    )
    assert by["good"]["raw"]["context_window"] == 8192.0  # configured wins
    # fast: sim 0, latency 1, tokens/s 1, cost 0 -> 2/5; good: sim 1 (x2) -> 2/5 + cost 1/5
    assert by["fast"]["score"] == pytest.approx(2 / 5)
    assert by["good"]["score"] == pytest.approx(3 / 5)
    assert sel["winner"] == "good" and sel["tied"] == ["good"] and by["good"]["rank"] == 1
    assert sel["factors"]["latency_p50_ms"]["direction"] == "lower is better"
    assert len(sel["rows"]) == 6 and {r["candidate"] for r in sel["rows"]} == {"fast", "good"}

    summary = summary_markdown(sel)
    write_selection(tmp_path, sel, summary)
    assert json.loads((tmp_path / "models.json").read_text())["winner"] == "good"
    with (tmp_path / "models.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["candidate"] for r in table] == ["good", "fast"]
    assert table[1]["latency_p50_ms"] == "200.0" and table[1]["latency_p50_ms_normalized"] == "1.0"
    assert "**Best: good, score 0.600 (next: fast, 0.400).**" in summary
    assert "| 2 | `fast` | 0.400 | 0.500 → 0.00 | 200 → 1.00 |" in summary
    assert "latency_p50_ms lower is better (ms), weight 1" in summary

    page = render(sel)
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<b>1</b>" not in page and "src=" not in page and "<link" not in page
    assert page.count("<tr") == 1 + 2 + 1 + 3  # matrix head + rows, questions head + rows
    assert 'aria-label="weighted score"' in page and "normalized 1.00" in page


# --- two real backends, end to end ---------------------------------------------------------------


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The packaged Gemma on a real llama.cpp server; one thread (see the test's docstring)."""
    log = tmp_path_factory.mktemp("models-server") / "server.log"
    with running_llama_server(base_gguf(), log, n_ctx=1024, threads=1) as base:
        yield base


@pytest.mark.slow
@pytest.mark.integration
def test_embedded_and_served_gemma_end_to_end(
    llama_server: str,
    service_home: Path,
    shared_data: Path,
    embed_settings: EmbedSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two real candidates on two questions: the same GGUF in-process and behind HTTP.

    One llama.cpp thread each: with more, OpenMP's barriers make generation many times slower
    whenever anything else runs on these two cores, and this test measures speed.
    """
    home = tmp_path / "home"
    shutil.copytree(service_home / "index", home / "index")
    monkeypatch.setenv("RAGTUNE_EMBED__CACHE_DIR", str(embed_settings.cache_dir))
    monkeypatch.setenv("RAGTUNE_RAG__MAX_TOKENS", "12")
    monkeypatch.setenv("RAGTUNE_RAG__K", "2")  # short prompts: prompt processing is most of it
    monkeypatch.delenv("RAGTUNE_CONFIG", raising=False)
    by_id = {c.id: c for c in load_dataset(shared_data / "qa" / "dev.jsonl")}
    dataset = tmp_path / "dev.jsonl"
    write_dataset(dataset, [by_id["dev-01"], by_id["dev-17"], by_id["dev-02"]])
    models = tmp_path / "models.toml"
    models.write_text(
        "[weights]\nsemantic_similarity = 2\nhit_rate = 1\nlatency_p50_ms = 1\n"
        "tokens_per_s = 1\ncost_per_1k_tokens = 1\ncontext_window = 0\n\n"
        '[[candidates]]\nname = "embedded"\ncost_per_1k_tokens = 0.0\n'
        f'[candidates.llm]\nbackend = "llamacpp"\nmodel = "{TEST_MODEL}"\nthreads = 1\n'
        "n_ctx = 1024\n\n"
        '[[candidates]]\nname = "server"\ncost_per_1k_tokens = 0.001\ncontext_window = 1024\n'
        f'[candidates.llm]\nbackend = "openai"\nbase_url = "{llama_server}"\n'
        'style = "completion"\n'
    )
    out = tmp_path / "out"
    argv = ["eval", "models", "--models", str(models), "--dataset", str(dataset)]
    argv += ["--out", str(out), "--limit", "2", "--home", str(home)]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "| rank | candidate | score | semantic_similarity ↑ ×2 | hit_rate ↑ ×1 |" in printed.out
    assert "latency_p50_ms lower is better" in printed.out and "report:" in printed.err

    sel = json.loads((out / "models.json").read_text())
    assert {c["name"] for c in sel["candidates"]} == {"embedded", "server"}
    assert sel["run"]["cases"] == 2 and len(sel["rows"]) == 4  # --limit 2
    by = {c["name"]: c for c in sel["candidates"]}
    assert by["embedded"]["backend"] == "llamacpp" and by["server"]["backend"] == "openai"
    for c in sel["candidates"]:
        raw = c["raw"]
        assert raw["latency_p50_ms"] > 0 and raw["tokens_per_s"] > 0, c
        assert 0 <= c["score"] <= 1 and set(c["normalized"]) == set(sel["factors"])
        run = json.loads((Path(c["run_dir"]) / "results.json").read_text())
        assert run["run"]["cache"]["generation_hits"] == 0  # same GGUF, separate cache entries
        assert run["run"]["model"] == c["name"]
    assert by["embedded"]["raw"]["context_window"] == 1024  # what llama.cpp reports for n_ctx
    assert by["server"]["raw"]["cost_per_1k_tokens"] == 0.001
    assert by["embedded"]["normalized"]["cost_per_1k_tokens"] == 1.0  # cheaper: lower is better
    assert all(r["completion_tokens"] <= 12 and r["answer"] for r in sel["rows"])
    assert sel["run"]["config"]["rag.retrieval.k"] == 2
    # The scores are the matrix of the raw values, as models.json records them.
    directions = {f: i["higher_is_better"] for f, i in sel["factors"].items()}
    weights = {f: i["weight"] for f, i in sel["factors"].items()}
    again = score_matrix({c["name"]: c["raw"] for c in sel["candidates"]}, weights, directions)
    assert [(r.name, r.rank) for r in again] == [(c["name"], c["rank"]) for c in sel["candidates"]]
    assert [r.score for r in again] == pytest.approx([c["score"] for c in sel["candidates"]])
    for name in ("models.json", "models.csv", "models.md", "models.html"):
        assert (out / name).stat().st_size > 0, name


def test_candidates_with_their_own_default_templates_are_named_in_the_header() -> None:
    base, chat = (
        _run("base", 0.5, [0.1, 0.2, 0.3], 10, 2048),
        _run("chat", 0.7, [1, 2, 3], 20, 2048),
    )
    chat.results["configs"][0]["template"] = "grounded-chat@1"
    info = run_info([base, chat], "dev.jsonl", None, 0.0)
    assert info["config"]["rag.template"] == (
        "grounded-chat@1 or grounded-qa@1 by the model's prompt style"
    )
    assert run_info([base], "dev.jsonl", None, 0.0)["config"]["rag.template"] == "grounded-qa@1"


def test_a_candidate_over_a_budget_cannot_win(tmp_path: Path) -> None:
    raw = {
        "weights": {"semantic_similarity": 2, "latency_p50_ms": 1},
        "budgets": {"latency_p50_ms": 1500, "semantic_similarity": 0.4},
        "candidates": [_candidate("fast"), _candidate("good"), _candidate("slow")],
    }
    spec = parse_models(raw, env={})
    assert spec.budgets == {"latency_p50_ms": 1500.0, "semantic_similarity": 0.4}
    fast, good, slow = spec.candidates
    runs = [
        CandidateRun(fast, _run("fast", 0.5, [0.1, 0.2, 0.3], 10, 2048).results, tmp_path / "f"),
        CandidateRun(good, _run("good", 0.7, [1.0, 2.0, 3.0], 20, 2048).results, tmp_path / "g"),
        CandidateRun(slow, _run("slow", 0.3, [1.0, 1.0, 1.0], 20, 2048).results, tmp_path / "s"),
    ]
    sel = build_selection(spec, runs, run_info(runs, "dev.jsonl", None, 0.0))
    by = {c["name"]: c for c in sel["candidates"]}
    # good scores best but takes 2 s a call: the winner is the best within the budgets
    assert by["good"]["rank"] == 1 and by["good"]["over_budget"] == ["latency_p50_ms 2,000 > 1,500"]
    assert by["slow"]["over_budget"] == ["semantic_similarity 0.3 < 0.4"]
    assert sel["winner"] == "fast" and sel["tied"] == ["fast"] and by["fast"]["over_budget"] == []
    assert sel["candidates"][0]["name"] == "fast"
    summary = summary_markdown(sel)
    assert "**Best within budget: fast, score " in summary
    assert "Over budget: good, score " in summary and "(latency_p50_ms 2,000 > 1,500)" in summary
    assert "| 1 | `good` (over budget) |" in summary
    assert "over budget: latency_p50_ms 2,000 &gt; 1,500" in render(sel)
    # nobody within budget: said, and the best by score comes first
    tight = parse_models({**raw, "budgets": {"latency_p50_ms": 1}}, env={})
    sel = build_selection(tight, runs, run_info(runs, "dev.jsonl", None, 0.0))
    best = min(sel["candidates"], key=lambda c: c["rank"])["name"]
    assert sel["winner"] == best and "no candidate is within every budget" in sel["warnings"][-1]
    assert "No candidate is within every budget." in summary_markdown(sel)


def test_budgets_name_known_factors() -> None:
    raw = {"weights": {"rouge_l": 1}, "candidates": [_candidate()], "budgets": {"speed": 1}}
    with pytest.raises(ModelsFileError, match=r"budgets\.speed: unknown factor"):
        parse_models(raw, env={})
    with pytest.raises(ModelsFileError, match=r"budgets\.latency_p50_ms: -1 must be a number"):
        parse_models({**raw, "budgets": {"latency_p50_ms": -1}}, env={})
