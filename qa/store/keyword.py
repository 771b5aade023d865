"""The keyword index: BM25 over every chunk in tantivy, a search engine with block-max WAND top-k pruning, so a
query reads a few blocks of postings instead of scoring every posting of every term (docs/benchmarks.md).

It is derived state. The SQL store (SQLite or PostgreSQL) stays the single source of truth: each put or delete
records, in its own transaction, the article's id with a new sequence number (`keyword_changes`, one row per
article, the latest change wins). The index applies changes by re-reading those articles' chunks as they are
now (so applying a change twice is harmless), commits, and then records the last sequence it applied and the
store's generation in `applied.json` beside the segments (written atomically after the commit, so it can lag
the commit but never lead it: after a crash between the two, the changes since are simply applied again).
It is not a document in the index because every document counts in BM25's statistics: on the 20-chunk seeds
one more document changed the keyword top 10 of 11 of the 51 eval questions. Before every search the index
asks the store for its head (one indexed read) and catches up when behind; at start-up, after a crash or in
a new replica it replays what it has not seen. A missing, corrupt or outdated index (another generation after
a reset, another schema, or ahead of a store restored from a backup) is rebuilt from the store. A kill -9 at
any point loses nothing: an unfinished tantivy commit is simply redone.

Analysis is tantivy's own (in Rust, at index time): its simple tokenizer (runs of letters and digits),
lower-casing, the stopword list of qa.lexicon and the Snowball English stemmer. That is qa.lexicon.terms() on
every BBC article and seed (tests/test_retrieval.py checks the seeds) except one thing: `_` splits a word here
(FTS5 kept it), because tantivy's regex tokenizer made indexing 2-3x slower. Scoring is tantivy's BM25
(k1=1.2, b=0.75, Lucene's idf, document lengths quantised to 256 levels; not configurable from Python): the SQL
ranking it replaces used k1=1.5 with exact lengths (the effect on quality is in docs/benchmarks.md). Filters
(source, published day) run inside the engine: a term on a raw `source` field, a range on a fast `day` field.
Several processes may share one index folder (workers on one data folder): one of them holds tantivy's writer
lock at a time, only while applying, and the others wait for its commit.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import tantivy

from qa.lexicon import ANALYZER_VERSION, STOPWORDS
from qa.store.filters import ChunkFilter

log = logging.getLogger(__name__)

SCHEMA_VERSION = f"tantivy-2|simple|{ANALYZER_VERSION}"  # a change rebuilds every index
ANALYZER = "news_en"
APPLIED = "applied.json"  # {"schema", "generation", "seq"} of the last commit, written after it
WRITER_HEAP = 64_000_000  # one indexing thread, for the few articles of a change
REBUILD_HEAP, REBUILD_THREADS = 512_000_000, 2  # a rebuild indexes the whole corpus
WAIT_FOR_WRITER = 60.0  # seconds to wait for another process applying the same changes
SERVE_STALE_AFTER = 2.0  # ... or, when this index has a commit, after which to answer from it as it is


def new_generation() -> str:
    """A fresh generation token: written when a store is created or reset, so an index of older data rebuilds."""
    return secrets.token_hex(8)


TIE_WINDOW = 16  # extra hits fetched so that ties at the n-th score are broken by chunk id, not segment order


@dataclass(frozen=True)
class KeywordRow:
    """One chunk as the index stores it."""

    chunk_id: str
    doc_id: str
    source_key: str
    day: int
    text: str


class ChangeFeed(Protocol):
    """What the SQL store offers the index: its head, the articles changed since a sequence, their chunks."""

    def keyword_head(self) -> tuple[str, int]:
        """(generation, last sequence number)."""
        ...

    def keyword_changes(self, after: int) -> tuple[list[str], int]:
        """Articles changed after a sequence number, and the highest sequence among them."""
        ...

    def keyword_rows(self, doc_ids: list[str] | None) -> Iterator[KeywordRow]:
        """The chunks of these articles as they are now (None: every chunk)."""
        ...


def analyzer() -> tantivy.TextAnalyzer:
    """The analysis of qa.lexicon.terms(), run by tantivy."""
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.custom_stopword(sorted(STOPWORDS)))
            .filter(tantivy.Filter.stemmer("english"))
            .build())


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("chunk_id", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("doc_id", stored=False, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("terms", stored=False, tokenizer_name=ANALYZER, index_option="freq")
    builder.add_text_field("source", stored=False, tokenizer_name="raw", index_option="basic")
    builder.add_integer_field("day", stored=False, indexed=True, fast=True)
    return builder.build()


class KeywordIndex:
    """A tantivy index kept in step with a ChangeFeed; thread-safe, shareable between processes."""

    def __init__(self, path: Path | None, feed: ChangeFeed) -> None:
        self.path = path
        self.feed = feed
        self.schema = _schema()
        self.analyzer = analyzer()
        self._lock = threading.Lock()
        self._applied: tuple[str, int] | None = None  # (generation, seq) of the commit this process reads
        self._index: tantivy.Index | None = None
        self._memory: dict | None = None  # the applied record of an in-memory index

    # ---- opening -----------------------------------------------------------------------------------------

    def _open(self) -> tantivy.Index:
        if self._index is not None:
            return self._index
        if self.path is None:
            index = tantivy.Index(self.schema)
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                index = tantivy.Index(self.schema, str(self.path), reuse=True)
            except (ValueError, OSError) as error:  # unreadable: it is derived, so start again
                log.warning("keyword index at %s unreadable (%s): rebuilding it", self.path, error)
                shutil.rmtree(self.path, ignore_errors=True)
                self.path.mkdir(parents=True)
                index = tantivy.Index(self.schema, str(self.path), reuse=False)
        index.register_tokenizer(ANALYZER, self.analyzer)
        self._index = index
        return index

    def _committed(self, index: tantivy.Index) -> tuple[str, int] | None:
        """(generation, seq) the index holds at least, None when it has no record of ours (new, or outdated).
        The record is read before the reader reloads: the commit it describes is then visible."""
        if self.path is None:
            recorded = self._memory
        else:
            try:
                recorded = json.loads((self.path / APPLIED).read_text())
            except (OSError, ValueError):
                recorded = None
        index.reload()
        if not isinstance(recorded, dict) or recorded.get("schema") != SCHEMA_VERSION:
            return None
        return str(recorded["generation"]), int(recorded["seq"])

    def _record(self, generation: str, seq: int) -> None:
        """Write what the last commit applied (atomically: a reader sees the old record or the new one)."""
        record = {"schema": SCHEMA_VERSION, "generation": generation, "seq": seq}
        if self.path is None:
            self._memory = record
            return
        temporary = self.path / f".{APPLIED}.{os.getpid()}"
        with open(temporary, "w") as out:
            json.dump(record, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path / APPLIED)

    # ---- keeping up with the store -----------------------------------------------------------------------

    def catch_up(self) -> None:
        """Apply every change the store has recorded and this index has not (the cheap check first)."""
        head = self.feed.keyword_head()
        if head == self._applied:
            return
        with self._lock:
            try:
                self._catch_up(head)
            except (ValueError, OSError) as error:  # a damaged index: derived, so rebuilt from the store
                if self.path is None or "lock" in str(error).lower():
                    raise
                log.warning("keyword index at %s damaged (%s): rebuilding it", self.path, error)
                self._index = None
                shutil.rmtree(self.path, ignore_errors=True)
                self._catch_up(self.feed.keyword_head())

    def _catch_up(self, head: tuple[str, int]) -> None:
        index = self._open()
        deadline = time.monotonic() + WAIT_FOR_WRITER
        while True:
            committed = self._committed(index)
            rebuild = committed is None or committed[0] != head[0]
            if not rebuild and committed is not None and committed[1] > head[1]:
                head = self.feed.keyword_head()  # another process may have applied changes since head was read
                if committed[0] == head[0] and committed[1] > head[1]:
                    rebuild = True  # ahead of the store: restored from an older backup; forget what it holds
            if not rebuild and committed is not None and committed[1] >= head[1]:
                self._applied = committed
                return
            try:
                writer = index.writer(*((REBUILD_HEAP, REBUILD_THREADS) if rebuild else (WRITER_HEAP, 1)))
            except ValueError:  # another process is applying: its commit is what this one needs
                waited = WAIT_FOR_WRITER - (deadline - time.monotonic())
                if committed is not None and not rebuild and waited > SERVE_STALE_AFTER:
                    # e.g. another worker rebuilding a large index: answer from this one (passages are read
                    # from the SQL store, so a chunk deleted since is dropped there); catch up next time
                    log.warning("keyword index at %s busy in another process: searching it as it is", self.path)
                    self._applied = None
                    return
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
                continue
            break
        try:
            committed = self._committed(index)  # the other process may have finished meanwhile
            if rebuild or committed is None or committed[0] != head[0]:
                generation, seq = self.feed.keyword_head()  # read before the rows: they are at least this new
                writer.delete_all_documents()
                self._add(writer, self.feed.keyword_rows(None))
            else:
                changed, seq = self.feed.keyword_changes(committed[1])
                generation = committed[0]
                for doc_id in changed:
                    writer.delete_documents_by_term("doc_id", doc_id)
                if changed:
                    self._add(writer, self.feed.keyword_rows(changed))
                seq = max(seq, committed[1])
            writer.commit()
            writer.wait_merging_threads()
            self._record(generation, seq)  # still holding the writer lock: records change in commit order
        except BaseException:
            writer.rollback()
            raise
        finally:
            del writer  # releases tantivy's writer lock for the next process
        self._applied = self._committed(index)

    @staticmethod
    def _add(writer: tantivy.IndexWriter, rows: Iterable[KeywordRow]) -> None:
        for row in rows:
            writer.add_document(tantivy.Document(chunk_id=row.chunk_id, doc_id=row.doc_id, terms=row.text,
                                                 source=row.source_key, day=row.day))

    def rebuild(self) -> None:
        """Forget the index and build it again from the store."""
        with self._lock:
            self._index = None
            self._applied = None
            self._memory = None
            if self.path is not None:
                shutil.rmtree(self.path, ignore_errors=True)
        self.catch_up()

    # ---- searching ---------------------------------------------------------------------------------------

    def search(self, query: str, n: int, where: ChunkFilter | None = None) -> list[tuple[str, float]]:
        """The n chunks that best match the query's terms (BM25, higher is better), filtered inside the engine.
        A term counts as often as the query repeats it. Ties go to the smaller chunk id."""
        words = self.analyzer.analyze(query)
        if not words or n <= 0:
            return []
        self.catch_up()
        assert self._index is not None
        schema = self.schema
        query_obj = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "terms", w, index_option="freq")) for w in words])
        filters = self._filters(where)
        if filters:
            query_obj = tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, query_obj), *((tantivy.Occur.Must, tantivy.Query.const_score_query(f, 0.0))
                                                    for f in filters)])
        searcher = self._index.searcher()
        limit = n + TIE_WINDOW
        while True:  # which of several equal scores tantivy returns at the cut depends on segment order
            hits = searcher.search(query_obj, limit, count=False).hits
            found = sorted(((str(searcher.doc(address).get_first("chunk_id")), float(score))
                            for score, address in hits), key=lambda hit: (-hit[1], hit[0].encode()))
            if len(found) < limit or found[-1][1] < found[n - 1][1]:  # every hit tied with the n-th is here
                return found[:n]
            limit *= 2

    def _filters(self, where: ChunkFilter | None) -> list[tantivy.Query]:
        if where is None:
            return []
        schema, found = self.schema, []
        if where.source_key is not None:
            found.append(tantivy.Query.term_query(schema, "source", where.source_key))
        if where.day_from or where.day_to:
            found.append(tantivy.Query.range_query(schema, "day", tantivy.FieldType.Integer,
                                                   max(where.day_from, 1), where.day_to or None))
        return found

    def chunk_ids(self) -> list[str]:
        """Every chunk the index holds, once per indexed copy (the crash audit's view)."""
        self.catch_up()
        assert self._index is not None
        searcher = self._index.searcher()
        hits = searcher.search(tantivy.Query.all_query(), max(searcher.num_docs, 1), count=False).hits
        return [str(searcher.doc(address).get_first("chunk_id")) for _, address in hits]
