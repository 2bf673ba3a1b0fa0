"""Assessments: a version's attack-test results, bound to its digest and the policy's.

``bastion assess NAME@VER`` stores one row per run; the release gate (``review approve``,
``alias set … production``) reads them against the workspace's release policy.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assessments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("policy_digest", sa.String(64), nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
    )
    op.create_index("ix_assessments_version", "assessments", ["version_id"])


def downgrade() -> None:
    op.drop_index("ix_assessments_version", table_name="assessments")
    op.drop_table("assessments")
