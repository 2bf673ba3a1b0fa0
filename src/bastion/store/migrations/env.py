"""Alembic environment: always run on the connection Bastion hands over."""

from __future__ import annotations

from alembic import context

from bastion.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
context.run_migrations()
