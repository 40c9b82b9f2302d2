"""notices: broadcasts, runs, chunks, deliveries

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op

import bot.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("is_emergency", sa.Boolean(), nullable=False),
        sa.Column("segment_name", sa.String(length=64), nullable=True),
        sa.Column("rule", sa.JSON(), nullable=True),
        sa.Column("schedule", sa.JSON(), nullable=False),
        sa.Column("next_run_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("last_run_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", bot.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["staff_users.id"], name=op.f("fk_broadcasts_created_by_staff_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcasts")),
    )
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.create_index("ix_broadcasts_status_next_run_at", ["status", "next_run_at"], unique=False)

    op.create_table(
        "broadcast_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("broadcast_id", sa.Integer(), nullable=False),
        sa.Column("occurrence_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("recipient_count", sa.Integer(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("started_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("finished_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("block_count", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["broadcast_id"], ["broadcasts.id"], name=op.f("fk_broadcast_runs_broadcast_id_broadcasts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_runs")),
        sa.UniqueConstraint("broadcast_id", "occurrence_at", name="uq_broadcast_runs_occurrence"),
    )
    with op.batch_alter_table("broadcast_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_broadcast_runs_broadcast_id"), ["broadcast_id"], unique=False)

    op.create_table(
        "broadcast_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("recipient_count", sa.Integer(), nullable=False),
        sa.Column("retry_key", sa.String(length=36), nullable=False),
        sa.Column("sent_to", sa.JSON(), nullable=True),
        sa.Column("skipped_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("prepared_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("sent_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("block_window_ends_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("is_already_accepted", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["broadcast_runs.id"], name=op.f("fk_broadcast_chunks_run_id_broadcast_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_chunks")),
        sa.UniqueConstraint("retry_key", name=op.f("uq_broadcast_chunks_retry_key")),
        sa.UniqueConstraint("run_id", "seq", name="uq_broadcast_chunks_run_seq"),
    )
    with op.batch_alter_table("broadcast_chunks", schema=None) as batch_op:
        batch_op.create_index("ix_broadcast_chunks_run_id_status", ["run_id", "status"], unique=False)

    op.create_table(
        "broadcast_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chunk_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["chunk_id"], ["broadcast_chunks.id"], name=op.f("fk_broadcast_deliveries_chunk_id_broadcast_chunks"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_deliveries")),
    )
    with op.batch_alter_table("broadcast_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_broadcast_deliveries_chunk_id"), ["chunk_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_broadcast_deliveries_resident_id"), ["resident_id"], unique=False)


def downgrade() -> None:
    op.drop_table("broadcast_deliveries")
    op.drop_table("broadcast_chunks")
    op.drop_table("broadcast_runs")
    op.drop_table("broadcasts")
