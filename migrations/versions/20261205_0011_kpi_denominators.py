"""kpi: the LINE usage rate's denominator set on the KPI screen (population or households, its date
and source), every setting kept

Revision ID: 0011
Revises: 0001
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

import bot.db

revision = "0011"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kpi_denominators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("set_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_users.id"],
            name=op.f("fk_kpi_denominators_staff_user_id_staff_users"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kpi_denominators")),
    )
    with op.batch_alter_table("kpi_denominators", schema=None) as batch_op:
        batch_op.create_index("ix_kpi_denominators_municipality_id", ["municipality", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("kpi_denominators", schema=None) as batch_op:
        batch_op.drop_index("ix_kpi_denominators_municipality_id")
    op.drop_table("kpi_denominators")
