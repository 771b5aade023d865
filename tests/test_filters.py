"""One filter, three compilations (qa.store.filters.ChunkFilter): Chroma's own `where` evaluation, the Python
test that post-filters Chroma's nearest chunks, and the SQL store's WHERE select the same chunks."""

from __future__ import annotations

import itertools

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings
from sqlalchemy import create_engine, insert, select

from qa.db.schema import chunks, metadata
from qa.store.filters import ChunkFilter

ROWS = [(f"c{n}", source, day) for n, (source, day) in enumerate(
    itertools.product(["rt", "bbc", ""], [0, 20170401, 20170415, 20170501]))]
FILTERS = [ChunkFilter(source, start, end) for source, start, end in itertools.product(
    [None, "rt", "tass"], [0, 20170401, 20170410], [0, 20170415, 20170501])]


def test_chroma_python_and_sql_select_the_same_chunks() -> None:
    client = chromadb.EphemeralClient(ChromaSettings(anonymized_telemetry=False))
    collection = client.create_collection("filters", embedding_function=None)
    collection.add(ids=[r[0] for r in ROWS], embeddings=np.ones((len(ROWS), 3)).tolist(),
                   metadatas=[{"doc_id": r[0], "source": r[1], "published_day": r[2]} for r in ROWS])
    engine = create_engine("sqlite://")
    metadata.create_all(engine, tables=[chunks])
    with engine.begin() as conn:
        conn.execute(insert(chunks), [{"id": n, "chunk_id": c, "doc_id": c, "idx": 0, "start": 0, "end": 1,
                                       "source_key": s, "day": d, "n_terms": 0} for n, (c, s, d) in enumerate(ROWS)])
    for where in FILTERS:
        chroma = set(collection.get(where=where.to_chroma(), include=[])["ids"]) if where.to_chroma() else \
            {r[0] for r in ROWS}
        python = {c for c, s, d in ROWS if where.matches({"doc_id": c, "source": s, "published_day": d})}
        clause = where.to_sql(chunks)
        with engine.connect() as conn:
            sql = set(conn.execute(select(chunks.c.chunk_id).where(*(() if clause is None else (clause,)))).scalars())
        assert chroma == python == sql, where
    assert not ChunkFilter(None, 20170401).matches({"published_day": "20170415"})  # another type never matches
    assert not ChunkFilter("rt").matches(None) and ChunkFilter().to_chroma() is None
