"""notices: versions of a notice per resident language, and the language each chunk sends

Revision ID: 0014
Revises: 0004
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broadcast_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("broadcast_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["broadcast_id"], ["broadcasts.id"], name=op.f("fk_broadcast_versions_broadcast_id_broadcasts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_versions")),
        sa.UniqueConstraint("broadcast_id", "language", name="uq_broadcast_versions_broadcast_language"),
    )
    with op.batch_alter_table("broadcast_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_broadcast_versions_broadcast_id"), ["broadcast_id"], unique=False)
    with op.batch_alter_table("broadcast_chunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("broadcast_chunks", schema=None) as batch_op:
        batch_op.drop_column("language")
    with op.batch_alter_table("broadcast_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_broadcast_versions_broadcast_id"))
    op.drop_table("broadcast_versions")
