"""OpenAI (or OpenAI-compatible) embeddings, used only when QA_EMBED_PROVIDER=openai."""

from __future__ import annotations

import numpy as np

from qa.config import Settings
from qa.errors import EmbedderUnavailable


class OpenAIEmbedder:
    """Embeddings over the `openai` client behind the same `embed` interface as the offline model."""

    def __init__(self, settings: Settings) -> None:
        from openai import OpenAI

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none"
        self.model_name = f"openai:{settings.openai_embed_model}"
        self._model = settings.openai_embed_model
        self._client = OpenAI(
            api_key=key, base_url=settings.llm_base_url, timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
        )
        self._batch = settings.embed_batch_size
        self.dimension = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed via the API, normalised so cosine and dot product agree; an outage is EmbedderUnavailable."""
        import openai

        rows: list[list[float]] = []
        try:
            for start in range(0, len(texts), self._batch):
                reply = self._client.embeddings.create(model=self._model, input=texts[start : start + self._batch])
                rows.extend(item.embedding for item in reply.data)
        except openai.APITimeoutError:
            raise EmbedderUnavailable("the embedding service did not answer in time") from None
        except openai.APIConnectionError:
            raise EmbedderUnavailable("the embedding service cannot be reached") from None
        except openai.APIStatusError as exc:
            raise EmbedderUnavailable(f"the embedding service returned HTTP {exc.status_code}") from None
        vectors = np.asarray(rows, dtype=np.float32)
        if len(texts) and vectors.shape[0] != len(texts):
            raise EmbedderUnavailable("the embedding service returned an unusable reply")
        self.dimension = vectors.shape[1] if len(rows) else self.dimension
        return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
