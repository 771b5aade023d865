"""Embedding: text to unit vectors, offline (MiniLM int8 on onnxruntime) or through the OpenAI API.
Used by indexing (chunks and enrichment spans) and retrieval (the question).

May import: qa.config, qa.errors. Adding an embedder = a module here and a line in EMBEDDERS.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from qa.config import Settings


class Embedder(Protocol):
    """Texts to L2-normalised vectors; `model_name` tags the index so two models are never mixed."""

    model_name: str

    def embed(self, texts: list[str]) -> np.ndarray: ...


@runtime_checkable
class SpanEmbedder(Embedder, Protocol):
    """An embedder that can also pool vectors for spans of each text from the same forward pass."""

    def embed_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]: ...


def _onnx(settings: Settings) -> Embedder:
    from qa.embedding.onnx import OnnxMiniLMEmbedding

    return OnnxMiniLMEmbedding(batch_size=settings.embed_batch_size, threads=settings.embed_threads)


def _openai(settings: Settings) -> Embedder:
    from qa.embedding.openai import OpenAIEmbedder

    return OpenAIEmbedder(settings)


EMBEDDERS: dict[str, Callable[[Settings], Embedder]] = {"onnx": _onnx, "openai": _openai}


def build_embedder(settings: Settings) -> Embedder:
    """The configured embedder; the ONNX one never touches the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return EMBEDDERS[settings.embed_provider](settings)
