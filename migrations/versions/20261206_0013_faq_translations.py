"""faq: translations of knowledge-base entries per resident language

Revision ID: 0013
Revises: 0002
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

import bot.db

revision = "0013"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "faq_translations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=40), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("alternates", sa.JSON(), nullable=False),
        sa.Column("follows", sa.Date(), nullable=True),
        sa.Column("is_staff_edited", sa.Boolean(), nullable=False),
        sa.Column("updated_at", bot.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["faq_entries.id"], name=op.f("fk_faq_translations_entry_id_faq_entries"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_translations")),
        sa.UniqueConstraint("entry_id", "language", name="uq_faq_translations_entry_id_language"),
    )


def downgrade() -> None:
    op.drop_table("faq_translations")
