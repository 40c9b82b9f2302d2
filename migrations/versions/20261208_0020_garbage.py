"""garbage: the sorting dictionary, the 5374 calendar, residents' garbage area and the reminders

Revision ID: 0020
Revises: 0001
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

import bot.db

revision = "0020"
down_revision = "0001"
branch_labels = None
depends_on = "0003"  # garbage_residents refers to residents


def upgrade() -> None:
    op.create_table(
        "garbage_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kana", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("remarks", sa.Text(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("updated_at", bot.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_garbage_items")),
    )
    op.create_index("ix_garbage_items_municipality", "garbage_items", ["municipality", "source"], unique=False)
    op.create_table(
        "garbage_kinds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("sublabel", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_garbage_kinds")),
        sa.UniqueConstraint("municipality", "label", name="uq_garbage_kinds_label"),
    )
    op.create_table(
        "garbage_areas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("center", sa.String(length=100), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_garbage_areas")),
        sa.UniqueConstraint("municipality", "name", name="uq_garbage_areas_name"),
    )
    op.create_table(
        "garbage_breaks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(length=32), nullable=False),
        sa.Column("center", sa.String(length=100), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_garbage_breaks")),
    )
    op.create_index(op.f("ix_garbage_breaks_municipality"), "garbage_breaks", ["municipality"], unique=False)
    op.create_table(
        "garbage_residents",
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(length=32), nullable=False),
        sa.Column("area", sa.String(length=200), nullable=False),
        sa.Column("consented_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("is_reminder_enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", bot.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.id"], name=op.f("fk_garbage_residents_resident_id_residents"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("resident_id", name=op.f("pk_garbage_residents")),
    )
    op.create_table(
        "garbage_reminder_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(length=32), nullable=False),
        sa.Column("collection_date", sa.Date(), nullable=False),
        sa.Column("area", sa.String(length=200), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("recipient_count", sa.Integer(), nullable=False),
        sa.Column("created_at", bot.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_garbage_reminder_runs")),
        sa.UniqueConstraint("municipality", "collection_date", "area", name="uq_garbage_reminder_runs"),
    )
    op.create_table(
        "garbage_reminder_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("line_user_ids", sa.JSON(), nullable=False),
        sa.Column("retry_key", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", bot.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["garbage_reminder_runs.id"],
                                name=op.f("fk_garbage_reminder_chunks_run_id_garbage_reminder_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_garbage_reminder_chunks")),
    )
    op.create_index(op.f("ix_garbage_reminder_chunks_run_id"), "garbage_reminder_chunks", ["run_id"], unique=False)
    op.create_index("ix_garbage_reminder_chunks_status", "garbage_reminder_chunks", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_garbage_reminder_chunks_status", table_name="garbage_reminder_chunks")
    op.drop_index(op.f("ix_garbage_reminder_chunks_run_id"), table_name="garbage_reminder_chunks")
    op.drop_table("garbage_reminder_chunks")
    op.drop_table("garbage_reminder_runs")
    op.drop_table("garbage_residents")
    op.drop_table("garbage_breaks")
    op.drop_index("ix_garbage_items_municipality", table_name="garbage_items")
    op.drop_table("garbage_items")
    op.drop_table("garbage_areas")
    op.drop_table("garbage_kinds")
