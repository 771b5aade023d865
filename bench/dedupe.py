"""What recognising syndicated copies costs at ingest: a signature per article, an LSH query per web article.

    python -m bench.dedupe [--docs 2000]

Signatures of the seed articles (median of repeated runs, CRC-32 shingle hashing as used vs datasketch's
default SHA-1, side by side), then loading N stored signatures into the LSH index (what an ingest with web
articles does once) and querying it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from datasketch import MinHash

from qa.sources.dedupe import NUM_PERM, SCHEME, NearDuplicates, Signature, shingles, signature

ROOT = Path(__file__).resolve().parent.parent


def _ms(runs: list[float]) -> float:
    return statistics.median(runs) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=2000)
    args = parser.parse_args()
    texts = [p.read_text("utf-8") for p in sorted((ROOT / "seeds").glob("*.txt"))]
    signature(texts[0])  # first use imports datasketch and builds the permutations
    permutations = MinHash(num_perm=NUM_PERM, scheme=SCHEME).permutations
    crc, sha = [], []
    for _ in range(20):
        for text in texts:
            started = time.perf_counter()
            signature(text)
            crc.append(time.perf_counter() - started)
            started = time.perf_counter()
            legacy = MinHash(num_perm=NUM_PERM, scheme=SCHEME, permutations=permutations)  # the same but SHA-1
            legacy.update_batch([s.encode() for s in shingles(text)])
            sha.append(time.perf_counter() - started)
    chars = statistics.mean(len(t) for t in texts)
    print(f"signature per seed article ({chars:.0f} chars on average), median of {len(crc)}:")
    print(f"  crc32 shingle hash (used)   {_ms(crc):6.2f} ms")
    print(f"  sha1 (datasketch default)   {_ms(sha):6.2f} ms   ratio {_ms(sha) / _ms(crc):.1f}x")

    rng = random.Random(7)
    vocabulary = sorted({w for t in texts for w in t.split()})
    synthetic = [" ".join(rng.choices(vocabulary, k=600)) for _ in range(args.docs)]  # distinct 600-word texts
    stored = [(f"doc-{i}", signature(text).to_bytes()) for i, text in enumerate(synthetic)]
    started = time.perf_counter()
    index = NearDuplicates()
    for doc_id, data in stored:
        index.add(doc_id, Signature.from_bytes(data))
    load = time.perf_counter() - started
    queries = []
    for i in range(50):
        query = signature(texts[i % len(texts)] if i % 2 else synthetic[i][: len(synthetic[i]) // 2])
        started = time.perf_counter()
        found = index.match(query)
        queries.append(time.perf_counter() - started)
        assert (found is not None) == (i % 2 == 0)
    print(f"LSH index of {args.docs} stored signatures: load {load * 1000:.0f} ms "
          f"({load / args.docs * 1e6:.0f} us each), query median {_ms(queries):.2f} ms")


if __name__ == "__main__":
    main()
