"""Rating studies: studies, their items and pairs, raters, task lists and ratings.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _fk(column: str, table: str, name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{table}.seq"], ondelete="CASCADE", name=name)


def upgrade() -> None:
    op.create_table(
        "vqscope_studies",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.UniqueConstraint("id", name="uq_vqscope_studies_id"),
    )
    op.create_table(
        "vqscope_study_items",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("study_seq", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("video", sa.Text(), nullable=False),
        sa.Column("source_kind", sa.String(16), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("media", sa.Text(), nullable=True),
        sa.Column("media_type", sa.String(64), nullable=True),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("model_score", sa.Float(), nullable=True),
        sa.Column("scaled_score", sa.Float(), nullable=True),
        sa.Column("label", sa.String(32), nullable=True),
        sa.Column("gold", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("info", sa.Text(), nullable=False),
        sa.UniqueConstraint("id", name="uq_vqscope_study_items_id"),
        _fk("study_seq", "vqscope_studies", "fk_vqscope_study_items_study"),
    )
    op.create_index("ix_vqscope_study_items_study", "vqscope_study_items", ["study_seq", "position"])
    op.create_table(
        "vqscope_study_pairs",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("study_seq", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("second_seq", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _fk("study_seq", "vqscope_studies", "fk_vqscope_study_pairs_study"),
        _fk("first_seq", "vqscope_study_items", "fk_vqscope_study_pairs_first"),
        _fk("second_seq", "vqscope_study_items", "fk_vqscope_study_pairs_second"),
    )
    op.create_index("ix_vqscope_study_pairs_study", "vqscope_study_pairs", ["study_seq"])
    op.create_table(
        "vqscope_study_raters",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("study_seq", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=True),
        sa.UniqueConstraint("id", name="uq_vqscope_study_raters_id"),
        sa.UniqueConstraint("token_hash", name="uq_vqscope_study_raters_token"),
        _fk("study_seq", "vqscope_studies", "fk_vqscope_study_raters_study"),
    )
    op.create_index("ix_vqscope_study_raters_study", "vqscope_study_raters", ["study_seq"])
    op.create_table(
        "vqscope_study_tasks",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rater_seq", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("item_seq", sa.Integer(), nullable=True),
        sa.Column("pair_seq", sa.Integer(), nullable=True),
        sa.Column("swap", sa.Integer(), nullable=False),
        sa.UniqueConstraint("rater_seq", "position", name="uq_vqscope_study_tasks_position"),
        _fk("rater_seq", "vqscope_study_raters", "fk_vqscope_study_tasks_rater"),
        _fk("item_seq", "vqscope_study_items", "fk_vqscope_study_tasks_item"),
        _fk("pair_seq", "vqscope_study_pairs", "fk_vqscope_study_tasks_pair"),
    )
    op.create_table(
        "vqscope_study_ratings",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("study_seq", sa.Integer(), nullable=False),
        sa.Column("rater_seq", sa.Integer(), nullable=False),
        sa.Column("task_seq", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("item_seq", sa.Integer(), nullable=True),
        sa.Column("pair_seq", sa.Integer(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("dimensions", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("preferred_seq", sa.Integer(), nullable=True),
        sa.Column("watched_s", sa.Float(), nullable=True),
        sa.Column("submitted_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("task_seq", name="uq_vqscope_study_ratings_task"),
        _fk("study_seq", "vqscope_studies", "fk_vqscope_study_ratings_study"),
        _fk("rater_seq", "vqscope_study_raters", "fk_vqscope_study_ratings_rater"),
        _fk("task_seq", "vqscope_study_tasks", "fk_vqscope_study_ratings_task"),
    )
    op.create_index("ix_vqscope_study_ratings_study", "vqscope_study_ratings", ["study_seq"])


def downgrade() -> None:
    for table in ("vqscope_study_ratings", "vqscope_study_tasks", "vqscope_study_raters", "vqscope_study_pairs",
                  "vqscope_study_items", "vqscope_studies"):
        op.drop_table(table)
