"""Alembic environment. `storage.migrate` hands in an open connection, so migrations run in the
same process and event loop as the bot (and on SQLite or PostgreSQL alike)."""

from alembic import context

from storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
