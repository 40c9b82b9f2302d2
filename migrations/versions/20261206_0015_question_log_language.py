"""question log: the language a question was detected in (NULL: Japanese, or asked before detection)

Revision ID: 0015
Revises: 0002
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("faq_question_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("faq_question_log", schema=None) as batch_op:
        batch_op.drop_column("language")
