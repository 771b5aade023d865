"""Embedding: text to unit vectors, offline (MiniLM int8 on onnxruntime) or through the OpenAI API.
Used by indexing (chunks and enrichment spans) and retrieval (the question).

May import: qa.config, qa.errors, qa.registry. Adding an embedder = a module here with a factory
`(settings, **options)`, and a line in EMBEDDERS (QA_EMBED_PROVIDER names it).
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

import numpy as np

from qa.config import Settings
from qa.registry import Registry


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


# name (QA_EMBED_PROVIDER) -> "module:factory"; the factory is called with the Settings and the embedder's
# QA_PART_OPTIONS["embedder:<name>"] as keyword arguments (qa.registry).
EMBEDDERS = Registry("embedder", {
    "onnx": "qa.embedding.onnx:build",
    "openai": "qa.embedding.openai:OpenAIEmbedder",
})


def build_embedder(settings: Settings) -> Embedder:
    """The configured embedder; the ONNX one never touches the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    embedder: Embedder = EMBEDDERS.build(settings.embed_provider, settings, settings)
    return embedder
