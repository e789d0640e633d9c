"""Hit rate@5 and MRR@10 per chunking setting (context x size x overlap), on two question sets.

The retrieval defaults were tuned on 21 questions about three documents (qa/dev.jsonl); this checks
a change to what chunks are indexed with on those and on qa2's answerable questions about six
other documents, so a setting is chosen on what holds for both. One index per setting holds all
documents of both sets plus ../shared/data/bench as distractors (so each set's documents are also
distractors for the other). A hit is a top-5 chunk containing one of the question's evidence
strings after collapsing whitespace and lower-casing; "window@5" is the same test on the
passages the model reads (each hit's context window, the serving ``window_tokens``). Each setting
is compared with the grid's first one by a paired bootstrap over both sets' questions together.

    .venv/bin/python bench/context.py [--home /tmp/ragtune-context] [--modes none heading ...]
        [--sizes 64 96 128] [--overlaps 0 16]

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

from eval.stats import paired_bootstrap  # noqa: E402
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
from ingest.windows import build_windows  # noqa: E402

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
    hits, rr, misses, in_window = 0, 0.0, [], []
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
        windows = build_windows(found[:K], index, opts.window_tokens)
        in_window.append(int(any(e in norm(w.text) for w in windows for e in evidence)))
    n = len(questions)
    return {
        "hit@5": round(hits / n, 3),
        "window@5": round(sum(in_window) / n, 3),
        "mrr@10": round(rr / n, 3),
        "misses": misses,
        "hit": [int(q["id"] not in misses) for q in questions],
        "window": in_window,
    }


def versus(row: dict, base: dict, key: str) -> str:
    """Paired bootstrap of ``row`` against ``base`` over both sets' questions: "+0.027 [...]"."""
    a = [x for name in SETS for x in row[name][key]]
    b = [x for name in SETS for x in base[name][key]]
    c = paired_bootstrap(a, b)
    return f"{c.diff:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path("/tmp/ragtune-context"))
    ap.add_argument("--modes", nargs="+", default=list(typing.get_args(ContextMode)))
    ap.add_argument("--sizes", nargs="+", type=int, default=[ChunkSettings().size])
    ap.add_argument("--overlaps", nargs="+", type=int, default=[ChunkSettings().overlap])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "context.json")
    args = ap.parse_args()
    embedder = load_embedder(EmbedSettings())
    questions = {name: answerable(qa) for name, (qa, _) in SETS.items()}
    roots = [docs for _, docs in SETS.values()] + [DATA / "bench"]
    settings = IngestSettings(commit_every=100_000, commit_interval_s=3600)
    grid = [
        ChunkSettings(context=mode, size=size, overlap=overlap)
        for mode in args.modes
        for size in args.sizes
        for overlap in args.overlaps
    ]
    rows: list[dict[str, typing.Any]] = []
    first: dict[str, dict[str, typing.Any]] = {}  # search -> the grid's first row
    print(
        f"{'context':<14} {'size':>4} {'ovl':>3} {'search':<7}"
        + "".join(f" {s + ' hit@5':>10} {'win@5':>6} {'MRR':>6}" for s in SETS)
        + f" {'hit@5 vs first [95% CI]':>26} {'win@5 vs first':>26}"
    )
    for chunk in grid:
        name = f"{chunk.context}-s{chunk.size}-o{chunk.overlap}"
        index = VectorIndex.open(
            args.home / name, IndexSettings(), embed_model=embedder.name, dim=embedder.dim
        )
        t = time.perf_counter()
        summary = Ingestor(index, embedder, chunk, settings).run(roots)
        ingest_s = round(time.perf_counter() - t, 1)
        for search, opts in RETRIEVAL.items():
            row: dict[str, typing.Any] = {
                "context": chunk.context,
                "size": chunk.size,
                "overlap": chunk.overlap,
                "search": search,
                "ingest_s": ingest_s,
                "chunks": index.stats()["chunks"],
                "added": summary.added,
            }
            for set_name, qs in questions.items():
                row[set_name] = score(index, embedder, qs, opts)
            base = first.setdefault(search, row)
            row["hit_vs_first"] = versus(row, base, "hit")
            row["window_vs_first"] = versus(row, base, "window")
            rows.append(row)
            cells = "".join(
                f" {row[s]['hit@5']:>10.3f} {row[s]['window@5']:>6.3f} {row[s]['mrr@10']:>6.3f}"
                for s in SETS
            )
            print(
                f"{chunk.context:<14} {chunk.size:>4} {chunk.overlap:>3} {search:<7}{cells}"
                f" {row['hit_vs_first']:>26} {row['window_vs_first']:>26}",
                flush=True,
            )
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
