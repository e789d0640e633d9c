"""The whole loop: feedback -> from-feedback -> eval run -> promote -> the service answers with it."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from eval.cli import main
from eval.dataset import load_dataset
from eval.run import run_sweep
from eval.sweep import parse_sweep
from ingest.embed import Embedder
from ingest.settings import EmbedSettings
from service.app import create_app
from service.settings import Settings
from tests.service.conftest import ScriptedLLM
from tests.service.test_api import QUESTION, ask


def test_feedback_to_promotion(
    service_home: Path, embed_settings: EmbedSettings, embedder: Embedder, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "index").symlink_to(service_home / "index")
    s = Settings(home=home, embed=embed_settings)
    llm = ScriptedLLM()
    with TestClient(create_app(s, llm=llm, embedder=embedder)) as client:
        first = ask(client).json()
        assert first["ragtune"]["prompt"] == "grounded-qa@1"
        fb = client.post(
            "/v1/feedback",
            json={
                "response_id": first["id"],
                "rating": "down",
                "corrected_answer": "The key and value vectors are shared across all heads.",
            },
        )
        assert fb.status_code == 201

        cases_file = tmp_path / "feedback.jsonl"
        assert main(["eval", "from-feedback", "--out", str(cases_file), "--home", str(home)]) == 0
        [case] = load_dataset(cases_file)
        assert case.question == QUESTION and case.reference_contexts

        sweep = parse_sweep(
            {"axes": {"template": ["grounded-qa@1", "grounded-qa@2"], "temperature": [0.1, 0.8]}},
            s.rag,
        )
        run = tmp_path / "run"
        result = run_sweep(s, [case], sweep.configs, run, llm=ScriptedLLM(), embedder=embedder)
        assert (run / "results.json").is_file() and len(result.configs) == 4
        chosen = next(
            c
            for c in result.configs
            if c["rag.template"] == "grounded-qa@2" and c["rag.sampling.temperature"] == 0.8
        )

        assert (
            main(["eval", "promote", str(run), "--config", chosen["id"], "--home", str(home)]) == 0
        )
        info = ask(client).json()["ragtune"]  # the running service, no restart
        assert info["serving_version"] == 1 and info["prompt"] == "grounded-qa@2"
        assert info["params"]["temperature"] == 0.8

        assert main(["eval", "history", "--home", str(home)]) == 0
        assert main(["eval", "rollback", "--home", str(home)]) == 0
        assert ask(client).json()["ragtune"]["prompt"] == "grounded-qa@1"
