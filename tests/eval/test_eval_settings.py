"""The ``eval`` settings section reaches the judge, the statistics and the output folder."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from eval.cli import default_out, main
from eval.dataset import Case, write_dataset
from eval.judge import JudgeConfig, judge_config
from eval.results import build_results, summary_markdown
from eval.run import bootstrap_of, run_sweep
from eval.stats import Bootstrap
from eval.sweep import parse_sweep
from ingest.embed import Embedder
from ingest.settings import EmbedSettings
from service.settings import EvalSettings, Settings, load_settings
from tests.service.conftest import ScriptedLLM


def test_defaults_agree_with_the_eval_code() -> None:
    s = EvalSettings()
    assert judge_config(None, s) is None  # no judge unless one is named
    defaults = JudgeConfig("u", "m")
    configured = judge_config("http://u:1/v1/m", s)
    assert configured is not None
    for f in ("timeout_s", "max_tokens", "strictness", "api_key"):
        assert getattr(configured, f) == getattr(defaults, f), f
    assert bootstrap_of(s) == Bootstrap()


def test_environment_reaches_the_judge_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAGTUNE_CONFIG", raising=False)
    monkeypatch.setenv("RAGTUNE_EVAL__JUDGE_BASE_URL", "http://judge:8001/v1/")
    monkeypatch.setenv("RAGTUNE_EVAL__JUDGE_MODEL", "Qwen/Qwen2.5-7B-Instruct")
    monkeypatch.setenv("RAGTUNE_EVAL__JUDGE_API_KEY", "sk-judge")
    monkeypatch.setenv("RAGTUNE_EVAL__JUDGE_TIMEOUT_S", "7")
    monkeypatch.setenv("RAGTUNE_EVAL__JUDGE_STRICTNESS", "1")
    s = load_settings(home=tmp_path)
    assert "sk-judge" not in repr(s.eval)
    assert judge_config(None, s.eval) == JudgeConfig(
        "http://judge:8001/v1",
        "Qwen/Qwen2.5-7B-Instruct",
        api_key="sk-judge",
        timeout_s=7.0,
        strictness=1,
    )
    # --judge names another endpoint; the key and limits still come from settings
    flag = judge_config("http://other:9000/v1/phi", s.eval)
    assert flag is not None and (flag.base_url, flag.model) == ("http://other:9000/v1", "phi")
    assert (flag.timeout_s, flag.api_key) == (7.0, "sk-judge")


def test_half_a_judge_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match=r"judge_base_url and eval\.judge_model go together"):
        judge_config(None, EvalSettings(judge_model="m"))
    monkeypatch.delenv("RAGTUNE_CONFIG", raising=False)
    monkeypatch.setenv("RAGTUNE_EVAL__JUDGE_MODEL", "m")
    dataset = tmp_path / "d.jsonl"
    write_dataset(dataset, [Case("q1", "What?", "That.")])
    assert main(["eval", "run", "--dataset", str(dataset), "--home", str(tmp_path / "h")]) == 2
    assert "go together" in capsys.readouterr().err
    assert not (tmp_path / "h").exists()


def test_runs_dir_is_the_default_output_parent(tmp_path: Path) -> None:
    dataset = tmp_path / "d.jsonl"
    dataset.write_text("{}\n")
    s = Settings(home=tmp_path / "home", eval=EvalSettings(runs_dir=tmp_path / "runs"))
    assert default_out(s, dataset, ["a"], None).parent == tmp_path / "runs"
    assert default_out(Settings(home=tmp_path / "home"), dataset, ["a"], None).parent == (
        tmp_path / "home" / "eval" / "runs"
    )


def _rows(config: str, values: list[float]) -> list[dict[str, object]]:
    return [
        {"config": config, "case": f"q{i}", "called": True, "latency_s": 0.1}
        | {"completion_tokens": 3, "metrics": {"rouge_l": v}}
        for i, v in enumerate(values)
    ]


@dataclasses.dataclass(frozen=True)
class _Cfg:
    id: str
    baseline: bool
    params: dict[str, object] = dataclasses.field(default_factory=dict)

    def label(self, paths: object = None) -> str:
        return self.id


def test_confidence_level_and_resamples_reach_the_comparison() -> None:
    rows = {
        "base": _rows("base", [0.1, 0.2, 0.3, 0.2, 0.1, 0.3]),
        "cand": _rows("cand", [0.3, 0.2, 0.6, 0.5, 0.2, 0.4]),
    }
    configs = [_Cfg("base", True), _Cfg("cand", False)]

    def results(level: float) -> dict[str, object]:
        boot = bootstrap_of(EvalSettings(confidence_level=level, bootstrap_resamples=500))
        return build_results(
            configs=configs,
            rows_of=lambda c: rows[c.id],
            metrics={},
            n_questions=6,
            run={"primary_metric": "rouge_l", "cases": 6, "model": "m", "index_version": 1}
            | {"cache": {"generation_hits": 0, "generation_misses": 0}, "resumed": 0}
            | {"seconds": 0.0},
            bootstrap=boot,
        )

    wide, narrow = results(0.99), results(0.8)
    width = {}
    for name, r in (("wide", wide), ("narrow", narrow)):
        cmp = r["configs"][1]["vs_baseline"]["rouge_l"]  # type: ignore[index]
        width[name] = cmp["ci_high"] - cmp["ci_low"]
    assert width["narrow"] < width["wide"]
    assert narrow["run"]["confidence_level"] == 0.8  # type: ignore[index]
    assert "80% CI" in summary_markdown(narrow) and "95% CI" not in summary_markdown(narrow)


def test_run_sweep_takes_its_statistics_from_settings(
    tmp_path: Path, service_home: Path, embed_settings: EmbedSettings, embedder: Embedder
) -> None:
    home = tmp_path / "home"
    shutil.copytree(service_home / "index", home / "index")
    s = Settings(
        home=home,
        embed=embed_settings,
        eval=EvalSettings(confidence_level=0.9, bootstrap_resamples=300, bootstrap_seed=5),
    )
    configs = parse_sweep({}, s.rag).configs
    case = Case("q1", "In Multi-Query Attention, what is shared across heads?", "Keys, values.")
    r = run_sweep(s, [case], configs, tmp_path / "run", llm=ScriptedLLM(), embedder=embedder)
    assert r.results["run"]["confidence_level"] == 0.9
    assert r.results["run"]["bootstrap"] == {"resamples": 300, "seed": 5, "level": 0.9}
    assert r.results["run"]["context_window"] == ScriptedLLM.context_window
