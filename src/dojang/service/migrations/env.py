"""Alembic environment: the connection is handed over by :func:`dojang.service.db.upgrade`."""

from alembic import context

from dojang.service.db import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
