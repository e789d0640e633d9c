"""Pick the few-shot examples most like the question from a bank of worked examples.

A small model imitates the example right in front of it, so an example about a similar kind of
question teaches more than a fixed one. The price is a prompt prefix that changes with the
question (less prefix-cache reuse), which is why templates choose ``fixed`` or ``similar``.
The embedder is passed in as a callable: ``prompts`` does not depend on ``ingest``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np

from prompts.template import Example

__all__ = ["Embed", "ExampleBank", "hashed_bag_of_words"]

Embed = Callable[[list[str]], np.ndarray]

# Similarities equal to this many decimals count as a tie, so float noise cannot flip the order.
_TIE_DECIMALS = 6


def _normalize(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    if m.ndim == 1:
        m = m[None, :]
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms == 0, 1, norms)


class ExampleBank:
    """Examples with their questions embedded once, ready to rank against each new question."""

    def __init__(self, examples: Sequence[Example], embed: Embed) -> None:
        self.examples = tuple(examples)
        self._embed = embed
        self._vectors = (
            _normalize(embed([ex.question for ex in self.examples])) if self.examples else None
        )

    def select(self, question: str, k: int) -> list[Example]:
        """The ``k`` examples whose questions are most similar (cosine), most similar first.

        Ties keep the bank's order, so the same question always gets the same prompt.
        """
        if k <= 0 or self._vectors is None:
            return []
        q = _normalize(self._embed([question]))[0]
        sims = np.round(self._vectors @ q, _TIE_DECIMALS)
        order = sorted(range(len(self.examples)), key=lambda i: (-float(sims[i]), i))
        return [self.examples[i] for i in order[:k]]


def hashed_bag_of_words(texts: list[str], dim: int = 256) -> np.ndarray:
    """A dependency-free lexical embedding (hashed word counts, L2-normalized).

    For the CLI and tests, where loading the sentence encoder would cost more than it shows;
    the service passes its real embedder instead.
    """
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            word = word.strip(".,;:!?\"'()[]")
            if word:
                out[row, zlib.crc32(word.encode()) % dim] += 1.0
    return _normalize(out)
