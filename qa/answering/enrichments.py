"""Data the extractive answerer declares: a vector for every sentence, so answering a question costs one
embedding (the question's) and a dot product per candidate sentence. The vectors are made at ingest
(`separate`, `pooled`), on first use and kept in memory (`lazy`), or stored after the ingest by a background
fill and meanwhile on first use (`background`): a stored vector is used when there is one."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from qa.sources.article import Article

SENTENCE_VECTORS = "sentence"


MAX_SENTENCE_CHARS = 1000  # longer "sentences" (a page with no punctuation) are cut at a space before this


def _bounded(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """A sentence span cut into pieces of at most MAX_SENTENCE_CHARS (at the last space before the limit), so
    no quoted answer, embedded text or stored turn is the whole of a 2 MB line."""
    pieces: list[tuple[int, int]] = []
    while end - start > MAX_SENTENCE_CHARS:
        cut = text.rfind(" ", start + 1, start + MAX_SENTENCE_CHARS)
        cut = cut if cut > start else start + MAX_SENTENCE_CHARS
        pieces.append((start, cut))
        start = cut
        while start < end and text[start] == " ":
            start += 1
    if end > start:
        pieces.append((start, end))
    return pieces


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence offsets (punkt, shipped with llama-index), never crossing a paragraph break, none longer
    than MAX_SENTENCE_CHARS."""
    from llama_index.core.utils import globals_helper

    tokenizer = globals_helper.punkt_tokenizer
    spans: list[tuple[int, int]] = []
    offset = 0
    for paragraph in text.split("\n\n"):
        for s, e in tokenizer.span_tokenize(paragraph):
            spans.extend(_bounded(text, offset + s, offset + e))
        offset += len(paragraph) + 2
    return spans


class SentenceVectors:
    """Every sentence of the article, stored as `sentence` spans: embedded at ingest, pooled from the chunk's
    forward pass (`in_chunk`, no second pass over the text) or each sentence alone; or, with `at_ingest`
    False, stored without vectors for LazySentenceVectors to embed when an answer first reads them; with `fill`
    as well, the serving process embeds them after the ingest and stores them (QA_SENTENCE_VECTORS=background)."""

    kind = SENTENCE_VECTORS

    def __init__(self, in_chunk: bool = False, at_ingest: bool = True, fill: bool = False) -> None:
        self.in_chunk = in_chunk
        self.at_ingest = at_ingest
        self.fill = fill and not at_ingest

    @classmethod
    def of(cls, mode: str) -> SentenceVectors:
        """The enrichment QA_SENTENCE_VECTORS asks for."""
        return cls(in_chunk=mode == "pooled", at_ingest=mode in ("separate", "pooled"), fill=mode == "background")

    def spans(self, article: Article) -> list[tuple[int, int]]:
        return sentence_spans(article.text)


class LazySentenceVectors:
    """Sentence vectors embedded on first use and kept in memory, most recently used first (a bounded LRU
    keyed by the sentence text, so a sentence shared by syndicated copies is embedded once).

    Each sentence is embedded alone, as `separate` does at ingest, and rounded through float16 as the store
    keeps vectors, so answers are the same as with vectors made at ingest; an ingest then embeds only the
    chunks, and a question pays for the sentences of the passages no earlier question read (tens of short
    texts). Each process keeps its own cache; nothing is written to the stores on the read path.
    """

    def __init__(self, embed: Callable[[list[str]], np.ndarray], capacity: int = 50_000) -> None:
        self.embed = embed
        self.capacity = capacity
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def vectors(self, texts: list[str]) -> list[np.ndarray]:
        """One vector per text, embedding (in one batch) only those not in the cache."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                vector = self._cache.get(text)
                if vector is not None:
                    self._cache.move_to_end(text)
                    found[text] = vector
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            made = self.embed(missing).astype(np.float16).astype(np.float32)
            with self._lock:
                for text, vector in zip(missing, made, strict=True):
                    found[text] = self._cache[text] = vector
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
        return [found[t] for t in texts]
