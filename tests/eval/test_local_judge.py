"""``--judge local``: an embedded instruct preset served for the run, with schema-constrained output.

The real one runs Qwen2.5-Coder 0.5B Instruct under a real ``llama_cpp.server`` (skipped, with the
install command, where `make install` has not installed it); the rest needs no model.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import httpx
import numpy as np
import pytest

from eval.dataset import Case
from eval.judge import JUDGE_METRICS, JudgeUnavailable, judge_config, serving
from eval.metrics import METRICS, Observation, judge_metrics
from service.llm import presets
from service.llm.presets import PRESETS, ModelFileError, Preset, part_files
from service.settings import EvalSettings, Settings

QWEN = "qwen2.5-coder-0.5b-instruct"
CASE = Case(
    id="q1",
    question="In which sizes are Gemma 2 models available?",
    ground_truth="2 billion, 9 billion and 27 billion parameters.",
    evidence=("27B",),
)
PASSAGE = "Gemma 2 is available in 2B, 9B and 27B parameter sizes."


def test_local_names_an_instruct_preset_and_constrains_output() -> None:
    settings = EvalSettings()
    judge = judge_config("local", settings)
    assert judge is not None
    assert (judge.local, judge.model, judge.json_schema) == (settings.local_judge,) * 2 + (True,)
    assert judge.label == f"local:{settings.local_judge}"  # no port: run folders stay stable
    assert judge.metrics == JUDGE_METRICS
    assert judge_config(f"local:{QWEN}", settings).local == QWEN  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="a local judge is one of qwen"):
        judge_config("local:gemma-3-270m", settings)  # a base model: completion prompts only
    with pytest.raises(ValueError, match="a local judge is one of"):
        judge_config("local:nonesuch", settings)
    remote = judge_config("http://gpu:8000/v1/m", settings)
    assert remote is not None and remote.local is None and not remote.json_schema
    assert remote.label == "http://gpu:8000/v1/m"


def test_judge_metrics_setting_is_checked_and_matches_the_catalogue() -> None:
    assert tuple(EvalSettings().judge_metrics) == JUDGE_METRICS
    assert set(JUDGE_METRICS) == {n for n, m in METRICS.items() if m.needs_judge}
    cheap = judge_config("local", EvalSettings(judge_metrics=["answer_accuracy"] * 2))
    assert cheap is not None and cheap.metrics == ("answer_accuracy",)
    for bad in (["faithfulness", "bleu"], []):
        with pytest.raises(ValueError, match=r"eval\.judge_metrics"):
            judge_config("local", EvalSettings(judge_metrics=bad))


def test_an_uninstalled_local_judge_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ghost = Preset(
        name="ghost-instruct",
        packages=("ragtune-no-such-part1",),
        version="1.0",
        sha256="0" * 64,
        style="chat",
        file_name="ghost.gguf",
        provenance="none",
    )
    monkeypatch.setitem(PRESETS, ghost.name, ghost)
    monkeypatch.setattr(presets, "default_cache_dir", lambda: tmp_path)
    judge = judge_config("local:ghost-instruct", EvalSettings())
    unavailable = pytest.raises(JudgeUnavailable, match=r"local:ghost-instruct.*models install")
    with unavailable, serving(judge, Settings(home=tmp_path)):
        pytest.fail("the block must not run without a judge")


def _port_closed(base_url: str) -> bool:
    port = httpx.URL(base_url).port
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port or 0)) != 0


@pytest.mark.slow
@pytest.mark.integration
def test_real_local_judge_parses_every_judgement_and_stops(tmp_path: Path) -> None:
    try:
        part_files(PRESETS[QWEN])
    except ModelFileError as e:
        pytest.skip(str(e))
    settings = Settings(home=tmp_path)
    settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"threads": 2})})
    judge = judge_config(f"local:{QWEN}", settings.eval)
    assert judge is not None
    judge = dataclasses.replace(judge, metrics=("answer_accuracy", "faithfulness"))
    right = Observation(CASE, "Gemma 2 comes in 2 billion, 9 billion and 27 billion.", (PASSAGE,))
    with serving(judge, settings) as live:
        assert live is not None and live.base_url.startswith("http://127.0.0.1:")
        models = httpx.get(f"{live.base_url}/models", timeout=5).json()
        assert [m["id"] for m in models["data"]] == [QWEN]  # the alias the requests name
        rows, stats = judge_metrics([right], live, lambda texts: np.ones((len(texts), 4)))
    assert _port_closed(live.base_url)  # stopped with the block
    # Constrained to the response schema, every judgement parses: a score or a counted failure
    # would both be honest, but with the schema there is no failure to count.
    assert (stats.failures, stats.errors) == (0, [])
    assert set(rows[0]) == {"answer_accuracy", "faithfulness"}
    assert all(0.0 <= v <= 1.0 for v in rows[0].values())
    assert stats.calls == 2 + 2  # two raters; statements, then verdicts


def test_cli_refuses_a_base_model_as_judge_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eval.cli import main

    data = tmp_path / "qa.jsonl"
    data.write_text('{"id": "a", "question": "q?", "ground_truth": "t"}\n')
    argv = ["eval", "run", "--home", str(tmp_path), "--dataset", str(data)]
    assert main([*argv, "--judge", "local:gemma-3-270m"]) == 2
    assert "a local judge is one of" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()  # no run folder, nothing answered
