"""Helpers for the reliability tests: a synthetic news batch, an index consistency audit, a canary HTTP server."""

from __future__ import annotations

import random
import re
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from qa.service import Service
from qa.sources.files import load_articles
from tests.support import SEEDS, sql_rows


def _seed_sentences() -> list[str]:
    sentences: list[str] = []
    for article in load_articles([SEEDS]):
        for paragraph in article.text.split("\n\n"):
            sentences += [s for s in re.split(r"(?<=[.!?])\s+", paragraph) if len(s.split()) > 5]
    return sentences


def write_corpus(folder: Path, count: int, edition: int = 0) -> dict[str, str]:
    """`count` distinct news-like articles (real seed sentences, shuffled per article, plus a unique fact).

    A different `edition` changes every article's fact, so re-ingesting replaces them all.
    Returns {doc_id: unique fact sentence}.
    """
    folder.mkdir(parents=True, exist_ok=True)
    sentences = _seed_sentences()
    facts: dict[str, str] = {}
    for i in range(count):
        rng = random.Random(i)
        body = rng.sample(sentences, 6)
        paragraphs = [" ".join(body[j : j + 2]) for j in range(0, 6, 2)]
        fact = f"The ledger code of bulletin {i} is Z{(i * 7919 + edition * 104729) % 1_000_003}."
        doc_id = f"bulletin-{i:04d}"
        (folder / f"{doc_id}.txt").write_text(
            f"Bulletin {i}: talks between Moscow and Washington\n\n" + "\n\n".join(paragraphs) + f"\n\n{fact}",
            "utf-8",
        )
        facts[doc_id] = fact
    return facts


@dataclass
class IndexState:
    """Everything the two stores (and the keyword index inside the SQL store) say is indexed."""

    documents: dict[str, int]  # doc_id -> n_chunks the docstore recorded
    docstore_chunks: list[str]
    chroma_chunks: list[str]
    keyword_chunks: list[str]
    pending: list[str]


def index_state(pipeline: Service) -> IndexState:
    """Read the docstore, the vector store and the keyword index as they are on disk now."""
    docs = pipeline.docs
    documents = {d.doc_id: d.n_chunks for d in docs.list_documents()}
    docstore_chunks = [row[0] for row in _sql(pipeline, "SELECT chunk_id FROM chunks ORDER BY chunk_id")]
    chroma_chunks = pipeline.indexer.store._call(lambda col: col.get(include=[]))["ids"]
    return IndexState(
        documents=documents,
        docstore_chunks=docstore_chunks,
        chroma_chunks=list(chroma_chunks),
        keyword_chunks=keyword_indexed(pipeline),
        pending=docs.pending(),
    )


def _sql(pipeline: Service, query: str) -> list[tuple]:
    """Rows of a query on the service's SQL store, SQLite or PostgreSQL."""
    return sql_rows(pipeline.docs, query)


def keyword_indexed(pipeline: Service) -> list[str]:
    """The chunks the keyword index (tantivy) holds a live document for, once per document, after it has
    replayed the SQL store's change feed (as it does before every search)."""
    return pipeline.docs.keyword.chunk_ids()  # type: ignore[attr-defined]


def assert_consistent(pipeline: Service, expected_docs: set[str] | None = None) -> IndexState:
    """The docstore, Chroma and the keyword index hold exactly the same chunks, once each, of one version per
    article."""
    state = index_state(pipeline)
    for name, ids in (("docstore", state.docstore_chunks), ("chroma", state.chroma_chunks),
                      ("bm25", state.keyword_chunks)):
        duplicates = [i for i, n in Counter(ids).items() if n > 1]
        assert not duplicates, f"duplicate chunks in {name}: {duplicates[:5]}"
    docstore = set(state.docstore_chunks)
    assert set(state.chroma_chunks) == docstore, (
        f"chroma orphans {sorted(set(state.chroma_chunks) - docstore)[:5]}, "
        f"missing {sorted(docstore - set(state.chroma_chunks))[:5]}"
    )
    assert set(state.keyword_chunks) == docstore
    assert not state.pending, f"docs still pending: {state.pending}"
    per_doc = Counter(chunk_id.split(":", 1)[0] for chunk_id in docstore)
    assert dict(per_doc) == {d: n for d, n in state.documents.items() if n}, "chunk counts disagree"
    versions = {(chunk_id.split(":")[0], chunk_id.split(":")[1]) for chunk_id in docstore}
    assert len(versions) == len(per_doc), "an article has chunks of two versions"
    if expected_docs is not None:
        assert set(state.documents) == expected_docs, (
            f"missing {sorted(expected_docs - set(state.documents))[:5]}, "
            f"extra {sorted(set(state.documents) - expected_docs)[:5]}"
        )
    return state


def docstore_count(data_dir: Path) -> int:
    """Documents committed so far, read from outside the writing process (read-only, WAL-safe)."""
    path = data_dir / "docstore.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not created yet
        return 0


class Canary:
    """An HTTP server on 127.0.0.1 that records every request: proof that nothing fetched a URL."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:
                canary.hits.append(self.path)
                self.send_response(200)
                self.end_headers()

            do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Canary:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


Handler = Callable[[socket.socket, str], None]


class RawServer:
    """A TCP server on 127.0.0.1 whose routes write raw bytes (what a hostile web site sends: a head a byte at a
    time, malformed redirects, empty gzip blocks). `routes` maps a request path to `handler(conn, path)`;
    `started[path]` is set when a request for it arrives, `finished[path]` when its handler returns."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = routes
        self.hits: Counter[str] = Counter()
        self.started: dict[str, threading.Event] = {p: threading.Event() for p in routes}
        self.finished: dict[str, threading.Event] = {p: threading.Event() for p in routes}
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
            except OSError:
                return
            path = head.split(b" ", 2)[1].decode("latin-1")
            route = path.split("?", 1)[0]
            self.hits[route] += 1
            handler = self.routes.get(route)
            if handler is None:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            self.started[route].set()
            try:
                handler(conn, path)
            except OSError:  # the client gave up: that is the point of most routes
                pass
            finally:
                self.finished[route].set()

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._sock.close()


def trickle(data: bytes, every: float, seconds: float) -> Handler:
    """A handler that sends `data` a byte every `every` seconds, repeating its last byte, for `seconds`."""

    def handler(conn: socket.socket, _path: str) -> None:
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            conn.sendall(data[min(i, len(data) - 1): min(i, len(data) - 1) + 1])
            i += 1
            time.sleep(every)

    return handler


def send(data: bytes) -> Handler:
    """A handler that sends `data` at once and closes."""
    return lambda conn, _path: conn.sendall(data)


def html_response(body: bytes, headers: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{headers}\r\n").encode() + body


def redirect_response(location: str) -> bytes:
    return (f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ).encode("latin-1")
