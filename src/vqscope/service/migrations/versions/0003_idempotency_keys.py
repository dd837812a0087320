"""Idempotency keys of submissions: a retried POST with the same key makes no second job.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vqscope_idempotency_keys",
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("job_ids", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    op.create_index("ix_vqscope_idempotency_keys_created_at", "vqscope_idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_vqscope_idempotency_keys_created_at", table_name="vqscope_idempotency_keys")
    op.drop_table("vqscope_idempotency_keys")
