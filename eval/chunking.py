"""Re-chunked copies of the serving index, so a sweep can compare chunk sizes and overlaps.

Chunking is decided at ingest time, so a configuration with other chunk settings needs its own
index: the files behind the serving index's documents are ingested again, through the same
pipeline, into ``HOME/eval/indexes/chunk{size}-overlap{overlap}``. The copy is incremental like any
ingest (an unchanged file is not re-embedded on the next run) and follows deletions (``sync``),
so repeated sweeps pay once. Documents whose file is gone cannot be re-chunked; they are counted
so the report can say so. Adopting a winning chunking is an operator's re-ingest, not a promotion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ingest.embed import Embedder
from ingest.index import VectorIndex
from ingest.pipeline import Ingestor
from ingest.records import container_of
from service.settings import Settings


@dataclass(frozen=True)
class ChunkedIndex:
    index: VectorIndex
    tag: str  # names the copy in cache keys: its version numbers are its own
    missing: int  # serving documents whose file is gone (not in the copy)


def chunked_index(
    settings: Settings, embedder: Embedder, serving: VectorIndex, size: int, overlap: int
) -> ChunkedIndex:
    """The serving index's files chunked with (``size``, ``overlap``), brought up to date."""
    tag = f"chunk{size}-overlap{overlap}"
    files = sorted({container_of(d.source) for d in serving.documents()})
    present = [Path(f) for f in files if Path(f).is_file()]
    index = VectorIndex.open(
        settings.home / "eval" / "indexes" / tag,
        settings.index.model_copy(update={"keep_versions": 1}),  # a copy needs no history
        embed_model=embedder.name,
        dim=embedder.dim,
    )
    try:
        chunk = settings.chunk.model_copy(update={"size": size, "overlap": overlap})
        if present:
            Ingestor(index, embedder, chunk, settings.ingest).run(present, sync=True)
    except BaseException:
        index.close()
        raise
    return ChunkedIndex(index, tag, len(files) - len(present))
