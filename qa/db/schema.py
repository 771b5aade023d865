"""Every table of the SQL layer as SQLAlchemy Core metadata: what queries are built from. The DDL that creates
and changes them is the Alembic history in qa/db/migrations (the baseline reproduces the tables the release
before it made, so a database made by that release is upgraded in place, not recreated).

Tables are grouped by the database that holds them: the embedded stores keep each group in a file of its own
in the data folder (so a chat never waits for an ingest's write), PostgreSQL holds every group."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, LargeBinary, MetaData, Table, Text

metadata = MetaData()

documents = Table(
    "documents", metadata,
    Column("doc_id", Text, primary_key=True), Column("title", Text, nullable=False), Column("source", Text),
    Column("published", Text), Column("url", Text), Column("path", Text), Column("text", Text, nullable=False),
    Column("content_hash", Text, nullable=False), Column("n_chunks", Integer, nullable=False),
    Column("embed_model", Text, nullable=False), Column("indexed_at", Text), Column("author", Text),
)
chunks = Table(
    "chunks", metadata,
    Column("id", BigInteger, primary_key=True), Column("chunk_id", Text, nullable=False, unique=True),
    Column("doc_id", Text, nullable=False), Column("idx", Integer, nullable=False),
    Column("start", Integer, nullable=False), Column("end", Integer, nullable=False),
    Column("source_key", Text, nullable=False), Column("day", Integer, nullable=False),
    Column("n_terms", Integer, nullable=False),
)
spans = Table(
    "spans", metadata,
    Column("kind", Text, primary_key=True), Column("doc_id", Text, primary_key=True),
    Column("start", Integer, primary_key=True), Column("end", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
)
signatures = Table(
    "signatures", metadata,
    Column("seq", BigInteger, primary_key=True), Column("doc_id", Text, nullable=False, unique=True),
    Column("signature", LargeBinary, nullable=False),
)
copies = Table(  # listed in insertion order (SQLite's rowid, PostgreSQL's `seq`: Database.insertion_order)
    "copies", metadata,
    Column("doc_id", Text, primary_key=True), Column("url", Text, primary_key=True), Column("source", Text),
    Column("published", Text), Column("copy_id", Text, nullable=False),
)
pending = Table("pending", metadata, Column("doc_id", Text, primary_key=True))
meta = Table("meta", metadata, Column("key", Text, primary_key=True), Column("value", Text, nullable=False))
keyword_changes = Table(
    "keyword_changes", metadata, Column("doc_id", Text, primary_key=True), Column("seq", BigInteger, nullable=False),
)

conversations = Table(  # `created`: ISO text in SQLite, timestamptz in PostgreSQL (Database.iso_time)
    "conversations", metadata,
    Column("id", Text, primary_key=True), Column("client", Text, nullable=False), Column("created", Text),
    Column("title", Text, nullable=False),
)
turns = Table(
    "turns", metadata,
    Column("conversation_id", Text, primary_key=True), Column("idx", Integer, primary_key=True),
    Column("question", Text, nullable=False), Column("standalone", Text, nullable=False),
    Column("answer", Text, nullable=False), Column("created", Text), Column("result", Text),  # + seq on PostgreSQL
)
feedback = Table(
    "feedback", metadata,
    Column("id", BigInteger, primary_key=True), Column("rating", Text, nullable=False),
    Column("question", Text, nullable=False), Column("answer", Text, nullable=False),
    Column("refused", Integer, nullable=False), Column("note", Text), Column("conversation_id", Text),
    Column("client", Text, nullable=False), Column("evidence", Text, nullable=False),
    Column("doc_ids", Text, nullable=False), Column("created", Text),
)

jobs = Table(
    "jobs", metadata,
    Column("job_id", Text, primary_key=True), Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False), Column("created", Float, nullable=False),
    Column("heartbeat", Float, nullable=False), Column("done", Integer, nullable=False), Column("total", Integer),
    Column("report", Text), Column("error", Text),
)
ingest_progress = Table(
    "ingest_progress", metadata,
    Column("id", Integer, primary_key=True), Column("document", Text, nullable=False),
    Column("done", Integer, nullable=False), Column("total", Integer, nullable=False),
    Column("started", Float, nullable=False), Column("updated", Float, nullable=False),
)
shared_keys = Table(
    "shared_keys", metadata, Column("name", Text, primary_key=True), Column("value", LargeBinary, nullable=False),
)
validators = Table(
    "validators", metadata,
    Column("url", Text, primary_key=True), Column("etag", Text), Column("last_modified", Text),
    Column("doc_id", Text), Column("entries", Text),
)

# which tables each group holds (an embedded data folder keeps a file per group; PostgreSQL holds them all)
DOCUMENTS, CONVERSATIONS, JOBS, SHARED, VALIDATORS = "documents", "conversations", "jobs", "shared", "validators"
EVERY_GROUP = frozenset({DOCUMENTS, CONVERSATIONS, JOBS, SHARED, VALIDATORS})
