"""``ragtune eval retrieval``: the real encoder over a small real index, every kind of miss."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from eval.cli import main
from eval.dataset import Case, load_dataset, write_dataset
from eval.retrieval import DatasetReport, diagnose, is_answerable
from ingest.embed import Embedder
from ingest.index import VectorIndex
from ingest.settings import EmbedSettings, RetrievalSettings
from service import rag
from service.settings import RagSettings
from tests.conftest import open_store

QUESTION = "Which models use ALiBi embeddings?"


@pytest.fixture(scope="module")
def index(service_home: Path, embedder: Embedder) -> Iterator[VectorIndex]:
    store = open_store(service_home / "index", embedder)
    yield store
    store.close()


def serving(k: int) -> RagSettings:
    return RagSettings(retrieval=RetrievalSettings(k=k))


def case(cid: str, question: str, evidence: tuple[str, ...], **extra: object) -> Case:
    return Case(cid, question, "-", evidence=evidence, extra={"source": "llm-guide.txt", **extra})


def run(embedder: Embedder, index: VectorIndex, cases: list[Case], k: int) -> DatasetReport:
    return diagnose(embedder, index, cases, serving(k), dataset="t", depth=100)


def test_a_miss_gets_its_rank_and_the_chunks_that_outranked_it(
    embedder: Embedder, index: VectorIndex
) -> None:
    deep = rag.retrieve_serving(embedder, index, QUESTION, serving(100))
    third = deep[2]
    report = run(embedder, index, [case("c", QUESTION, (third.text,))], k=1)
    assert (report.answerable, report.hit_rate, report.mrr) == (1, 0.0, 0.0)
    [miss] = report.misses
    assert (miss.reason, miss.rank, miss.outranked_count) == ("ranked", 3, 2)
    assert [o.text for o in miss.outranked] == [" ".join(h.text.split())[:120] for h in deep[:2]]
    assert all(o.source == Path(h.source).name for o, h in zip(miss.outranked, deep, strict=False))
    assert miss.outranked[0].score == round(deep[0].score, 4)
    # at k=3 the same case is a hit at rank 3
    report = run(embedder, index, [case("c", QUESTION, (third.text,))], k=3)
    assert (report.hit_rate, report.mrr, report.misses) == (1.0, pytest.approx(1 / 3), [])


def test_misses_without_a_rank_say_why(embedder: Embedder, index: VectorIndex) -> None:
    doc = next(d for d in index.documents() if d.source.endswith("llm-guide.txt"))
    first, second = sorted(index.chunks(doc.doc_id), key=lambda c: c.start)[3:5]
    # the end of one chunk and the start of the next: in the text, in no one chunk
    across = " ".join(first.text.split()[-3:] + second.text.split()[:3])
    cases = [
        case("split", "What comes at this boundary?", (across,)),
        case(
            "absent", "What is the capital of Atlantis?", ("the capital of atlantis is poseidonia",)
        ),
        case("elsewhere", QUESTION, ("no such phrase in this index",), source="no-such.pdf"),
        case("unanswerable", "Anything?", (), kind="unanswerable"),
    ]
    report = run(embedder, index, cases, k=5)
    assert (report.answerable, report.unanswerable) == (3, 1)
    reasons = {m.id: (m.reason, m.rank) for m in report.misses}
    assert reasons == {
        "split": ("split", None),
        "absent": ("not_in_text", None),
        "elsewhere": ("no_document", None),
    }
    # a miss with no rank lists the top chunks retrieved instead (those above the floor)
    assert all(m.outranked_count is None for m in report.misses)
    elsewhere = next(m for m in report.misses if m.id == "elsewhere")
    top = rag.retrieve_serving(embedder, index, QUESTION, serving(10))
    assert [o.text for o in elsewhere.outranked] == [" ".join(h.text.split())[:120] for h in top]


def test_evidence_the_floor_drops_is_reported_as_under_the_floor(
    embedder: Embedder, index: VectorIndex
) -> None:
    question = "zlib deflate compression level"
    floorless = RagSettings(retrieval=RetrievalSettings(k=100, min_score=None))
    deep = rag.retrieve_serving(embedder, index, question, floorless)
    qvec = embedder.encode([question])[0]
    cosine = {h.chunk_id: float(index.vectors([h.chunk_id])[0] @ qvec) for h in deep}
    low = min(deep, key=lambda h: cosine[h.chunk_id])
    floor = cosine[low.chunk_id] + 0.01
    floored = RagSettings(retrieval=RetrievalSettings(k=1, min_score=floor))
    report = diagnose(
        embedder, index, [case("low", question, (low.text,))], floored, dataset="t", depth=100
    )
    [miss] = report.misses
    assert miss.reason == "below_floor" and miss.rank == deep.index(low) + 1
    assert report.found_at_depth == 0.0


def test_unanswerable_cases_are_counted_not_scored() -> None:
    assert not is_answerable(Case("a", "q", "-", evidence=("x",), extra={"kind": "unanswerable"}))
    assert not is_answerable(Case("b", "q", "-", evidence=(" ",)))
    assert is_answerable(Case("c", "q", "-", evidence=("x",)))


def test_the_command_reports_each_dataset_as_a_table_and_json(
    service_home: Path,
    shared_data: Path,
    embed_settings: EmbedSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RAGTUNE_EMBED__CACHE_DIR", str(embed_settings.cache_dir))
    monkeypatch.delenv("RAGTUNE_CONFIG", raising=False)
    dev = shared_data / "qa" / "dev.jsonl"
    extra = tmp_path / "extra.jsonl"
    write_dataset(extra, [*load_dataset(dev)[:2], Case("u", "Who?", "-", extra={"kind": "x"})])
    argv = ["eval", "retrieval", "--home", str(service_home), "--dataset", str(dev)]
    argv += ["--dataset", str(extra), "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:4] == ["dataset", "cases", "skip", "hit@k"]
    assert "dev.jsonl" in table and "extra.jsonl" in table
    body = json.loads((tmp_path / "out" / "retrieval.json").read_text())
    dev_report, extra_report = body["datasets"]
    assert (dev_report["answerable"], dev_report["k"], dev_report["depth"]) == (21, 5, 100)
    assert (extra_report["answerable"], extra_report["unanswerable"]) == (2, 1)
    # dev.jsonl asks about debian-python-policy.html, which this home does not hold
    policy = [m for m in dev_report["misses"] if m["reason"] == "no_document"]
    assert len(policy) == 2 and dev_report["reasons"]["no_document"] == 2
    assert body["retrieval"]["k"] == 5 and body["index_version"] >= 1
    # -k and --json: the same numbers printed, at another k
    assert main([*argv[:-2], "-k", "1", "--json"]) == 0
    at_one = json.loads(capsys.readouterr().out)
    assert at_one["datasets"][0]["k"] == 1
    assert at_one["datasets"][0]["hit_rate"] <= dev_report["hit_rate"]


def test_a_home_with_nothing_ingested_is_a_usage_error(
    tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = shared_data / "qa" / "dev.jsonl"
    argv = ["eval", "retrieval", "--home", str(tmp_path), "--dataset", str(dev)]
    assert main(argv) == 2
    assert "nothing ingested" in capsys.readouterr().err
