"""Ingest-time data the extractive answerer declares: a vector for every sentence, so answering a question
costs one embedding (the question's) and a dot product per candidate sentence."""

from __future__ import annotations

from qa.sources.article import Article

SENTENCE_VECTORS = "sentence"


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence offsets (punkt, shipped with llama-index), never crossing a paragraph break."""
    from llama_index.core.utils import globals_helper

    tokenizer = globals_helper.punkt_tokenizer
    spans: list[tuple[int, int]] = []
    offset = 0
    for paragraph in text.split("\n\n"):
        spans.extend((offset + s, offset + e) for s, e in tokenizer.span_tokenize(paragraph))
        offset += len(paragraph) + 2
    return spans


class SentenceVectors:
    """Every sentence of the article, embedded at ingest and stored as `sentence` spans."""

    kind = SENTENCE_VECTORS

    def spans(self, article: Article) -> list[tuple[int, int]]:
        return sentence_spans(article.text)
