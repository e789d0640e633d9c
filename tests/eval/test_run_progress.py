"""``eval run --progress-file``, ``--limit`` and ``--check``: what the API's sweeps rely on.

The runner is replaced by one that reports progress (what is tested is the command's wiring and
the file, not answering); ``--progress-file`` with the real runner is in
tests/service/test_api_sweeps.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import eval.report
import eval.run
from eval.cli import main
from eval.cli_common import ProgressFile
from eval.dataset import Case, write_dataset
from eval.run import RunResult


def test_the_progress_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "progress.json"
    progress = ProgressFile(path)
    assert json.loads(path.read_text()) == {"done": 0, "total": 0, "stage": "loading"}
    progress.update(3, 8)
    assert json.loads(path.read_text()) == {"done": 3, "total": 8, "stage": "answering"}
    progress.set_stage("reporting")
    assert json.loads(path.read_text()) == {"done": 3, "total": 8, "stage": "reporting"}
    assert [p.name for p in path.parent.iterdir()] == ["progress.json"]  # no temporary left


def test_eval_run_writes_progress_as_answers_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset, progress, out = tmp_path / "d.jsonl", tmp_path / "progress.json", tmp_path / "out"
    write_dataset(dataset, [Case(f"q{i}", f"Question {i}?", "Answer.") for i in range(5)])
    seen: list[Any] = []

    def fake_run_sweep(settings: Any, cases: Any, configs: Any, out_dir: Path, **kw: Any) -> Any:
        seen.append(json.loads(progress.read_text()))  # before any answer: loading
        total = len(cases) * len(configs)
        for done in range(1, total + 1):
            kw["progress"](done, total)
            seen.append(json.loads(progress.read_text()))
        out_dir.mkdir(parents=True)
        (out_dir / "summary.md").write_text("summary")
        results = {"configs": [{"id": "b", "metrics": {}}], "winner": "b"}
        return RunResult(out_dir, results, total, 0)

    def fake_report(results: Any, out_dir: Path) -> Path:
        seen.append(json.loads(progress.read_text()))
        return out_dir / "report.html"

    monkeypatch.setattr(eval.run, "run_sweep", fake_run_sweep)
    monkeypatch.setattr(eval.report, "write_report", fake_report)
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('[axes]\n"rag.retrieval.k" = [2, 3]\n')  # the baseline (5) and two more
    argv = ["eval", "run", "--dataset", str(dataset), "--sweep", str(sweep), "--out", str(out)]
    argv += ["--home", str(tmp_path / "home"), "--progress-file", str(progress)]

    assert main([*argv, "--limit", "2", "--check"]) == 0  # checked: nothing run, nothing written
    assert seen == [] and not progress.exists() and not out.exists()

    assert main([*argv, "--limit", "2"]) == 0
    assert seen[0] == {"done": 0, "total": 0, "stage": "loading"}
    assert seen[1:-1] == [{"done": n, "total": 6, "stage": "answering"} for n in range(1, 7)]
    assert seen[-1] == {"done": 6, "total": 6, "stage": "reporting"}
    assert json.loads(progress.read_text()) == {"done": 6, "total": 6, "stage": "done"}


def test_a_bad_limit_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = tmp_path / "d.jsonl"
    write_dataset(dataset, [Case("q1", "What?", "That.")])
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "run", "--dataset", str(dataset), "--limit", "0"])
    assert exit_.value.code == 2 and "not a positive integer" in capsys.readouterr().err
