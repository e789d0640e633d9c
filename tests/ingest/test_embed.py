"""Tests for the sentence encoders: the ONNX paths must match the sentence-transformers reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.embed import Embedder, EmbedderError, load_embedder
from ingest.settings import EmbedSettings

DIM = 384
MQA = (
    "Multi-Query Attention (MQA) is a variation of the standard multi-head attention mechanism "
    "used in transformer models."
)
QUERY = "In MQA, which vectors are shared across attention heads?"


@pytest.fixture(scope="module")
def sentences(shared_data: Path) -> list[str]:
    """Real sentences from the LLM guide, of very different lengths, plus extremes."""
    lines = (shared_data / "corpus" / "llm-guide.txt").read_text(encoding="utf-8").splitlines()
    prose = [ln.strip() for ln in lines if len(ln.split()) >= 8]
    attention = [ln for ln in prose if "attention" in ln.lower()]  # near misses for the query
    prose = prose[:30] + [ln for ln in attention if ln not in prose[:30]]
    assert sum(ln.startswith(MQA) for ln in prose) == 1
    assert len(prose) >= 40
    longest = " ".join(prose[:12])  # far beyond the 256-token window: truncated
    return [*prose, "Attention", longest, "GPU"]


@pytest.fixture(scope="module")
def int8_vectors(embedder: Embedder, sentences: list[str]) -> np.ndarray:
    return embedder.encode(sentences)


@pytest.fixture(scope="module")
def torch_embedder(embed_settings: EmbedSettings) -> Embedder:
    return load_embedder(embed_settings.model_copy(update={"backend": "torch"}))


def assert_unit_float32(vectors: np.ndarray, n: int) -> None:
    assert vectors.shape == (n, DIM)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_int8_vectors_are_normalized_float32(
    embedder: Embedder, sentences: list[str], int8_vectors: np.ndarray
) -> None:
    assert (embedder.dim, embedder.max_tokens) == (DIM, 254)
    vectors = int8_vectors
    assert_unit_float32(vectors, len(sentences))
    assert len({v.tobytes() for v in vectors}) == len(sentences)  # distinct texts, distinct vectors


def test_empty_input(embedder: Embedder) -> None:
    vectors = embedder.encode([])
    assert vectors.shape == (0, DIM)
    assert vectors.dtype == np.float32


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_order_preserved_across_length_sorted_batches(
    embed_settings: EmbedSettings, sentences: list[str], backend: str
) -> None:
    # The smallest token budget forces many batches; each is built in ascending length order.
    small = load_embedder(
        embed_settings.model_copy(update={"batch_tokens": 256, "backend": backend})
    )
    texts = sentences[::-1]  # long and short interleaved differently from the length order
    batched = small.encode(texts)
    alone = np.concatenate([small.encode([t]) for t in texts])
    assert_unit_float32(batched, len(texts))
    similarity = batched @ alone.T
    # Each row belongs to its own text, not a neighbour's.
    assert (similarity.argmax(axis=1) == np.arange(len(texts))).all()
    # fp32: padding is masked out, so batching changes nothing; int8 quantizes activations per
    # batch (dynamic quantization), so padded batches differ slightly from single texts.
    floor = 0.9999 if backend == "onnx" else 0.95
    assert np.diag(similarity).min() >= floor


def test_batches_side_by_side_give_each_text_its_own_vector(
    embed_settings: EmbedSettings, sentences: list[str]
) -> None:
    # fp32 vectors do not depend on the batch, so two threads running batches side by side must
    # give exactly what one thread running them in turn gives, row for row.
    def encoder(threads: int) -> Embedder:
        update = {"batch_tokens": 256, "backend": "onnx", "threads": threads}
        return load_embedder(embed_settings.model_copy(update=update))

    texts = sentences[::-1] * 3  # many more batches than threads
    np.testing.assert_allclose(encoder(2).encode(texts), encoder(1).encode(texts), atol=1e-5)


def test_query_ranks_matching_sentence_first(
    embedder: Embedder, sentences: list[str], int8_vectors: np.ndarray
) -> None:
    scores = int8_vectors @ embedder.encode([QUERY])[0]
    assert sentences[int(scores.argmax())].startswith(MQA)


@pytest.mark.slow
def test_onnx_backends_match_torch_reference(
    embed_settings: EmbedSettings,
    embedder: Embedder,
    int8_vectors: np.ndarray,
    torch_embedder: Embedder,
    sentences: list[str],
) -> None:
    reference = torch_embedder.encode(sentences)
    assert_unit_float32(reference, len(sentences))
    fp32 = load_embedder(embed_settings.model_copy(update={"backend": "onnx"}))
    assert fp32.name == embedder.name == torch_embedder.name

    cos_fp32 = np.sum(fp32.encode(sentences) * reference, axis=1)
    cos_int8 = np.sum(int8_vectors * reference, axis=1)
    assert cos_fp32.min() >= 0.9999, cos_fp32
    assert cos_int8.mean() >= 0.98, cos_int8
    assert cos_int8.min() >= 0.95, cos_int8

    # The reference ranks like the int8 path does.
    scores = reference @ torch_embedder.encode([QUERY])[0]
    assert sentences[int(scores.argmax())].startswith(MQA)


def test_a_gpu_device_needs_the_torch_backend() -> None:
    with pytest.raises(ValueError, match=r"embed\.device = cuda needs embed\.backend = torch"):
        EmbedSettings(device="cuda")
    assert EmbedSettings(device="cuda", backend="torch").device == "cuda"


@pytest.mark.slow
def test_the_torch_encoder_runs_on_a_gpu_or_says_why_not(
    embed_settings: EmbedSettings, torch_embedder: Embedder, sentences: list[str]
) -> None:
    import torch

    cuda = embed_settings.model_copy(update={"backend": "torch", "device": "cuda"})
    if not torch.cuda.is_available():  # this machine: a CPU build of torch
        with pytest.raises(EmbedderError, match=r"embed\.device is cuda, but PyTorch .* no GPU"):
            load_embedder(cuda)
        return
    on_gpu = load_embedder(cuda).encode(sentences)  # a GPU host: the CPU reference's vectors
    assert np.sum(on_gpu * torch_embedder.encode(sentences), axis=1).min() >= 0.999
