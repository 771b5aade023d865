"""Alembic's entry point for this package's migrations. At run time qa.db.Database.upgrade passes its own
connection (already in a transaction, under the migration lock) and the table groups that database holds; by
hand, `qa db upgrade` does the same. Nothing here reads an alembic.ini or the network."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run the migrations with `qa db upgrade` (it knows the data folder and QA_DATABASE_URL)")
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
