"""The SQL layer shared by every store that keeps rows: one SQLAlchemy Core engine per database (SQLite files in
the data folder, or one PostgreSQL database through psycopg 3), its tables (schema.py) and their Alembic
migrations (migrations/, run at start-up; `qa db upgrade` runs them by hand).

May import: qa.errors. The stores (qa.store, qa.conversations, qa.jobs, qa.indexing.progress, qa.sources.web)
build their queries on it; none of them holds SQL written for one dialect only, except the writer lock
(qa.store.locks) and the few expressions Database states per dialect.
"""

from qa.db.database import Database, sqlite_file, sqlite_url

__all__ = ["Database", "sqlite_file", "sqlite_url"]
