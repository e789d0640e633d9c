"""Hit rate@5 and MRR per retrieval mode on ../shared/data/qa/dev.jsonl, through the real pipeline.

The BEIR benchmark (bench/beir.py) chooses fusion and weights on SciFact's training split; this
checks the choice on the questions ragtune's own corpus is about, with ../shared/data/bench as
distractors, so a default that helps scientific abstracts does not quietly hurt prose and docs.
A hit is a top-5 chunk containing one of the question's evidence strings.

    .venv/bin/python bench/modes.py [--home /tmp/ragtune-modes]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def norm(s: str) -> str:
    return " ".join(s.split())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path("/tmp/ragtune-modes"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "modes.json")
    args = ap.parse_args()
    embedder = load_embedder(EmbedSettings())
    index = VectorIndex.open(
        args.home / "index", IndexSettings(), embed_model=embedder.name, dim=embedder.dim
    )
    settings = IngestSettings(commit_every=100_000, commit_interval_s=3600)
    Ingestor(index, embedder, ChunkSettings(), settings).run([DATA / "corpus", DATA / "bench"])
    lines = (DATA / "qa" / "dev.jsonl").read_text().splitlines()
    questions = [json.loads(line) for line in lines if line.strip()]
    configs = [
        ("dense", RetrievalSettings(mode="dense")),
        ("bm25", RetrievalSettings(mode="bm25")),
        *[
            (f"hybrid {f} w={w:g}", RetrievalSettings(mode="hybrid", fusion=f, dense_weight=w))
            for f in ("rrf", "blend")
            for w in (0.3, 0.5, 0.6, 0.7)
        ],
    ]
    rows = []
    print(f"{len(questions)} questions, {index.stats()['chunks']} chunks")
    print(f"{'config':<20} {'hit@5':>6} {'MRR@10':>7}  misses")
    for name, opts in configs:
        hits, rr, misses = 0, 0.0, []
        for q in questions:
            found = retrieve(embedder, index, q["question"], 10, opts)
            evidence = [norm(e) for e in q["evidence"]]
            rank = next(
                (r for r, h in enumerate(found, 1) if any(e in norm(h.text) for e in evidence)),
                None,
            )
            hits += rank is not None and rank <= K
            rr += 1 / rank if rank else 0.0
            if rank is None or rank > K:
                misses.append(q["id"])
        row = {
            "config": name,
            "hit@5": round(hits / len(questions), 3),
            "mrr@10": round(rr / len(questions), 3),
            "misses": misses,
        }
        rows.append(row)
        print(f"{name:<20} {row['hit@5']:>6.3f} {row['mrr@10']:>7.3f}  {' '.join(misses)}")
    index.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"questions": len(questions), "k": K, "rows": rows}, indent=2) + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
