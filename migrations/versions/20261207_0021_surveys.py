"""surveys: surveys, their questions, residents' responses and answers

Revision ID: 0021
Revises: 0003
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

import bot.db

revision = "0021"
down_revision = "0003"
branch_labels = None
# A survey may ride on a notice (broadcasts, 0004) and was made by a staff user (0001).
depends_on = "0004"


def upgrade() -> None:
    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("intro", sa.String(length=500), nullable=False),
        sa.Column("is_anonymous", sa.Boolean(), nullable=False),
        sa.Column("closes_at", bot.db.UTCDateTime(), nullable=True),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("broadcast_id", sa.Integer(), nullable=True),
        sa.Column("created_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["broadcast_id"], ["broadcasts.id"], name=op.f("fk_surveys_broadcast_id_broadcasts"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["created_by"], ["staff_users.id"], name=op.f("fk_surveys_created_by_staff_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
    )
    op.create_table(
        "survey_questions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.String(length=200), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["survey_id"], ["surveys.id"], name=op.f("fk_survey_questions_survey_id_surveys"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_questions")),
        sa.UniqueConstraint("survey_id", "seq", name="uq_survey_questions_survey_seq"),
    )
    with op.batch_alter_table("survey_questions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_survey_questions_survey_id"), ["survey_id"], unique=False)
    op.create_table(
        "survey_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("respondent_key", sa.String(length=64), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=True),
        sa.Column("next_seq", sa.Integer(), nullable=False),
        sa.Column("pending", sa.JSON(), nullable=False),
        sa.Column("is_waiting_text", sa.Boolean(), nullable=False),
        sa.Column("started_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", bot.db.UTCDateTime(), nullable=False),
        sa.Column("completed_at", bot.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.id"], name=op.f("fk_survey_responses_resident_id_residents"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["survey_id"], ["surveys.id"], name=op.f("fk_survey_responses_survey_id_surveys"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_responses")),
        sa.UniqueConstraint("survey_id", "respondent_key", name="uq_survey_responses_survey_respondent"),
    )
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_survey_responses_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_survey_responses_survey_id"), ["survey_id"], unique=False)
    op.create_table(
        "survey_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.Column("scale", sa.Integer(), nullable=True),
        sa.Column("text", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["question_id"], ["survey_questions.id"], name=op.f("fk_survey_answers_question_id_survey_questions"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["response_id"], ["survey_responses.id"], name=op.f("fk_survey_answers_response_id_survey_responses"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_answers")),
        sa.UniqueConstraint("response_id", "question_id", name="uq_survey_answers_response_question"),
    )
    with op.batch_alter_table("survey_answers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_survey_answers_question_id"), ["question_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_survey_answers_response_id"), ["response_id"], unique=False)


def downgrade() -> None:
    op.drop_table("survey_answers")
    op.drop_table("survey_responses")
    op.drop_table("survey_questions")
    op.drop_table("surveys")
