"""What a converted document becomes before the writer: chunks, the texts BM25 reads, vectors.

Shared by the local pipeline (``ingest.pipeline``, one process) and the Ray engine
(``ingest.ray_engine``: chunking in tasks, embedding in an actor pool), so both refuse the same
documents with the same reasons and produce the same chunks, texts and vectors. It needs the
encoder's tokenizer and window, not the encoder: a Ray chunking task loads no model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
from tokenizers import Tokenizer

from ingest.chunk import chunk_document
from ingest.context import PREFIX_TOKENS, context_prefix, contextual_text
from ingest.model import Chunk, Document
from ingest.pool import text_too_long
from ingest.settings import ChunkSettings, IngestSettings

Encode = Callable[[Sequence[str]], np.ndarray]  # an ``Embedder.encode``


class DocumentPrep:
    """Chunks documents (with the per-document limits) and embeds chunks as ``chunking`` says."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        max_tokens: int,
        chunking: ChunkSettings,
        settings: IngestSettings,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens  # the encoder's window in content tokens
        self.chunking = chunking
        self.settings = settings
        self._count_tokens = functools.lru_cache(maxsize=4096)(self._count_tokens_uncached)

    def _count_tokens_uncached(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def chunks(self, doc: Document) -> list[Chunk] | str:
        """The document's chunks, or why it is refused: no text, or over a per-document limit.

        Checked before anything is embedded, so an outsized document costs no encoder time and
        never holds up the rest of the run at the writer.
        """
        limit = self.settings.max_text_chars
        if len(doc.text) > limit:
            return text_too_long(len(doc.text), limit)
        chunks = self._chunk(doc)
        if not chunks:
            return "no text to index"
        if len(chunks) > self.settings.max_chunks:
            return (
                f"too many chunks ({len(chunks):,} > limit {self.settings.max_chunks:,}; "
                "ingest.max_chunks)"
            )
        return chunks

    def _chunk(self, doc: Document) -> list[Chunk]:
        # The context prefix shares the encoder's window: keep room for it beside the text.
        room = self.max_tokens - (PREFIX_TOKENS if self.chunking.context != "none" else 0)
        return chunk_document(
            doc,
            self.tokenizer,
            size=min(self.chunking.size, room),
            overlap=self.chunking.overlap,
        )

    def index_texts(self, title: str | None, chunks: Sequence[Chunk]) -> list[str]:
        """What BM25 reads for each chunk of a document titled ``title``: prefix, then text."""
        mode = self.chunking.context
        return [contextual_text(mode, title, c, self._count_tokens) for c in chunks]

    def embed(
        self, encode: Encode, docs: Sequence[tuple[str | None, Sequence[Chunk]]]
    ) -> np.ndarray:
        """One vector per chunk of ``docs`` (title, chunks), in order, as ``chunk`` settings say.

        ``prefix``: the encoder reads each chunk's BM25 text. ``added``: it reads each chunk's
        text, and each distinct prefix once; a chunk's vector is the normalized sum, the
        prefix's weighted. A section's chunks share one prefix, so the encoder reads it once
        instead of once per chunk.
        """
        chunking = self.chunking
        if chunking.context == "none" or chunking.context_embedding == "prefix":
            return encode([t for title, cs in docs for t in self.index_texts(title, cs)])
        prefixes = [
            context_prefix(chunking.context, title, c, self._count_tokens)
            for title, cs in docs
            for c in cs
        ]
        vectors = encode([c.text for _, cs in docs for c in cs]).astype(np.float32)
        distinct = sorted(set(prefixes) - {""})
        if distinct:
            encoded = encode(distinct)
            row = {p: i for i, p in enumerate(distinct)}
            with_prefix = [i for i, p in enumerate(prefixes) if p]
            picks = [row[prefixes[i]] for i in with_prefix]
            vectors[with_prefix] += chunking.context_weight * encoded[picks]
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
        return vectors
