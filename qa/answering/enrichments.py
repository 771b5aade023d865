"""Ingest-time data the extractive answerer declares: a vector for every sentence, so answering a question
costs one embedding (the question's) and a dot product per candidate sentence."""

from __future__ import annotations

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
    """Every sentence of the article, embedded at ingest and stored as `sentence` spans: pooled from the
    chunk's forward pass (`in_chunk`, no second pass over the text) or each sentence embedded alone."""

    kind = SENTENCE_VECTORS

    def __init__(self, in_chunk: bool = False) -> None:
        self.in_chunk = in_chunk

    def spans(self, article: Article) -> list[tuple[int, int]]:
        return sentence_spans(article.text)
