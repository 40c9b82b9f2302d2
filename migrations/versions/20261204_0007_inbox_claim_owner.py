"""inbox: the owner of a claim (host/boot/pid/start/instance), so dead owners' claims are taken back at once

Revision ID: 0007
Revises: 0001
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_owner", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.drop_column("claim_owner")
