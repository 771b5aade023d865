"""Sentence-aware chunks (llama-index SentenceSplitter) with exact offsets into the article text."""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Any

from qa.sources.article import Article
from qa.store import ChunkRow


class Chunker:
    """Sentence-aware chunks (llama-index SentenceSplitter) with exact offsets into the article."""

    def __init__(self, chunk_size: int, chunk_overlap: int) -> None:
        self.chunk_size, self.chunk_overlap = chunk_size, chunk_overlap
        self.signature = f"sentence-splitter:{chunk_size}:{chunk_overlap}"

    @cached_property
    def _splitter(self) -> Any:
        """Built on the first article to chunk: importing llama-index takes ~3.5 s of CPU, which a re-ingest
        of unchanged files, a question or a listing never needs."""
        from llama_index.core.node_parser import SentenceSplitter

        return SentenceSplitter(chunk_size=self.chunk_size, chunk_overlap=min(self.chunk_overlap, self.chunk_size // 2))

    def chunks(self, article: Article) -> list[ChunkRow]:
        from llama_index.core import Document

        nodes = self._splitter.get_nodes_from_documents([Document(text=article.text, id_=article.doc_id)])
        version = hashlib.sha256(f"{article.content_hash}{self.signature}".encode()).hexdigest()[:10]
        rows: list[ChunkRow] = []
        cursor = 0
        for node in nodes:
            content = node.get_content()
            start = node.start_char_idx
            if start is None or article.text[start : start + len(content)] != content:
                start = article.text.find(content, max(0, cursor - len(content)))
            if start < 0:
                continue  # the splitter altered the text; never cite what is not in the article
            end = start + len(content)
            rows.append(ChunkRow(f"{article.doc_id}:{version}:{len(rows)}", article.doc_id, len(rows), start, end))
            cursor = end
        return rows
