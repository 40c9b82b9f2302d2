"""faq imports: a job row per CSV import and its staging rows, so an import is written in short transactions

Revision ID: 0008_faq_imports
Revises: 0006
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

import bot.db

revision = "0008_faq_imports"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "faq_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("published", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("created_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("finished_at", bot.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["staff_user_id"], ["staff_users.id"],
                                name=op.f("fk_faq_imports_staff_user_id_staff_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_imports")),
    )
    with op.batch_alter_table("faq_imports", schema=None) as batch_op:
        batch_op.create_index("ix_faq_imports_municipality_state", ["municipality", "state"], unique=False)
    op.create_table(
        "faq_import_rows",
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.String(length=128), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=40), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("alternates", sa.JSON(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("reviewed_at", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["import_id"], ["faq_imports.id"],
                                name=op.f("fk_faq_import_rows_import_id_faq_imports"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("import_id", "position", name=op.f("pk_faq_import_rows")),
    )


def downgrade() -> None:
    op.drop_table("faq_import_rows")
    with op.batch_alter_table("faq_imports", schema=None) as batch_op:
        batch_op.drop_index("ix_faq_imports_municipality_state")
    op.drop_table("faq_imports")
