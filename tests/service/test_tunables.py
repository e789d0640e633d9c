"""One parameter model: every tunable is declared once, as a settings field, and reaches every edge.

The test walks the settings fields, so a tunable added to ``RagSettings`` (or its sections) is
checked here without the test being touched: a sweep axis, a promotion file entry, an API field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eval.promote import promote
from eval.sweep import SweepError, parse_sweep
from ingest.settings import ChunkSettings
from service import tunables
from service.schemas import (
    ChatCompletionRequest,
    ConversationOptions,
    RetrievalOptions,
    VerifyOptions,
)
from service.serving import ServingStore
from service.settings import ALIASES, RagSettings

CANDIDATES: tuple[Any, ...] = (
    "grounded-qa@2", "bm25", "blend", "document", "refuse", "llm", True, False, 3, 48, 1, 0.5, 0.3, 7,
)  # fmt: skip


def other_value(t: tunables.Tunable) -> Any:
    """A valid value for ``t`` that is not its default (found, not listed per tunable)."""
    for v in CANDIDATES:
        try:
            checked = tunables.check(t.path, v)
        except tunables.TunableError:
            continue
        if checked != t.default:
            return checked
    raise AssertionError(f"no test value fits {t.path}")


def test_every_field_under_rag_and_the_chunking_is_a_tunable_with_a_description() -> None:
    paths = [t.path for t in tunables.tunables()]
    assert len(paths) == len(set(paths))
    assert {"rag.template", "rag.retrieval.k", "rag.sampling.temperature", "chunk.size"} <= set(
        paths
    )
    for t in tunables.tunables():
        assert t.description, f"{t.path} has no description"
        assert t.label
    # every old short name stands for a real path
    assert set(ALIASES.values()) <= set(paths)


@pytest.mark.parametrize("tunable", tunables.tunables(), ids=lambda t: t.path)
def test_each_tunable_is_a_sweep_axis_promotable_and_in_the_api(
    tunable: tunables.Tunable, tmp_path: Path
) -> None:
    value = other_value(tunable)
    sweep = parse_sweep({"axes": {tunable.path: [value]}}, RagSettings())
    [config] = [c for c in sweep.configs if not c.baseline]
    assert config[tunable.path] == value
    assert {p for p, _ in config.values} == {t.path for t in tunables.tunables()}

    # the run's results file names it by path, and promotion carries it into serving
    run = tmp_path / "run"
    run.mkdir()
    configs = [
        {"id": c.id, "baseline": c.baseline, **c.params, "metrics": {}} for c in sweep.configs
    ]
    results = {"run": {}, "configs": configs, "winner": config.id, "rows": []}
    (run / "results.json").write_text(json.dumps(results))
    if tunable.scope == "index":
        with pytest.raises(ValueError, match="re-ingest"):
            promote(tmp_path, run)
        return
    promote(tmp_path, run)
    record = ServingStore(tmp_path).history()[-1]
    assert tunables.flatten(record["params"], "rag.")[tunable.path] == value
    served, _ = ServingStore(tmp_path).effective(RagSettings())
    assert tunables.values_of(served, ChunkSettings())[tunable.path] == value

    # a chat request can set it: OpenAI's own field, the retrieval extension, or `prompt`
    section, _, name = tunable.path.removeprefix("rag.").rpartition(".")
    if section == "retrieval":
        assert name in RetrievalOptions.model_fields
        assert RetrievalOptions.model_validate({name: value}).overrides() == {name: value}
    elif section == "sampling":
        assert name in ChatCompletionRequest.model_fields
    elif section == "verify":
        assert VerifyOptions.model_validate({name: value}).overrides() == {name: value}
    elif section == "conversation":
        assert name in ConversationOptions.model_fields
        assert ConversationOptions.model_validate({name: value}).overrides() == {name: value}
    else:
        assert tunable.path == "rag.template" and "prompt" in ChatCompletionRequest.model_fields


def test_the_api_extension_keeps_each_fields_limits() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        RetrievalOptions.model_validate({"k": 0})
    with pytest.raises(ValueError, match="Extra inputs"):
        RetrievalOptions.model_validate({"colour": 1})


def test_unknown_axes_name_the_known_paths() -> None:
    with pytest.raises(SweepError, match=r"known axes: rag\.template"):
        parse_sweep({"axes": {"tempreature": [0.1]}}, RagSettings())


def test_old_flat_settings_keys_still_load() -> None:
    rag = RagSettings.model_validate({"k": 3, "temperature": 0.4, "min_score": 0.1})
    assert (rag.retrieval.k, rag.sampling.temperature, rag.retrieval.min_score) == (3, 0.4, 0.1)


def test_conversation_tunables_are_left_out_of_ids_at_their_absent_values() -> None:
    """Configurations run before conversations keep their ids; turning them on changes it."""
    before = {"rag.template": "grounded-qa@1", "rag.conversation.condense": "none"}
    before |= {"rag.conversation.history_tokens": 0, "rag.conversation.condense_tokens": 96}
    assert tunables.identifying(before) == {"rag.template": "grounded-qa@1"}
    on = tunables.identifying({**before, "rag.conversation.condense": "concat"})
    assert on == {"rag.template": "grounded-qa@1", "rag.conversation.condense": "concat"}
