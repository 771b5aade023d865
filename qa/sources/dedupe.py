"""Recognise syndicated copies: MinHash signatures of an article's word shingles, matched with LSH (datasketch)."""

from __future__ import annotations

import re
import struct
import threading
import unicodedata
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # datasketch is imported on first use: it pulls in scipy.integrate (~2 s)
    from datasketch import MinHash

SHINGLE_WORDS = 5
NUM_PERM = 128
# LSH proposes candidates: 64 bands of 2 rows use all 128 permutations and propose a pair at Jaccard 0.2 (a
# copy cut to a third of the story) with probability 0.93, at 0.4 with 0.99997; the decision is then made on
# containment, below. (datasketch's own choice for a 0.2 threshold, 28x2, missed a half-length copy at 0.39.)
LSH_BANDS = (64, 2)
# A new article is a copy when this share of its shingles is already in one indexed article. Chosen on the
# 95 pairs in tests/test_dedupe.py (`pytest -s tests/test_dedupe.py -k threshold` prints the table), MinHash
# estimates: copies with a new headline, trimmed endings, an extra paragraph, wire edits or only the first half
# score 0.68-1.0 (0.68: a cut copy indexed first, then a longer one); different stories on the same topic 0.0,
# and follow-ups that reuse one or two background paragraphs of the original 0.15-0.30. 0.5 leaves about 0.2 of
# margin either side.
CONTAINMENT = 0.5
SCHEME = "affine32"  # datasketch 2.x's default permutation scheme
# Shingles are hashed with CRC-32 rather than datasketch's default SHA-1: 1.8x faster (1.08 vs 1.92 ms per seed
# article, `python -m bench.dedupe`) and, for MinHash, as good: the affine permutations do the mixing, and two of
# ~1,000 shingles sharing a 32-bit hash is rare enough not to move an estimate. Signatures are stored, so this
# choice is fixed. The permutations are made once per process (~0.8 ms each time otherwise).
_HASH = zlib.crc32
_PERMUTATIONS: list = []  # made once (on first use), not per text
MIN_SHINGLES = 30  # shorter texts (a caption, a one-line brief) are never called copies
_WORD = re.compile(r"\w+")


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[str]:
    """Overlapping word n-grams of the casefolded text (punctuation and quote styles ignored)."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    if len(words) <= size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


@dataclass(frozen=True)
class Signature:
    """An article body's MinHash and its number of distinct shingles (to turn Jaccard into containment)."""

    minhash: MinHash
    size: int

    def to_bytes(self) -> bytes:
        return struct.pack("<I", self.size) + np.asarray(self.minhash.hashvalues, dtype=np.uint64).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Signature:
        (size,) = struct.unpack("<I", data[:4])
        values = np.frombuffer(data[4:], dtype=np.uint64).copy()
        return cls(_minhash(values), size)

    def containment_in(self, other: Signature) -> float:
        """Estimated share of this text's shingles that `other` also has: |A∩B| = J/(1+J)·(|A|+|B|)."""
        jaccard = float(self.minhash.jaccard(other.minhash))
        if self.size == 0:
            return 0.0
        return min(1.0, jaccard / (1 + jaccard) * (self.size + other.size) / self.size)


def _minhash(hashvalues: np.ndarray | None = None) -> MinHash:
    from datasketch import MinHash

    if not _PERMUTATIONS:
        _PERMUTATIONS.append(MinHash(num_perm=NUM_PERM, scheme=SCHEME, hashfunc=_HASH).permutations)
    return MinHash(num_perm=NUM_PERM, scheme=SCHEME, hashfunc=_HASH, permutations=_PERMUTATIONS[0],
                   hashvalues=hashvalues)


def signature(text: str) -> Signature:
    """The signature of an article body."""
    grams = shingles(text)
    minhash = _minhash()
    minhash.update_batch([s.encode("utf-8") for s in grams])
    return Signature(minhash, len(grams))


class NearDuplicates:
    """The signatures of the indexed articles, asked for the one a new article copies (if any)."""

    def __init__(self, containment: float = CONTAINMENT) -> None:
        from datasketch import MinHashLSH

        self.containment = containment
        self._lsh = MinHashLSH(num_perm=NUM_PERM, params=LSH_BANDS)
        self._signatures: dict[str, Signature] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._signatures)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._signatures)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._signatures

    def add(self, doc_id: str, sig: Signature) -> None:
        with self._lock:
            if doc_id in self._signatures:
                self._lsh.remove(doc_id)
            self._signatures[doc_id] = sig
            self._lsh.insert(doc_id, sig.minhash)

    def remove(self, doc_id: str) -> None:
        with self._lock:
            if self._signatures.pop(doc_id, None) is not None:
                self._lsh.remove(doc_id)

    def match(self, sig: Signature, exclude: str | None = None) -> tuple[str, float] | None:
        """The indexed article (other than `exclude`, e.g. an earlier version of the same page) that already
        holds at least `containment` of this text, with that share; None when there is none."""
        if sig.size < MIN_SHINGLES:
            return None
        with self._lock:
            candidates = [key for key in self._lsh.query(sig.minhash) if key != exclude]
            scored = [(key, sig.containment_in(self._signatures[key])) for key in candidates]
        scored = sorted((item for item in scored if item[1] >= self.containment), key=lambda i: (-i[1], i[0]))
        return scored[0] if scored else None  # the closest; on a tie, the smallest id (stable across runs)
