"""Stage 3, indexing: chunk articles (llama-index SentenceSplitter), embed chunks and the spans that
answerers asked for at ingest (enrichments), and write both stores so they always agree.

May import: qa.sources.article, qa.store, qa.embedding, qa.errors, qa.config. Never retrieval or answering:
an answerer that needs ingest-time data declares an `Enrichment`, and the service hands it to the Indexer.
"""

from __future__ import annotations

from typing import Protocol

from qa.sources.article import Article


class Enrichment(Protocol):
    """Spans of each article embedded at ingest and stored under `kind` (e.g. sentence vectors).

    `in_chunk` asks for each span's vector to be pooled from the forward pass of a chunk that holds the span
    whole (its contextual token states, averaged), instead of a second pass that embeds the span alone; a
    span no chunk holds whole is embedded alone. Embedders that cannot pool (the API one) embed spans alone.
    `at_ingest` False stores only the spans (with empty vectors): the answerer embeds them when it first reads
    them, so an ingest embeds nothing but the chunks; with `fill` too, the serving process embeds and stores
    them after the ingest commits (qa.indexing.fill).
    """

    kind: str
    in_chunk: bool
    at_ingest: bool
    fill: bool

    def spans(self, article: Article) -> list[tuple[int, int]]:
        """Character spans of the article text to embed, in order."""
        ...
