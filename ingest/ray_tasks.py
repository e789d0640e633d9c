"""The Ray engine's worker side: the conversion-and-chunking task and the encoder actor.

Kept apart from ``ingest.ray_engine`` (the driver) so a Ray worker imports only what it runs:
conversion, chunking and the encoder, never the index store. Nothing here imports ``ray``:
``convert_and_chunk`` is what Ray Data calls with batches of files (numpy format, one row per
document: ``path`` and ``bytes`` in, ``path`` and ``item`` out); ``Encoder`` is the body of the
encoder actors, which the driver wraps with ``ray.remote``.

An ``item`` is the pickled outcome of one document, which only ragtune's own processes of one
run exchange: a ``Failed``, or ``(Converted, chunks)``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.embed import Embedder, counting_tokenizer, default_model_path, load_embedder
from ingest.faults import fault_point
from ingest.model import Chunk
from ingest.pool import ConversionPool, Converted, Failed
from ingest.prepare import DocumentPrep
from ingest.settings import ChunkSettings, EmbedSettings, IngestSettings

Batch = dict[str, Any]


@dataclass
class PrepSpec:
    """What a worker needs to chunk like the driver: its settings and the encoder's window."""

    embed: EmbedSettings
    chunking: ChunkSettings
    settings: IngestSettings
    max_tokens: int

    def key(self) -> str:
        parts = (self.embed, self.chunking, self.settings)
        return "|".join(m.model_dump_json() for m in parts) + f"|{self.max_tokens}"

    def prep(self, embedder: Embedder | None = None) -> DocumentPrep:
        tokenizer = (
            embedder.tokenizer
            if embedder is not None
            else counting_tokenizer(self.embed.path or default_model_path())
        )
        return DocumentPrep(tokenizer, self.max_tokens, self.chunking, self.settings)


# Per worker process: Ray reuses a task's process for later tasks, so the conversion child and
# the tokenizer start once per process, not once per batch.
_POOLS: dict[tuple[float, int, float, int], ConversionPool] = {}
_PREPS: dict[str, DocumentPrep] = {}


def _pool(s: IngestSettings) -> ConversionPool:
    key = (s.timeout_s, s.memory_mb, s.max_file_mb, s.max_text_chars)
    if key not in _POOLS:
        # One child per task process: Ray runs as many tasks at once as the cluster has CPUs.
        _POOLS[key] = ConversionPool(1, *key)
    return _POOLS[key]


def convert_and_chunk(batch: Batch, spec: PrepSpec) -> Batch:
    """Convert (in a limited child process) and chunk each file of ``batch``."""
    key = spec.key()
    if key not in _PREPS:
        _PREPS[key] = spec.prep()
    prep = _PREPS[key]
    paths = [str(p) for p in batch["path"]]
    tasks = [(Path(p), bytes(b)) for p, b in zip(paths, batch["bytes"], strict=True)]
    outcomes = {str(o.path): o for o in _pool(spec.settings).imap(tasks)}
    items = []
    for p in paths:
        outcome = outcomes[p]
        item: Any = outcome
        if isinstance(outcome, Converted):
            chunks = prep.chunks(outcome.document)
            if isinstance(chunks, str):
                item = Failed(outcome.path, outcome.content_hash, chunks)
            else:
                item = (outcome, chunks)
        items.append(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
    return {"path": np.array(paths, dtype=object), "item": np.array(items, dtype=object)}


class Encoder:
    """An encoder actor's body: loads the model once, embeds groups of documents' chunks.

    The driver forms the groups exactly as the local ``Batcher`` does, so each encoder call
    reads the same texts together as a local run would, and int8 vectors come out the same.
    """

    def __init__(self, spec: PrepSpec) -> None:
        self.embedder = load_embedder(spec.embed)
        self.prep = spec.prep(self.embedder)

    def embed(self, docs: list[tuple[str | None, list[Chunk]]]) -> tuple[list[list[str]], Any]:
        """Each document's index texts, and one vector per chunk of all ``docs``, in order."""
        fault_point("ray-encode")  # tests kill the actor here (RAGTUNE_FAULT=ray-encode:once)
        texts = [self.prep.index_texts(title, chunks) for title, chunks in docs]
        return texts, self.prep.embed(self.embedder.encode, docs)
