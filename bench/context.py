"""Hit rate@5 and MRR@10 per ``chunk.context`` setting, on two question sets, through the real pipeline.

The retrieval defaults were tuned on 21 questions about three documents (qa/dev.jsonl); this checks
a change to what chunks are indexed with on those and on qa2's answerable questions about six
other documents, so a setting is chosen on what holds for both. One index per setting holds all
documents of both sets plus ../shared/data/bench as distractors (so each set's documents are also
distractors for the other). A hit is a top-5 chunk containing one of the question's evidence
strings after collapsing whitespace and lower-casing.

    .venv/bin/python bench/context.py [--home /tmp/ragtune-context] [--modes none heading ...]

Indexes are kept under ``--home``: a rerun only scores (the pipeline finds every document
unchanged), so delete the folder after changing the pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.context import ContextMode  # noqa: E402
from ingest.embed import load_embedder  # noqa: E402
from ingest.index import VectorIndex  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402
from ingest.search import retrieve  # noqa: E402
from ingest.settings import (  # noqa: E402
    ChunkSettings,
    EmbedSettings,
    IndexSettings,
    IngestSettings,
    RetrievalSettings,
)

DATA = ROOT.parent / "shared" / "data"
K = 5
SETS = {
    "dev": (DATA / "qa" / "dev.jsonl", DATA / "corpus"),
    "qa2": (DATA / "qa2" / "qa.jsonl", DATA / "qa2" / "docs"),
}
RETRIEVAL = {
    "hybrid": RetrievalSettings(),
    "dense": RetrievalSettings(mode="dense"),
    "bm25": RetrievalSettings(mode="bm25"),
}


def norm(s: str) -> str:
    return " ".join(s.split()).lower()


def answerable(path: Path) -> list[dict[str, typing.Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [q for q in rows if q.get("evidence")]


def score(index: VectorIndex, embedder: typing.Any, questions: list[dict], opts: RetrievalSettings):
    hits, rr, misses = 0, 0.0, []
    for q in questions:
        found = retrieve(embedder, index, q["question"], 10, opts)
        evidence = [norm(e) for e in q["evidence"]]
        rank = next(
            (r for r, h in enumerate(found, 1) if any(e in norm(h.text) for e in evidence)), None
        )
        hits += rank is not None and rank <= K
        rr += 1 / rank if rank else 0.0
        if rank is None or rank > K:
            misses.append(q["id"])
    n = len(questions)
    return {"hit@5": round(hits / n, 3), "mrr@10": round(rr / n, 3), "misses": misses}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path("/tmp/ragtune-context"))
    ap.add_argument("--modes", nargs="+", default=list(typing.get_args(ContextMode)))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "context.json")
    args = ap.parse_args()
    embedder = load_embedder(EmbedSettings())
    questions = {name: answerable(qa) for name, (qa, _) in SETS.items()}
    roots = [docs for _, docs in SETS.values()] + [DATA / "bench"]
    settings = IngestSettings(commit_every=100_000, commit_interval_s=3600)
    rows = []
    print(
        f"{'context':<14} {'search':<7}" + "".join(f" {s + ' hit@5':>10} {'MRR':>6}" for s in SETS)
    )
    for mode in args.modes:
        index = VectorIndex.open(
            args.home / mode, IndexSettings(), embed_model=embedder.name, dim=embedder.dim
        )
        t = time.perf_counter()
        summary = Ingestor(index, embedder, ChunkSettings(context=mode), settings).run(roots)
        ingest_s = round(time.perf_counter() - t, 1)
        for search, opts in RETRIEVAL.items():
            row: dict[str, typing.Any] = {"context": mode, "search": search, "ingest_s": ingest_s}
            row["chunks"] = index.stats()["chunks"]
            row["added"] = summary.added
            for name, qs in questions.items():
                row[name] = score(index, embedder, qs, opts)
            rows.append(row)
            cells = "".join(f" {row[s]['hit@5']:>10.3f} {row[s]['mrr@10']:>6.3f}" for s in SETS)
            print(f"{mode:<14} {search:<7}{cells}", flush=True)
        index.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out = {
        "k": K,
        "questions": {name: len(qs) for name, qs in questions.items()},
        "retrieval": {name: opts.model_dump() for name, opts in RETRIEVAL.items()},
        "rows": rows,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
