"""broadcast: approval of notices (department, approver, comment), staff's department and linked LINE
account, LINE statistics units per run, per-notice statistics and the account's friend counts

Revision ID: 0019
Revises: 0004
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

import bot.db

revision = "0019"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("department", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("line_user_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("line_linked_at", bot.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("line_link_code_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("line_link_expires_at", bot.db.UTCDateTime(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_staff_users_line_user_id"), ["line_user_id"])

    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("department", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("approved_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("approved_at", bot.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("review_note", sa.String(length=500), nullable=True))
        batch_op.create_index(batch_op.f("ix_broadcasts_department"), ["department"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_broadcasts_approved_by_staff_users"), "staff_users", ["approved_by"], ["id"], ondelete="SET NULL"
        )
    # Notices scheduled before approval existed were scheduled by PR: approved when created.
    op.execute("UPDATE broadcasts SET approved_at = created_at, approved_by = created_by")

    with op.batch_alter_table("broadcast_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("aggregation_unit", sa.String(length=30), nullable=True))

    op.create_table(
        "notice_statistics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("broadcast_id", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=30), nullable=False),
        sa.Column("first_sent_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("last_sent_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("fetched_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("period_from", sa.String(length=8), nullable=True),
        sa.Column("period_to", sa.String(length=8), nullable=True),
        sa.Column("opens", sa.Integer(), nullable=True),
        sa.Column("clicks", sa.Integer(), nullable=True),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["broadcast_id"], ["broadcasts.id"], name=op.f("fk_notice_statistics_broadcast_id_broadcasts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_statistics")),
        sa.UniqueConstraint("broadcast_id", name=op.f("uq_notice_statistics_broadcast_id")),
    )
    with op.batch_alter_table("notice_statistics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notice_statistics_last_sent_at"), ["last_sent_at"], unique=False)

    op.create_table(
        "line_follower_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("date", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("followers", sa.Integer(), nullable=True),
        sa.Column("targeted_reaches", sa.Integer(), nullable=True),
        sa.Column("blocks", sa.Integer(), nullable=True),
        sa.Column("fetched_at", bot.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_line_follower_snapshots")),
        sa.UniqueConstraint("date", name=op.f("uq_line_follower_snapshots_date")),
    )


def downgrade() -> None:
    op.drop_table("line_follower_snapshots")
    with op.batch_alter_table("notice_statistics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notice_statistics_last_sent_at"))
    op.drop_table("notice_statistics")
    with op.batch_alter_table("broadcast_runs", schema=None) as batch_op:
        batch_op.drop_column("aggregation_unit")
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_broadcasts_approved_by_staff_users"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_broadcasts_department"))
        batch_op.drop_column("review_note")
        batch_op.drop_column("approved_at")
        batch_op.drop_column("approved_by")
        batch_op.drop_column("department")
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_staff_users_line_user_id"), type_="unique")
        batch_op.drop_column("line_link_expires_at")
        batch_op.drop_column("line_link_code_hash")
        batch_op.drop_column("line_linked_at")
        batch_op.drop_column("line_user_id")
        batch_op.drop_column("department")
