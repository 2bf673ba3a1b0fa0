"""The public key that signed each version, so a version signed with a user's key verifies.

``versions.public_key`` holds the signer's EC P-256 public key (PEM); ``key_id`` stays its id.
Rows written before this revision were all signed with the workspace key and keep NULL, which
means exactly that.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("public_key", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("public_key")
