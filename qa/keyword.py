"""BM25 keyword search (bm25s), persisted next to the vector store and loaded memory-mapped.

The index is rebuilt from the docstore after each ingest batch, written to a fresh folder and switched to
with an atomic pointer file, so a reader (or another worker process) never sees a half-written index.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

SPLIT = r"(?u)\b\w+\b"
_WORD = re.compile(SPLIT)
_STOP = frozenset(STOPWORDS_EN)
_stemmer_local = threading.local()


def _stemmer() -> Stemmer.Stemmer:
    stemmer = getattr(_stemmer_local, "stemmer", None)  # PyStemmer objects are not thread-safe
    if stemmer is None:
        stemmer = _stemmer_local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def terms(text: str) -> list[str]:
    """Lower-cased, stemmed, stopword-free terms: the same analysis BM25 uses."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOP]
    return _stemmer().stemWords(words)


_QUESTION_WORDS = frozenset(
    [
        "how", "many", "much", "what", "which", "who", "whom", "whose", "when", "where", "why", "did", "does",
        "do", "was", "were", "been", "is", "are", "has", "have", "had", "name", "according", "say", "said", "s",
    ]
)


def question_terms(question: str) -> set[str]:
    """The content terms of a question: its BM25 terms minus question words that no answer repeats."""
    stems = set(_stemmer().stemWords(list(_QUESTION_WORDS)))
    return {t for t in terms(question) if t not in stems and t not in _QUESTION_WORDS}


def day_number(published: str | date | None) -> int:
    """A date as yyyymmdd (0 when unknown), the form date filters compare."""
    if not published:
        return 0
    return int(str(published)[:10].replace("-", ""))


@dataclass(frozen=True)
class KeywordHit:
    chunk_id: str
    score: float


class _Loaded:
    """One immutable, loaded index version."""

    def __init__(self, folder: Path, generation: int) -> None:
        self.generation = generation
        self.retriever = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        self.tokenizer = bm25s.tokenization.Tokenizer(stemmer=_stemmer(), stopwords="en", splitter=SPLIT)
        self.tokenizer.load_vocab(str(folder))
        self.chunk_ids: list[str] = json.loads((folder / "chunk_ids.json").read_text())
        self.days = np.load(folder / "days.npy", mmap_mode="r")
        self.sources = np.load(folder / "sources.npy", mmap_mode="r")
        self.source_codes: dict[str, int] = json.loads((folder / "sources.json").read_text())
        self.lock = threading.Lock()


class KeywordIndex:
    """The BM25 index of every chunk, with per-chunk source/date arrays for filtering."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    def _pointer(self) -> Path:
        return self.folder / "CURRENT"

    def saved_generation(self) -> int | None:
        """The docstore generation the index on disk was built from (None if there is none)."""
        try:
            return int(json.loads(self._pointer().read_text())["generation"])
        except (OSError, ValueError, KeyError):
            return None

    def build(self, rows: Iterable[tuple[str, str, str | None, str | None]], generation: int) -> int:
        """Index (chunk_id, text, source, published) rows and switch readers to it; returns chunk count."""
        ids: list[str] = []
        texts: list[str] = []
        days: list[int] = []
        sources: list[int] = []
        codes: dict[str, int] = {}
        for chunk_id, text, source, published in rows:
            ids.append(chunk_id)
            texts.append(text)
            days.append(day_number(published))
            sources.append(codes.setdefault((source or "").casefold(), len(codes)))
        target = self.folder / f"v{generation}-{uuid.uuid4().hex[:8]}"
        target.mkdir(parents=True)
        tokenizer = bm25s.tokenization.Tokenizer(stemmer=_stemmer(), stopwords="en", splitter=SPLIT)
        tokens = tokenizer.tokenize(texts or [""], return_as="tuple", show_progress=False)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        retriever.save(str(target), show_progress=False)
        tokenizer.save_vocab(str(target))
        (target / "chunk_ids.json").write_text(json.dumps(ids))
        np.save(target / "days.npy", np.asarray(days, dtype=np.int32))
        np.save(target / "sources.npy", np.asarray(sources, dtype=np.int32))
        (target / "sources.json").write_text(json.dumps(codes))
        tmp = self.folder / f"CURRENT.{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps({"generation": generation, "folder": target.name}))
        os.replace(tmp, self._pointer())
        self._prune(keep=target.name)
        return len(ids)

    def _prune(self, keep: str) -> None:
        versions = sorted((p for p in self.folder.glob("v*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for old in versions[:-2]:  # keep the previous version for readers still holding it
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)

    def _current(self) -> _Loaded | None:
        """The newest index on disk, reloaded only when the pointer changed."""
        generation = self.saved_generation()
        loaded = self._loaded
        if generation is None:
            return None
        if loaded is not None and loaded.generation == generation:
            return loaded
        with self._lock:
            if self._loaded is None or self._loaded.generation != generation:
                pointer = json.loads(self._pointer().read_text())
                self._loaded = _Loaded(self.folder / pointer["folder"], int(pointer["generation"]))
            return self._loaded

    def search(
        self, query: str, n: int, source: str | None = None, day_from: int = 0, day_to: int = 0
    ) -> list[KeywordHit]:
        """Top-n chunks by BM25 among those passing the filters (zero-score chunks are dropped)."""
        index = self._current()
        if index is None or not index.chunk_ids:
            return []
        query_ids = index.tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)[0]
        if not query_ids:
            return []
        mask = None
        if source is not None or day_from or day_to:
            keep = np.ones(len(index.chunk_ids), dtype=bool)
            if source is not None:
                code = index.source_codes.get(source.casefold())
                keep &= index.sources == code if code is not None else False
            if day_from:
                keep &= index.days >= day_from
            if day_to:
                keep &= (index.days <= day_to) & (index.days > 0)
            mask = keep.astype(np.float32)
        k = min(n, len(index.chunk_ids))
        with index.lock:
            docs, scores = index.retriever.retrieve(
                [query_ids], k=k, show_progress=False, n_threads=1, weight_mask=mask
            )
        return [
            KeywordHit(index.chunk_ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0
        ]
