"""`flask garbage ...`: import the sorting dictionary and a 5374 calendar, try a lookup, send reminders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from bot.auth import audit
from bot.db import get_db
from garbage import calendar, reminders, service
from garbage.importer import ImportFailed, import_calendar, import_items

garbage_cli = AppGroup("garbage", help="ごみ分別の一覧と収集カレンダー（5374 形式）の取り込み、品目の検索、前日の通知。")


def _municipality() -> str:
    return str(current_app.config["MUNICIPALITY"])


def _fail(exc: ImportFailed) -> None:
    for name, line, message in exc.errors:
        click.echo(f"{name}:{line}: {message}" if line else f"{name}: {message}", err=True)
    raise click.ClickException(f"取り込みを中止しました（{len(exc.errors)} 件の誤り）。データは変更していません。")


@garbage_cli.command("import-items")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_items_command(file: Path) -> None:
    """FILE（自治体標準オープンデータセット「ごみ分別」の CSV、UTF-8 か Shift_JIS）で分別の一覧を置き換えます。"""
    try:
        with get_db().session() as session:
            report = import_items(session, _municipality(), file.read_bytes(), file.name)
            audit(session, "garbage_items_import", file.name, rows=report.rows)
    except ImportFailed as exc:
        _fail(exc)
    click.echo(f"{file}: 取り込みました（{report.summary()}）")


@garbage_cli.command("import-calendar")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def import_calendar_command(folder: Path) -> None:
    """FOLDER（5374 の data フォルダ：area_days.csv、あれば description.csv・target.csv・center.csv）で収集カレンダーを置き換えます。"""
    try:
        with get_db().session() as session:
            report = import_calendar(session, _municipality(), folder)
            audit(session, "garbage_calendar_import", folder.name, areas=report.areas, kinds=len(report.kinds))
    except ImportFailed as exc:
        _fail(exc)
    click.echo(f"{folder}: 取り込みました（{report.summary()}）")


@garbage_cli.command("lookup")
@click.argument("question")
@click.option("--area", help="この地区の次の収集日も表示します")
def lookup_command(question: str, area: str | None) -> None:
    """住民が QUESTION（例：「電池は何ごみ？」）と送ったときに見つかる品目を表示します。"""
    with get_db().read_session() as session:
        index = service.item_index(session, _municipality())
        parsed, match = index.recognise(question)
        click.echo(f"品目として読んだ部分：{parsed.phrase or '（なし）'}（ごみの質問の言葉：{'あり' if parsed.has_cue else 'なし'}）")
        for candidate in index.search(parsed.phrase, limit=3) if parsed.phrase else []:
            click.echo(f"  {candidate.score:5.1f}  {candidate.item.name}（{candidate.item.category}）")
        click.echo(f"答える品目：{match.item.name}" if match else "答える品目：なし（FAQ に回します）")
        if match and area:
            cal = service.area_calendar(session, _municipality(), area)
            if cal is None:
                raise click.ClickException(f"地区「{area}」はカレンダーにありません。")
            kind = service.kind_for_category(match.item.category, [k for k, _ in cal.rules])
            day = cal.next_of(kind, service.today_jst()) if kind else None
            click.echo(f"次の収集日：{calendar.weekday_label(day)}（{kind}）" if day else "次の収集日：なし")


@garbage_cli.command("send-reminders")
@click.option("--at", "at", help="この時刻（例：2027-01-14T19:00+09:00）として実行します（試験用）")
def send_reminders_command(at: str | None) -> None:
    """前日の通知のうち、いま送る時刻のものを送ります（通常は通知の配信プロセスが毎分実行します）。"""
    try:
        now = dt.datetime.fromisoformat(at) if at else None
    except ValueError:
        raise click.ClickException("--at は 2027-01-14T19:00+09:00 の形で指定してください。") from None
    if now is not None and now.tzinfo is None:
        now = now.replace(tzinfo=service.JST)
    report = reminders.send_reminders(current_app._get_current_object(), now)  # type: ignore[attr-defined]
    click.echo(f"通知：新しい配信 {report.runs} 件、送信 {report.sent_chunks} 回（{report.recipients} 人）、失敗 {report.failed_chunks} 回")
