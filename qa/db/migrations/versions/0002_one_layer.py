"""One class per role on both databases: what the roles that had a file or a table of their own now share.

- PostgreSQL: turns get an insertion order (`seq`, as conversations and copies have), which the quotas use to
  break ties between turns of the same instant; the fetch validators (ETag / Last-Modified per URL) move into
  the database, so every replica sends them (they were a SQLite file in each replica's data folder).
- SQLite: the documents file also holds the running ingest's progress (it was ingest-progress.json) and the
  shared keys (the client-token key was client.key: its bytes are kept, so issued tokens stay valid).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from pathlib import Path

from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CLIENT_KEY = "client-tokens"  # qa.store.keys.CLIENT_KEY: the name of the client-token key


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql("ALTER TABLE turns ADD COLUMN seq BIGSERIAL")
        bind.exec_driver_sql("CREATE TABLE validators (url TEXT PRIMARY KEY, etag TEXT, last_modified TEXT,"
                             " doc_id TEXT, entries TEXT)")
        return
    if "shared" not in context.config.attributes["groups"]:
        return
    bind.exec_driver_sql("CREATE TABLE IF NOT EXISTS ingest_progress (id INTEGER PRIMARY KEY CHECK (id = 1),"
                         " document TEXT NOT NULL, done INTEGER NOT NULL, total INTEGER NOT NULL,"
                         " started REAL NOT NULL, updated REAL NOT NULL)")
    bind.exec_driver_sql("CREATE TABLE IF NOT EXISTS shared_keys (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
    key_file = Path(bind.engine.url.database or "").parent / "client.key"
    if key_file.is_file() and len(key := key_file.read_bytes()) >= 32:
        bind.exec_driver_sql("INSERT OR IGNORE INTO shared_keys VALUES (?, ?)", (CLIENT_KEY, key))


def downgrade() -> None:
    raise NotImplementedError("restore the backup taken before upgrading (README: Upgrades)")
