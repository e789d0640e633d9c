"""BEIR-style corpus.jsonl ingest: one document per line, ``_id`` kept, changes per record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.embed import Embedder
from ingest.index import VectorIndex
from ingest.records import read_records
from ingest.scan import source_of
from tests.conftest import make_ingestor, open_store


def write_jsonl(path: Path, rows: list[dict[str, object] | str]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def index(tmp_path: Path, embedder: Embedder) -> Iterator[VectorIndex]:
    idx = open_store(tmp_path / "index", embedder)
    yield idx
    idx.close()


def test_read_records_reports_bad_lines(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"_id": "a", "title": "T", "text": "x"},
            "{not json",
            {"title": "no id"},
            {"_id": 7, "text": "int ids are fine"},
            {"_id": "a", "text": "duplicate"},
            "",
        ],
    )
    records, problems = read_records(path)
    assert [(r.id, r.line) for r in records] == [("a", 1), ("7", 4)]
    assert [label for label, _ in problems] == ["line-2", "line-3", "line-5"]
    assert "already used on line 1" in problems[2][1]


def test_corpus_jsonl_lifecycle(tmp_path: Path, index: VectorIndex, embedder: Embedder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    rows: list[dict[str, object] | str] = [
        {
            "_id": "d1",
            "title": "Aspirin and headaches",
            "text": "Aspirin relieves tension headaches.",
        },
        {"_id": "d2", "title": "Vitamin D", "text": "Sunlight helps the skin make vitamin D."},
        {"_id": "d3", "title": "Sleep", "text": "Adults need seven to nine hours of sleep."},
        "{broken",
    ]
    corpus = write_jsonl(docs / "corpus.jsonl", rows)
    (docs / "note.md").write_text("# Note\n\nA plain file beside the corpus.", encoding="utf-8")
    ingestor = make_ingestor(index, embedder)

    first = ingestor.run([docs])
    assert (first.added, first.quarantined) == (4, 1)  # 3 records + note.md; the bad line held
    by_id = {d.doc_id: d for d in index.documents()}
    file_source = source_of(corpus)
    assert {"d1", "d2", "d3"} <= set(by_id)
    assert by_id["d2"].source == f"{file_source}#d2" and by_id["d2"].kind == "record"
    assert by_id["d2"].title == "Vitamin D"
    [held] = index.quarantined()
    assert held.source == f"{file_source}#line-4" and "not JSON" in held.reason
    [hit] = index.search_lexical(["sunlight vitamin"], 1)[0]
    assert hit.doc_id == "d2" and hit.heading == ("Vitamin D",)
    assert index.search(embedder.encode(["how long should I sleep"]), 1)[0][0].doc_id == "d3"
    assert index.verify() == []

    # Unchanged file: nothing to do.
    again = ingestor.run([docs])
    assert (again.added, again.updated, again.removed, again.version) == (0, 0, 0, first.version)

    # d1 edited, d3 gone, the broken line fixed into a new record d4.
    rows[0] = {"_id": "d1", "title": "Aspirin", "text": "Aspirin thins the blood."}
    rows[2:] = [{"_id": "d4", "title": "Coffee", "text": "Caffeine blocks adenosine receptors."}]
    write_jsonl(corpus, rows)
    third = ingestor.run([docs])
    assert (third.added, third.updated, third.removed, third.unchanged) == (1, 1, 1, 2)
    ids = {d.doc_id for d in index.documents()}
    assert {"d1", "d2", "d4"} <= ids and "d3" not in ids
    assert index.quarantined() == []
    assert index.search_lexical(["headaches"], 5)[0] == []
    assert index.search_lexical(["blood"], 1)[0][0].doc_id == "d1"
    assert index.verify() == []

    # The file disappears: --sync removes every record of it, and only those.
    corpus.unlink()
    gone = ingestor.run([docs], sync=True)
    assert gone.removed == 3
    assert [d.source for d in index.documents()] == [source_of(docs / "note.md")]
    assert index.verify() == []


def test_scifact_sample_keeps_ids(
    shared_data: Path, tmp_path: Path, index: VectorIndex, embedder: Embedder
) -> None:
    lines = (shared_data / "scifact" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    sample = write_jsonl(tmp_path / "corpus.jsonl", list(lines[:40]))
    summary = make_ingestor(index, embedder).run([sample])
    wanted = {json.loads(line)["_id"] for line in lines[:40]}
    assert summary.added == 40 and summary.quarantined == 0
    assert {d.doc_id for d in index.documents()} == wanted
    first = json.loads(lines[0])
    hits = index.search_lexical([first["title"]], 3)[0]
    assert hits[0].doc_id == first["_id"]


def test_an_id_used_by_another_corpus_is_quarantined_not_fatal(
    tmp_path: Path, index: VectorIndex, embedder: Embedder
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    write_jsonl(docs / "a.jsonl", [{"_id": "x1", "title": "Owls", "text": "Owls hunt at night."}])
    write_jsonl(
        docs / "b.jsonl",
        [
            {"_id": "x1", "title": "Bats", "text": "Bats use echolocation."},
            {"_id": "x2", "title": "Moths", "text": "Moths fly towards light."},
        ],
    )
    summary = make_ingestor(index, embedder).run([docs])
    assert (summary.added, summary.quarantined) == (2, 1)
    [held] = index.quarantined()
    assert held.source == f"{source_of(docs / 'b.jsonl')}#x1"
    assert "already the document id of" in held.reason and "a.jsonl#x1" in held.reason
    assert {d.doc_id for d in index.documents()} == {"x1", "x2"}
    assert index.search_lexical(["owls"], 1)[0][0].doc_id == "x1" and index.verify() == []
