"""Initial schema: jobs, their tags and dimension scores, alert rules and alert events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vqscope_jobs",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("source_kind", sa.String(8), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("video", sa.Text(), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.String(32), nullable=True),
        sa.Column("delete_source", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("scaled_score", sa.Float(), nullable=True),
        sa.Column("grade", sa.String(32), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.UniqueConstraint("id", name="uq_vqscope_jobs_id"),
    )
    op.create_index("ix_vqscope_jobs_state_seq", "vqscope_jobs", ["state", "seq"])
    op.create_index("ix_vqscope_jobs_created_at", "vqscope_jobs", ["created_at"])
    op.create_index("ix_vqscope_jobs_finished_at", "vqscope_jobs", ["finished_at"])
    op.create_index("ix_vqscope_jobs_batch_id", "vqscope_jobs", ["batch_id"])
    op.create_index("ix_vqscope_jobs_grade", "vqscope_jobs", ["grade"])

    op.create_table(
        "vqscope_job_tags",
        sa.Column("job_seq", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("job_seq", "tag"),
        sa.ForeignKeyConstraint(["job_seq"], ["vqscope_jobs.seq"], ondelete="CASCADE", name="fk_vqscope_job_tags_job"),
    )
    op.create_index("ix_vqscope_job_tags_tag", "vqscope_job_tags", ["tag"])

    op.create_table(
        "vqscope_job_dimensions",
        sa.Column("job_seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("grade", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("job_seq", "name"),
        sa.ForeignKeyConstraint(
            ["job_seq"], ["vqscope_jobs.seq"], ondelete="CASCADE", name="fk_vqscope_job_dimensions_job"
        ),
    )
    op.create_index("ix_vqscope_job_dimensions_name_grade", "vqscope_job_dimensions", ["name", "grade"])

    op.create_table(
        "vqscope_alert_rules",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("since", sa.Float(), nullable=True),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("last_count", sa.Integer(), nullable=True),
        sa.Column("evaluated_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )

    op.create_table(
        "vqscope_alert_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("webhook", sa.Text(), nullable=True),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("delivery_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_vqscope_alert_events_at", "vqscope_alert_events", ["at"])


def downgrade() -> None:
    op.drop_table("vqscope_alert_events")
    op.drop_table("vqscope_alert_rules")
    op.drop_table("vqscope_job_dimensions")
    op.drop_table("vqscope_job_tags")
    op.drop_table("vqscope_jobs")
