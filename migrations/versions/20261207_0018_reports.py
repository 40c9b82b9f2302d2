"""reports: residents' reports (category, photo, place, text) and their status pushes

Revision ID: 0018
Revises: 0001
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

import bot.db

revision = "0018"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(length=32), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=True),
        sa.Column("resident_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("photo_status", sa.String(length=16), nullable=False),
        sa.Column("photo_file", sa.String(length=80), nullable=True),
        sa.Column("photo_type", sa.String(length=16), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("address", sa.String(length=300), nullable=True),
        sa.Column("place_text", sa.String(length=300), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("reject_reason", sa.String(length=500), nullable=True),
        sa.Column("staff_note", sa.Text(), nullable=True),
        sa.Column("created_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("submitted_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("status_changed_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("updated_at", bot.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("number", name=op.f("uq_reports_number")),
    )
    op.create_index("ix_reports_resident_status", "reports", ["resident_id", "status"])
    op.create_index("ix_reports_status_submitted", "reports", ["status", "submitted_at"])
    op.create_table(
        "report_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("retry_key", sa.String(length=36), nullable=False),
        sa.Column("created_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("sent_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("is_dropped", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"], name=op.f("fk_report_notices_report_id_reports"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_notices")),
        sa.UniqueConstraint("report_id", "status", name="uq_report_notices_report_status"),
    )
    op.create_index(op.f("ix_report_notices_report_id"), "report_notices", ["report_id"])
    op.create_index(op.f("ix_report_notices_sent_at"), "report_notices", ["sent_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_report_notices_sent_at"), table_name="report_notices")
    op.drop_index(op.f("ix_report_notices_report_id"), table_name="report_notices")
    op.drop_table("report_notices")
    op.drop_index("ix_reports_status_submitted", table_name="reports")
    op.drop_index("ix_reports_resident_status", table_name="reports")
    op.drop_table("reports")
