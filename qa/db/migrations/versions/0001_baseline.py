"""Baseline: the tables of the release before Alembic (main at ddbde2a), made in place from whatever an older
database holds, so a data folder or a PostgreSQL database of any earlier release upgrades without a rebuild.

- SQLite, one file per group. documents: a store from before the keyword index moved to tantivy loses its FTS5
  tables (the index is rebuilt from the chunks on first use); one from before FTS gets integer chunk keys, the
  filter columns and `sentence` span rows; `author` and `n_terms` are added where missing; the row counts and
  the keyword change feed's head are kept in `meta`. conversations: turns keep their answer object (`result`).
  jobs and validators: as they were.
- PostgreSQL: that release's five numbered migrations (table schema_migrations), the missing ones applied in
  order and still recorded there, so that release keeps running on a database this one made until a later
  revision changes a table. A database numbered beyond 5 is refused.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

import secrets

from alembic import context, op
from sqlalchemy import Connection

from qa.errors import StoreUnavailable

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SQLITE_DOCUMENTS = [
    """CREATE TABLE IF NOT EXISTS documents (
  doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT, published TEXT, url TEXT, path TEXT,
  text TEXT NOT NULL, content_hash TEXT NOT NULL, n_chunks INTEGER NOT NULL, embed_model TEXT NOT NULL,
  indexed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, author TEXT
)""",
    """CREATE TABLE IF NOT EXISTS chunks (
  id INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL, idx INTEGER NOT NULL,
  start INTEGER NOT NULL, "end" INTEGER NOT NULL, source_key TEXT NOT NULL DEFAULT '', day INTEGER NOT NULL DEFAULT 0,
  n_terms INTEGER NOT NULL DEFAULT 0
)""",
    "CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id)",
    # put() and delete() remove an article's spans by doc_id; the primary key starts with kind
    """CREATE TABLE IF NOT EXISTS spans (
  kind TEXT NOT NULL, doc_id TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, vector BLOB NOT NULL,
  PRIMARY KEY (kind, doc_id, start)
)""",
    "CREATE INDEX IF NOT EXISTS spans_doc ON spans(doc_id)",
    # spans stored without a vector (QA_SENTENCE_VECTORS=lazy or background), for the background fill
    "CREATE INDEX IF NOT EXISTS spans_waiting ON spans(kind, doc_id, start) WHERE length(vector) = 0",
    """CREATE TABLE IF NOT EXISTS signatures (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL UNIQUE, signature BLOB NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS copies (
  doc_id TEXT NOT NULL, url TEXT NOT NULL, source TEXT, published TEXT, copy_id TEXT NOT NULL,
  PRIMARY KEY (doc_id, url)
)""",
    "CREATE INDEX IF NOT EXISTS copies_copy ON copies(copy_id)",
    "CREATE TABLE IF NOT EXISTS pending (doc_id TEXT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS keyword_changes (doc_id TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS keyword_changes_seq ON keyword_changes(seq)",
]
SQLITE_CONVERSATIONS = [
    "CREATE TABLE IF NOT EXISTS turns (conversation_id TEXT NOT NULL, idx INTEGER NOT NULL,"
    " question TEXT NOT NULL, standalone TEXT NOT NULL, answer TEXT NOT NULL,"
    " created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (conversation_id, idx))",
    "CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, client TEXT NOT NULL,"
    " created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), title TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS conversations_client ON conversations(client, created)",
    "CREATE TABLE IF NOT EXISTS feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, rating TEXT NOT NULL,"
    " question TEXT NOT NULL, answer TEXT NOT NULL, refused INTEGER NOT NULL, note TEXT,"
    " conversation_id TEXT, client TEXT NOT NULL, evidence TEXT NOT NULL, doc_ids TEXT NOT NULL,"
    " created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
]
SQLITE_JOBS = [
    "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL,"
    " created REAL NOT NULL, heartbeat REAL NOT NULL, done INTEGER NOT NULL DEFAULT 0, total INTEGER, report TEXT,"
    " error TEXT)",
]
SQLITE_VALIDATORS = [
    "CREATE TABLE IF NOT EXISTS validators (url TEXT PRIMARY KEY, etag TEXT, last_modified TEXT, doc_id TEXT,"
    " entries TEXT)",
]
LEGACY_KEYWORD_TABLES = ("chunk_terms_df", "chunk_terms_postings", "chunk_terms")  # FTS5, before tantivy
LAST_LEGACY_VERSION = 5

POSTGRES_RELEASES: list[tuple[int, str, str]] = [
    (1, "documents, chunks with a tsvector keyword index, spans, pending marks, counts, conversations", """
CREATE TABLE documents (
  doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT, published TEXT, url TEXT, path TEXT,
  text TEXT NOT NULL, content_hash TEXT NOT NULL, n_chunks INTEGER NOT NULL, embed_model TEXT NOT NULL,
  indexed_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
);
CREATE TABLE chunks (
  id BIGSERIAL PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL, idx INTEGER NOT NULL,
  start INTEGER NOT NULL, "end" INTEGER NOT NULL, source_key TEXT NOT NULL DEFAULT '',
  day INTEGER NOT NULL DEFAULT 0, n_terms INTEGER NOT NULL DEFAULT 0, terms TSVECTOR NOT NULL
);
CREATE INDEX chunks_doc ON chunks(doc_id);
CREATE INDEX chunks_terms ON chunks USING GIN (terms);
CREATE TABLE term_df (term TEXT PRIMARY KEY, df INTEGER NOT NULL);
CREATE TABLE spans (
  kind TEXT NOT NULL, doc_id TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
  vector BYTEA NOT NULL, PRIMARY KEY (kind, doc_id, start)
);
CREATE TABLE pending (doc_id TEXT PRIMARY KEY);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('documents', '0'), ('chunks', '0'), ('terms', '0');
CREATE TABLE shared_keys (name TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE turns (
  conversation_id TEXT NOT NULL, idx INTEGER NOT NULL, question TEXT NOT NULL, standalone TEXT NOT NULL,
  answer TEXT NOT NULL, created TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (conversation_id, idx)
);
"""),
    (2, "author, spans by doc_id, text signatures and copies, conversation owners, jobs, ingest progress", """
ALTER TABLE documents ADD COLUMN author TEXT;
CREATE INDEX spans_doc ON spans(doc_id);
CREATE TABLE signatures (seq BIGSERIAL PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, signature BYTEA NOT NULL);
CREATE TABLE copies (
  doc_id TEXT NOT NULL, url TEXT NOT NULL, source TEXT, published TEXT, copy_id TEXT NOT NULL,
  seq BIGSERIAL NOT NULL, PRIMARY KEY (doc_id, url)
);
CREATE INDEX copies_copy ON copies(copy_id);
CREATE TABLE conversations (
  id TEXT PRIMARY KEY, client TEXT NOT NULL, created TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
  title TEXT NOT NULL, seq BIGSERIAL NOT NULL
);
CREATE INDEX conversations_client ON conversations(client, created);
CREATE TABLE jobs (
  job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
  heartbeat DOUBLE PRECISION NOT NULL, done INTEGER NOT NULL DEFAULT 0, total INTEGER, report TEXT, error TEXT
);
CREATE TABLE ingest_progress (
  id INTEGER PRIMARY KEY CHECK (id = 1), document TEXT NOT NULL, done INTEGER NOT NULL, total INTEGER NOT NULL,
  started DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL
);
"""),
    (3, "turns keep their answer object, readers' feedback", """
ALTER TABLE turns ADD COLUMN result TEXT;
CREATE TABLE feedback (
  id BIGSERIAL PRIMARY KEY, rating TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,
  refused INTEGER NOT NULL, note TEXT, conversation_id TEXT, client TEXT NOT NULL, evidence TEXT NOT NULL,
  doc_ids TEXT NOT NULL, created TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
"""),
    (4, "keyword index out of PostgreSQL: a change feed for each replica's tantivy index", """
CREATE TABLE keyword_changes (doc_id TEXT PRIMARY KEY, seq BIGINT NOT NULL);
CREATE INDEX keyword_changes_seq ON keyword_changes(seq);
INSERT INTO meta VALUES ('keyword_seq', '0'), ('keyword_generation', md5(random()::text));
DROP INDEX chunks_terms;
ALTER TABLE chunks DROP COLUMN terms;
DROP TABLE term_df;
DELETE FROM meta WHERE key IN ('analyzer', 'terms');
"""),
    (5, "spans stored without a vector, for the background fill", """
CREATE INDEX spans_waiting ON spans (kind, doc_id, start) WHERE octet_length(vector) = 0;
"""),
]


def _run(bind: Connection, statements: list[str]) -> None:
    for statement in statements:
        bind.exec_driver_sql(statement)


def _columns(bind: Connection, table: str) -> set[str]:
    return {r[1] for r in bind.exec_driver_sql(f"PRAGMA table_info({table})")}


def _exists(bind: Connection, name: str) -> bool:
    return bind.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name=?", (name,)).first() is not None


def _sqlite_documents(bind: Connection) -> None:
    legacy = [t for t in LEGACY_KEYWORD_TABLES if _exists(bind, t)]
    for table in legacy:  # the keyword index lives in tantivy now, built from the chunks on first use
        bind.exec_driver_sql(f"DROP TABLE {table}")
    if legacy:
        bind.exec_driver_sql("DELETE FROM meta WHERE key IN ('analyzer', 'terms')")
    columns = _columns(bind, "chunks")
    if "id" in columns and "n_terms" not in columns:
        bind.exec_driver_sql("ALTER TABLE chunks ADD COLUMN n_terms INTEGER NOT NULL DEFAULT 0")
    if columns and "id" not in columns:  # before FTS: chunks keyed by chunk_id, sentence vectors apart
        bind.exec_driver_sql("ALTER TABLE chunks RENAME TO chunks_legacy")
        bind.exec_driver_sql("DROP INDEX IF EXISTS chunks_doc")
        bind.exec_driver_sql(SQLITE_DOCUMENTS[1])
        bind.exec_driver_sql(
            'INSERT INTO chunks (chunk_id, doc_id, idx, start, "end", source_key, day)'
            " SELECT c.chunk_id, c.doc_id, c.idx, c.start, c.\"end\", lower(COALESCE(d.source, '')),"
            " COALESCE(CAST(replace(substr(d.published, 1, 10), '-', '') AS INTEGER), 0)"
            " FROM chunks_legacy c JOIN documents d ON d.doc_id = c.doc_id ORDER BY c.chunk_id")
        bind.exec_driver_sql("DROP TABLE chunks_legacy")
        if _exists(bind, "sentences"):
            bind.exec_driver_sql(SQLITE_DOCUMENTS[3])
            bind.exec_driver_sql('INSERT INTO spans SELECT \'sentence\', doc_id, start, "end", vector FROM sentences')
            bind.exec_driver_sql("DROP TABLE sentences")
        bind.exec_driver_sql("DELETE FROM meta WHERE key IN ('generation', 'analyzer')")
    _run(bind, SQLITE_DOCUMENTS)
    if "author" not in _columns(bind, "documents"):
        bind.exec_driver_sql("ALTER TABLE documents ADD COLUMN author TEXT")
    # row counts (count() is asked on every /health; COUNT(*) reads the whole table), the change feed's head
    bind.exec_driver_sql("INSERT OR IGNORE INTO meta SELECT 'documents', COUNT(*) FROM documents")
    bind.exec_driver_sql("INSERT OR IGNORE INTO meta SELECT 'chunks', COUNT(*) FROM chunks")
    bind.exec_driver_sql("INSERT OR IGNORE INTO meta VALUES ('keyword_seq', '0')")
    bind.exec_driver_sql("INSERT OR IGNORE INTO meta VALUES ('keyword_generation', ?)", (secrets.token_hex(8),))


def _sqlite_conversations(bind: Connection) -> None:
    _run(bind, SQLITE_CONVERSATIONS)
    if "result" not in _columns(bind, "turns"):  # from before turns kept their answer object
        bind.exec_driver_sql("ALTER TABLE turns ADD COLUMN result TEXT")


def _postgres(bind: Connection) -> None:
    bind.exec_driver_sql("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                         " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    done = {r[0] for r in bind.exec_driver_sql("SELECT version FROM schema_migrations")}
    if done and max(done) > LAST_LEGACY_VERSION:
        raise StoreUnavailable(f"the database schema is version {max(done)}, newer than this release knows "
                               f"({LAST_LEGACY_VERSION}); upgrade the API processes")
    for version, name, sql in POSTGRES_RELEASES:
        if version not in done:
            for statement in filter(None, (s.strip() for s in sql.split(";\n"))):
                bind.exec_driver_sql(statement.rstrip(";"))
            bind.exec_driver_sql("INSERT INTO schema_migrations (version, name) VALUES (%(v)s, %(n)s)",
                                 {"v": version, "n": name})


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _postgres(bind)
        return
    groups = context.config.attributes["groups"]
    if "documents" in groups:
        _sqlite_documents(bind)
    if "conversations" in groups:
        _sqlite_conversations(bind)
    if "jobs" in groups:
        _run(bind, SQLITE_JOBS)
    if "validators" in groups:
        _run(bind, SQLITE_VALIDATORS)


def downgrade() -> None:
    raise NotImplementedError("restore the backup taken before upgrading (README: Upgrades)")
