"""faq workbench: entry history, review decisions on unanswered-question clusters, import drafts

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op

import bot.db

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "faq_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(length=32), nullable=False),
        sa.Column("entry_id", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_users.id"], name=op.f("fk_faq_revisions_staff_user_id_staff_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_revisions")),
    )
    with op.batch_alter_table("faq_revisions", schema=None) as batch_op:
        batch_op.create_index("ix_faq_revisions_municipality_entry_id", ["municipality", "entry_id"], unique=False)

    op.create_table(
        "faq_review_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("cluster_key", sa.String(length=64), nullable=False),
        sa.Column("representative", sa.Text(), nullable=False),
        sa.Column("member_texts", sa.JSON(), nullable=False),
        sa.Column("examples", sa.JSON(), nullable=False),
        sa.Column("question_count", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("decided_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_users.id"], name=op.f("fk_faq_review_decisions_staff_user_id_staff_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_review_decisions")),
    )
    with op.batch_alter_table("faq_review_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_faq_review_decisions_municipality_kind", ["municipality", "kind"], unique=False)

    op.create_table(
        "faq_review_marks",
        sa.Column("log_id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["faq_review_decisions.id"],
            name=op.f("fk_faq_review_marks_decision_id_faq_review_decisions"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["log_id"], ["faq_question_log.id"], name=op.f("fk_faq_review_marks_log_id_faq_question_log"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("log_id", name=op.f("pk_faq_review_marks")),
    )
    with op.batch_alter_table("faq_review_marks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_faq_review_marks_decision_id"), ["decision_id"], unique=False)


    op.create_table(
        "faq_import_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("municipality", sa.String(length=32), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("csv_text", sa.Text(), nullable=False),
        sa.Column("created_at", bot.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_users.id"], name=op.f("fk_faq_import_drafts_staff_user_id_staff_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_import_drafts")),
        sa.UniqueConstraint("token", name=op.f("uq_faq_import_drafts_token")),
    )


def downgrade() -> None:
    op.drop_table("faq_import_drafts")
    with op.batch_alter_table("faq_review_marks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_faq_review_marks_decision_id"))
    op.drop_table("faq_review_marks")
    with op.batch_alter_table("faq_review_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_faq_review_decisions_municipality_kind")
    op.drop_table("faq_review_decisions")
    with op.batch_alter_table("faq_revisions", schema=None) as batch_op:
        batch_op.drop_index("ix_faq_revisions_municipality_entry_id")
    op.drop_table("faq_revisions")
