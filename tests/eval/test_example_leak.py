"""No few-shot example content leaks into answers: the real default instruct model, real passages.

Issue 11: "The shop uses ALiBi embeddings ...": a base model copied words from the template's
examples into answers. The eval loop scores every answer for it (``example_leak``: the answer has
content words that only the prompt's examples contained); here the default chat template and the
real Qwen2.5-Coder 0.5B answer real questions over real documents, and one question that leans on
an example's domain (a warranty, which the documents never mention) and invites copying its answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.dataset import Case, load_dataset
from eval.run import run_sweep
from eval.sweep import parse_sweep
from ingest.embed import Embedder
from ingest.settings import EmbedSettings
from service.llm import LLMSettings
from service.llm.presets import PRESETS, ModelFileError, part_files
from service.settings import Settings
from tests.conftest import write_fence_key
from tests.service.llm.conftest import THREADS

pytestmark = pytest.mark.slow

QWEN = "qwen2.5-coder-0.5b-instruct"
# Over llm-guide.txt and zlib-usage.html (the service_home index): a lookup, a list, a "why".
DEV_IDS = ("dev-01", "dev-05", "dev-17", "dev-19")
TEMPTING = Case(
    id="warranty",
    question="How long is the warranty on the GPU used to train the model?",
    ground_truth="I don't know based on the provided documents.",
    extra={"kind": "unanswerable"},
)


def test_answers_borrow_nothing_from_the_templates_examples(
    service_home: Path,
    shared_data: Path,
    embed_settings: EmbedSettings,
    embedder: Embedder,
    tmp_path: Path,
) -> None:
    try:
        part_files(PRESETS[QWEN])
    except ModelFileError as e:
        pytest.skip(str(e))
    home = tmp_path / "home"
    write_fence_key(home)  # the answers move with the passage markers: the same every run
    (home / "index").symlink_to(service_home / "index")
    s = Settings(home=home, embed=embed_settings).with_llm(LLMSettings(model=QWEN, threads=THREADS))
    assert s.rag.template.startswith("grounded-chat@")  # the default for the default model
    dev = [c for c in load_dataset(shared_data / "qa" / "dev.jsonl") if c.id in DEV_IDS]
    cases = [*dev, TEMPTING]
    configs = parse_sweep({"axes": {}}, s.rag).configs
    result = run_sweep(s, cases, configs, tmp_path / "run", embedder=embedder)
    rows = result.results["rows"]
    assert len(rows) == len(cases)
    for row in rows:
        # Scored on every row (examples were shown), and zero: no word came from an example.
        assert row["metrics"]["example_leak"] == 0.0, (
            row["case"],
            row["answer"],
            row.get("borrowed"),
        )
        assert "borrowed" not in row
