"""disaster: disaster mode's state per city and the city's shelters from open data

Revision ID: 0017
Revises: 0001
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

import bot.db

revision = "0017"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disaster_state",
        sa.Column("municipality", sa.String(length=32), nullable=False),
        sa.Column("is_on", sa.Boolean(), nullable=False),
        sa.Column("hazard", sa.String(length=16), nullable=True),
        sa.Column("is_menu_applied", sa.Boolean(), nullable=False),
        sa.Column("disaster_menu_id", sa.String(length=64), nullable=True),
        sa.Column("normal_menu_id", sa.String(length=64), nullable=True),
        sa.Column("emergency_broadcast_id", sa.Integer(), nullable=True),
        sa.Column("switched_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("switched_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("municipality", name=op.f("pk_disaster_state")),
    )
    op.create_table(
        "shelters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("hazards", sa.JSON(), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("opened_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("imported_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", bot.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shelters")),
        sa.UniqueConstraint("municipality", "kind", "source_id", name="uq_shelters_source"),
    )
    op.create_index("ix_shelters_municipality_open", "shelters", ["municipality", "is_open"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_shelters_municipality_open", table_name="shelters")
    op.drop_table("shelters")
    op.drop_table("disaster_state")
