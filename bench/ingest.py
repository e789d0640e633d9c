"""End-to-end ingestion throughput: ragtune's pipeline vs a plain LangChain pipeline, same machine.

Three measurements over ../shared/data/bench (64 Node.js API Markdown files + one heavy HTML
page), in one process:

1. ragtune: the real ``Ingestor`` (worker-process conversion, chunking, encoder, FAISS + SQLite
   commits) into a fresh data directory, default settings.
2. bare encoder: the same encoder alone on exactly the texts ragtune's encoder read in (1)
   (recorded as it ran): the ceiling for (1) on this machine.
3. LangChain: TextLoader/BSHTMLLoader -> RecursiveCharacterTextSplitter(1000, 200) ->
   HuggingFaceEmbeddings on the same packaged model -> LangChain's FAISS store.

Chunk counts differ between (1) and (3), so the headline is source megabytes per second. After the
timed part, ../shared/data/corpus is added to both indexes (untimed) and hit rate@5 on
../shared/data/qa/dev.jsonl is measured for both, so speed is compared at known quality.

    .venv/bin/python bench/ingest.py [--skip-langchain] [--out bench/results/ingest.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.embed import load_embedder  # noqa: E402
from ingest.index import VectorIndex  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402
from ingest.scan import scan  # noqa: E402
from ingest.settings import ChunkSettings, EmbedSettings, IndexSettings, IngestSettings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
K = 5


def norm(s: str) -> str:
    return " ".join(s.split())


def questions() -> list[dict]:
    lines = (DATA / "qa" / "dev.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def hit_rate(retrieve) -> tuple[float, list[str]]:
    qs = questions()
    misses = []
    for q in qs:
        texts = [norm(t) for t in retrieve(q["question"])]
        if not any(norm(e) in t for e in q["evidence"] for t in texts):
            misses.append(q["id"])
    return 1 - len(misses) / len(qs), misses


def source_stats(root: Path) -> tuple[int, int]:
    entries, _ = scan([root])
    return len(entries), sum(e.size for e in entries)


class Recording:
    """The encoder, keeping every text it is asked to embed (a list append: no measurable cost)."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.name, self.dim, self.max_tokens = inner.name, inner.dim, inner.max_tokens
        self.tokenizer = inner.tokenizer
        self.texts: list[str] = []

    def encode(self, texts):
        self.texts.extend(texts)
        return self._inner.encode(texts)


def run_ragtune(home: Path) -> tuple[dict, list[str], object, object]:
    embedder = load_embedder(EmbedSettings())
    embedder.encode(["warm-up"])
    index = VectorIndex.open(
        home / "index", IndexSettings(), embed_model=embedder.name, dim=embedder.dim
    )
    recording = Recording(embedder)
    ingestor = Ingestor(index, recording, ChunkSettings(), IngestSettings())
    t = time.perf_counter()
    summary = ingestor.run([DATA / "bench"])
    seconds = time.perf_counter() - t
    return (
        {"seconds": seconds, "chunks": summary.chunks, "docs": summary.added},
        recording.texts,  # what the encoder read: chunk texts, and each distinct context once
        index,
        embedder,
    )


def run_encoder(embedder, texts: list[str]) -> dict:
    t = time.perf_counter()
    embedder.encode(texts)
    return {"seconds": time.perf_counter() - t, "chunks": len(texts)}


def langchain_load(root: Path):
    from langchain_community.document_loaders import BSHTMLLoader, TextLoader

    docs = []
    entries, _ = scan([root])
    for e in entries:
        if e.path.suffix in {".html", ".htm"}:
            docs.extend(BSHTMLLoader(str(e.path), open_encoding="utf-8").load())
        else:
            docs.extend(TextLoader(str(e.path), encoding="utf-8").load())
    return docs


def run_langchain() -> tuple[dict, object]:
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from ingest.embed import default_model_path

    embeddings = HuggingFaceEmbeddings(
        model_name=str(default_model_path()), encode_kwargs={"normalize_embeddings": True}
    )
    embeddings.embed_query("warm-up")
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    t = time.perf_counter()
    chunks = splitter.split_documents(langchain_load(DATA / "bench"))
    t_split = time.perf_counter() - t
    store = FAISS.from_documents(chunks, embeddings)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "chunks": len(chunks), "load_split_seconds": t_split}, (
        store,
        splitter,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--skip-langchain", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest.json")
    args = ap.parse_args()
    n_docs, n_bytes = source_stats(DATA / "bench")
    mb = n_bytes / 1e6
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ours, texts, index, embedder = run_ragtune(Path(tmp))
        results["ragtune"] = ours
        results["bare encoder"] = run_encoder(embedder, texts)
        Ingestor(index, embedder, ChunkSettings(), IngestSettings()).run([DATA / "corpus"])
        ours["hit@5"], ours["misses"] = hit_rate(
            lambda q: [h.text for h in index.search(embedder.encode([q]), K)[0]]
        )
        index.close()
    if not args.skip_langchain:
        lc, (store, splitter) = run_langchain()
        store.add_documents(splitter.split_documents(langchain_load(DATA / "corpus")))
        lc["hit@5"], lc["misses"] = hit_rate(
            lambda q: [d.page_content for d in store.similarity_search(q, k=K)]
        )
        results["langchain"] = lc
    for r in results.values():
        r["mb_per_s"] = mb / r["seconds"]
        r["docs_per_s"] = n_docs / r["seconds"]
        r["chunks_per_s"] = r["chunks"] / r["seconds"]
    ratios = {
        "ragtune / bare encoder": results["ragtune"]["mb_per_s"]
        / results["bare encoder"]["mb_per_s"]
    }
    if "langchain" in results:
        ratios["ragtune / langchain"] = (
            results["ragtune"]["mb_per_s"] / results["langchain"]["mb_per_s"]
        )

    print(f"\nsource: {n_docs} documents, {mb:.2f} MB ({DATA / 'bench'})")
    print(
        f"{'pipeline':14s} {'seconds':>8s} {'chunks':>7s} {'docs/s':>8s} {'chunks/s':>9s} {'MB/s':>7s} {'hit@5':>6s}"
    )
    for name, r in results.items():
        hit = f"{r['hit@5']:.3f}" if "hit@5" in r else "-"
        print(
            f"{name:14s} {r['seconds']:8.1f} {r['chunks']:7d} {r['docs_per_s']:8.2f} "
            f"{r['chunks_per_s']:9.1f} {r['mb_per_s']:7.4f} {hit:>6s}"
        )
    for name, v in ratios.items():
        print(f"{name}: {v:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "source": {"path": str(DATA / "bench"), "documents": n_docs, "bytes": n_bytes},
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
        "results": results,
        "ratios": ratios,
    }
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
