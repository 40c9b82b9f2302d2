"""Retention of the staff question log: questions older than QUESTION_LOG_RETENTION_DAYS are deleted.

The log holds residents' (masked) words, kept only as long as staff need them to improve the
knowledge base; the KPI figures do not depend on it (they come from usage events). The job is a
plain function run by the one scheduler process (`flask broadcast run-scheduler`), and by hand
with `flask faq purge-log`.
"""

from __future__ import annotations

import datetime as dt
import logging

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.auth import AUDIT_ACTION_LABELS, audit
from bot.db import get_db, utcnow
from faq.models import QuestionLog

log = logging.getLogger(__name__)
AUDIT_ACTION = "question_log_purge"


def retention_cutoff(days: int, now: dt.datetime | None = None) -> dt.datetime:
    """The moment before which questions are removed."""
    return (now or utcnow()) - dt.timedelta(days=days)


def count_question_log(session: Session, older_than: dt.datetime) -> int:
    """How many logged questions were asked before `older_than`."""
    return session.scalar(select(func.count()).select_from(QuestionLog).where(QuestionLog.asked_at < older_than)) or 0


def purge_question_log(session: Session, older_than: dt.datetime) -> int:
    """Delete the questions asked before `older_than` (every city's); returns how many. The caller commits."""
    result = session.execute(
        delete(QuestionLog).where(QuestionLog.asked_at < older_than).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def run_question_log_retention(app: Flask, now: dt.datetime | None = None) -> int:
    """The scheduled job: purge what is older than the app's QUESTION_LOG_RETENTION_DAYS (0 keeps all)."""
    with app.app_context():
        days = int(app.config["QUESTION_LOG_RETENTION_DAYS"])
        if days <= 0:
            log.info("question log retention is off (QUESTION_LOG_RETENTION_DAYS=%s)", days)
            return 0
        cutoff = retention_cutoff(days, now)
        with get_db(app).session() as session:
            removed = purge_question_log(session, cutoff)
            AUDIT_ACTION_LABELS.setdefault(AUDIT_ACTION, "質問ログの保存期間切れ削除")
            audit(session, AUDIT_ACTION, cutoff.isoformat(timespec="seconds"), removed=removed, days=days)
        log.info("question log retention: %d questions older than %d days deleted", removed, days)
        return removed


@click.command("purge-log")
@click.option("--days", type=click.IntRange(min=1), help="keep this many days (default: QUESTION_LOG_RETENTION_DAYS)")
@click.option("--dry-run", is_flag=True, help="only count what would be deleted")
@with_appcontext
def purge_log_command(days: int | None, dry_run: bool) -> None:
    """Delete logged questions older than the retention period."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if days is None:
        days = int(app.config["QUESTION_LOG_RETENTION_DAYS"])
        if days <= 0:
            click.echo("保存期間が設定されていません（QUESTION_LOG_RETENTION_DAYS=0）。削除しません。")
            return
    cutoff = retention_cutoff(days)
    when = cutoff.astimezone(dt.timezone(dt.timedelta(hours=9))).strftime("%Y-%m-%d %H:%M")
    if dry_run:
        with get_db().session() as session:
            count = count_question_log(session, cutoff)
        click.echo(f"{when}（日本時間）より前の質問 {count:,}件 が削除対象です（削除していません）。")
        return
    with get_db().session() as session:
        removed = purge_question_log(session, cutoff)
        AUDIT_ACTION_LABELS.setdefault(AUDIT_ACTION, "質問ログの保存期間切れ削除")
        audit(session, AUDIT_ACTION, cutoff.isoformat(timespec="seconds"), removed=removed, days=days)
    click.echo(f"{when}（日本時間）より前の質問 {removed:,}件 を削除しました。")
