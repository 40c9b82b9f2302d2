"""question log: the channel a question came from (line / web) and the web chat's session hash

Revision ID: 0016
Revises: 0002
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every question logged so far came from LINE.
    with op.batch_alter_table("faq_question_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=8), server_default="line", nullable=False))
        batch_op.add_column(sa.Column("web_session", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_faq_question_log_web_session"), ["web_session"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("faq_question_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_faq_question_log_web_session"))
        batch_op.drop_column("web_session")
        batch_op.drop_column("channel")
