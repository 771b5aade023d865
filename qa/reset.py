"""Wipe the index (vectors, docstore, keyword index), e.g. before re-indexing with another model."""

from __future__ import annotations

import shutil

from qa.config import Settings


def reset_index(settings: Settings) -> None:
    """Delete the configured collection and every derived file in the data folder (chats are kept)."""
    import chromadb

    from qa.vectors import _chroma_settings

    if settings.chroma_url:
        from urllib.parse import urlparse

        url = urlparse(settings.chroma_url if "://" in settings.chroma_url else f"http://{settings.chroma_url}")
        client = chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000,
                                     ssl=url.scheme == "https", settings=_chroma_settings())
        if settings.collection in [c.name for c in client.list_collections()]:
            client.delete_collection(settings.collection)
    else:
        shutil.rmtree(settings.data_dir / "chroma", ignore_errors=True)
    for name in ("docstore.sqlite", "docstore.sqlite-wal", "docstore.sqlite-shm"):
        (settings.data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(settings.data_dir / "bm25", ignore_errors=True)
