"""BM25 keyword search (bm25s), persisted next to the vector store and loaded memory-mapped.

The index is rebuilt from the docstore after each ingest batch, written to a fresh folder and switched to
with an atomic pointer file, so a reader (or another worker process) never sees a half-written index.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

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


def _bm25_index(flat: np.ndarray, lengths: np.ndarray, vocab: dict[str, int]) -> bm25s.BM25:
    """The index `bm25s.BM25().index((corpus_ids, vocab))` builds, bit for bit, with whole-array numpy.

    The corpus comes as one flat array of token ids and the token count of each chunk.

    bm25s counts terms with a Counter and a set per chunk in Python: ~25 s of a 1M-chunk rebuild, which
    every ingest batch pays. Same formulas (Lucene idf, Robertson tf part, k1=1.5, b=0.75), same float
    types and rounding, same CSC layout (by term, then chunk); bench/scale.py checks the arrays are equal.
    """
    retriever = bm25s.BM25()
    if retriever.method != "lucene" or retriever.idf_method != "lucene" or retriever.csc_backend != "numpy":
        bounds = np.cumsum(lengths)[:-1]
        retriever.index(([d.tolist() for d in np.split(flat, bounds)], vocab), show_progress=False)
        return retriever  # (bm25s defaults changed: let it do the work)
    k1, b = retriever.k1, retriever.b
    n_docs, n_vocab = len(lengths), len(vocab)
    lengths = lengths.astype(np.int64)
    flat = flat.astype(np.int64)
    pairs, counts = np.unique(np.repeat(np.arange(n_docs, dtype=np.int64), lengths) * n_vocab + flat,
                              return_counts=True)
    doc, term = np.divmod(pairs, n_vocab)
    df = np.bincount(term, minlength=n_vocab)
    idf = np.zeros(n_vocab, dtype=retriever.dtype)
    for value in np.unique(df[df > 0]):  # math.log per distinct df, as bm25s computes it
        idf[df == value] = math.log(1 + (n_docs - int(value) + 0.5) / (int(value) + 0.5))
    avg = lengths.mean()
    length_part = k1 * ((1 - b) + b * lengths / avg)  # float64, per chunk
    tf = counts.astype(retriever.dtype)
    scores = (idf[term] * (tf / (length_part[doc] + tf))).astype(retriever.dtype)
    order = np.argsort((term << 32) | doc, kind="stable")
    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(np.bincount(term, minlength=n_vocab), out=indptr[1:])
    retriever.scores = {"data": scores[order], "indices": doc[order].astype(retriever.int_dtype),
                        "indptr": indptr, "num_docs": n_docs}
    retriever.nonoccurrence_array = None
    vocab = dict(vocab)
    if "" not in vocab:
        vocab[""] = max(vocab.values()) + 1
    retriever.vocab_dict = vocab
    retriever.unique_token_ids_set = set(vocab.values())
    return retriever


def _text_key(text: str) -> int:
    """A fingerprint of a chunk's text (CRC-32 and length): same id and key means same tokens."""
    return (zlib.crc32(text.encode()) << 32) | (len(text) & 0xFFFFFFFF)


class _Loaded:
    """One immutable, loaded index version (arrays memory-mapped: a new worker maps it in ~0.2 s at 1M)."""

    def __init__(self, folder: Path, generation: int) -> None:
        self.generation = generation
        self.retriever = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        self.tokenizer = bm25s.tokenization.Tokenizer(stemmer=_stemmer(), stopwords="en", splitter=SPLIT)
        self.tokenizer.load_vocab(str(folder))
        self.known_ids = frozenset(int(i) for i in self.retriever.vocab_dict.values())
        self._ids: np.ndarray | list[str]
        if (folder / "chunk_ids.npy").exists():
            self._ids = np.load(folder / "chunk_ids.npy", mmap_mode="r")
        else:  # an index written before chunk ids were stored as an array
            self._ids = json.loads((folder / "chunk_ids.json").read_text())
        self.days = np.load(folder / "days.npy", mmap_mode="r")
        self.sources = np.load(folder / "sources.npy", mmap_mode="r")
        self.source_codes: dict[str, int] = json.loads((folder / "sources.json").read_text())
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def chunk_ids(self) -> list[str]:
        """Every chunk id, by position (decodes the whole array: for tests and tools, not per query)."""
        return [self.chunk_id(i) for i in range(len(self))]

    def chunk_id(self, position: int) -> str:
        value = self._ids[position]
        return value.decode() if isinstance(value, bytes) else str(value)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k best positive scores, best first (ties by position, so the order is stable).

    bm25s's own top-k calls np.argpartition(scores, -k) on the full score array; most chunks score exactly
    0 for a query, and that many equal values make it take ~40 ms at 1M chunks. Selecting among the
    positive scores first takes ~2 ms.
    """
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    return positive[np.lexsort((positive, -scores[positive]))]


class KeywordIndex:
    """The BM25 index of every chunk, with per-chunk source/date arrays for filtering."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()
        self._pointer_cache: tuple[tuple[int, int, int], int] | None = None

    def _pointer(self) -> Path:
        return self.folder / "CURRENT"

    def saved_generation(self) -> int | None:
        """The docstore generation the index on disk was built from (None if there is none).

        Asked on every search: the pointer is re-read only when its file changed (a build replaces it
        atomically, so a new inode), which costs one stat() instead of an open/read/parse.
        """
        try:
            stat = os.stat(self._pointer())
        except OSError:
            return None
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cached = self._pointer_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            generation = int(json.loads(self._pointer().read_text())["generation"])
        except (OSError, ValueError, KeyError):
            return None
        self._pointer_cache = (key, generation)
        return generation

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
        keys = np.fromiter((_text_key(t) for t in texts), dtype=np.uint64, count=len(texts))
        tokenizer, flat, lengths = self._tokenize(ids, texts, keys)
        retriever = _bm25_index(flat, lengths, tokenizer.get_vocab_dict())
        retriever.save(str(target), show_progress=False)
        tokenizer.save_vocab(str(target))
        np.save(target / "chunk_ids.npy", np.asarray([i.encode() for i in ids], dtype=bytes) if ids
                else np.zeros(0, dtype="S1"))
        np.save(target / "days.npy", np.asarray(days, dtype=np.int32))
        np.save(target / "sources.npy", np.asarray(sources, dtype=np.int32))
        (target / "sources.json").write_text(json.dumps(codes))
        if ids:  # what the next build reuses: each chunk's tokens and a fingerprint of its text
            np.save(target / "tokens.npy", flat.astype(np.int32))
            np.save(target / "lengths.npy", lengths.astype(np.int32))
            np.save(target / "text_keys.npy", keys)
        tmp = self.folder / f"CURRENT.{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps({"generation": generation, "folder": target.name}))
        os.replace(tmp, self._pointer())
        self._prune(keep=target.name)
        return len(ids)

    def _tokenize(
        self, ids: list[str], texts: list[str], keys: np.ndarray, reuse_previous: bool = True
    ) -> tuple[bm25s.tokenization.Tokenizer, np.ndarray, np.ndarray]:
        """(tokenizer, flat token ids, tokens per chunk), reusing the tokens of chunks the previous build
        already had with the same text, so an ingest batch only tokenizes what it added.

        Tokenizing is the costliest part of a rebuild (~25 s at 1M chunks); chunk ids and text
        fingerprints tell which chunks are unchanged. The previous vocabulary is extended rather than
        rebuilt, which only relabels token ids: scores are identical to a fresh build. When fewer than half
        the chunks can be reused, or stale words make up most of the vocabulary, it starts afresh.
        """
        fresh_tokenizer = bm25s.tokenization.Tokenizer(stemmer=_stemmer(), stopwords="en", splitter=SPLIT)
        previous = self._previous_tokens() if ids and reuse_previous else None
        reuse = np.full(len(ids), -1, dtype=np.int64)
        tokenizer = fresh_tokenizer
        if previous is not None:
            old_tokenizer, old_position, old_keys, old_flat, old_lengths = previous
            at = np.fromiter((old_position.get(c, -1) for c in ids), dtype=np.int64, count=len(ids))
            same = (at >= 0) & (old_keys[np.maximum(at, 0)] == keys)
            reuse[same] = at[same]
            if np.count_nonzero(same) * 2 >= len(ids):
                tokenizer = old_tokenizer
            else:
                reuse[:] = -1
        todo = np.flatnonzero(reuse < 0)
        new = tokenizer.tokenize([texts[i] for i in todo] or ([] if ids else [""]), update_vocab=True,
                                 return_as="ids", show_progress=False)
        if not ids:
            return tokenizer, np.asarray(new[0], dtype=np.int64), np.asarray([len(new[0])], dtype=np.int64)
        lengths = np.zeros(len(ids), dtype=np.int64)
        lengths[todo] = [len(t) for t in new]
        kept = np.flatnonzero(reuse >= 0)
        if len(kept):
            lengths[kept] = old_lengths[reuse[kept]]
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.empty(int(offsets[-1]), dtype=np.int64)
        if len(kept):
            old_offsets = np.zeros(len(old_lengths) + 1, dtype=np.int64)
            np.cumsum(old_lengths, out=old_offsets[1:])
            size = lengths[kept]
            row = np.repeat(np.arange(len(kept)), size)
            within = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
            flat[offsets[kept][row] + within] = old_flat[old_offsets[reuse[kept]][row] + within]
        for i, tokens in zip(todo, new, strict=True):
            flat[offsets[i] : offsets[i + 1]] = tokens
        if tokenizer is not fresh_tokenizer and len(tokenizer.get_vocab_dict()) > 2 * len(np.unique(flat)) + 1000:
            return self._tokenize(ids, texts, keys, reuse_previous=False)  # mostly stale words: start afresh
        return tokenizer, flat, lengths

    def _previous_tokens(self) -> tuple[Any, dict[str, int], np.ndarray, np.ndarray, np.ndarray] | None:
        """The current version's tokenizer, chunk positions, text keys, tokens and lengths, if it saved them."""
        try:
            folder = self.folder / json.loads(self._pointer().read_text())["folder"]
            chunk_ids = np.load(folder / "chunk_ids.npy")
            lengths = np.load(folder / "lengths.npy").astype(np.int64)
            keys = np.load(folder / "text_keys.npy")
            flat = np.load(folder / "tokens.npy", mmap_mode="r")
            tokenizer = bm25s.tokenization.Tokenizer(stemmer=_stemmer(), stopwords="en", splitter=SPLIT)
            tokenizer.load_vocab(str(folder))
        except (OSError, ValueError, KeyError):
            return None
        if not len(chunk_ids) == len(lengths) == len(keys) or int(lengths.sum()) != len(flat):
            return None
        return tokenizer, {c.decode(): i for i, c in enumerate(chunk_ids.tolist())}, keys, flat, lengths

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
        if index is None or not len(index):
            return []
        query_ids = index.tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)[0]
        query_ids = [i for i in query_ids if i in index.known_ids]
        if not query_ids:
            return []
        mask = None
        if source is not None or day_from or day_to:
            keep = np.ones(len(index), dtype=bool)
            if source is not None:
                code = index.source_codes.get(source.casefold())
                keep &= index.sources == code if code is not None else False
            if day_from:
                keep &= index.days >= day_from
            if day_to:
                keep &= (index.days <= day_to) & (index.days > 0)
            mask = keep.astype(np.float32)
        with index.lock:
            scores = index.retriever.get_scores(query_ids, weight_mask=mask)
        top = _top(scores, min(n, len(index)))
        return [KeywordHit(index.chunk_id(int(d)), float(scores[d])) for d in top]
