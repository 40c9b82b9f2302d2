"""`flask broadcast ...`: create, list, show, pause, resume and cancel notices; run the dispatcher."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Iterable

import click
from flask import current_app
from flask.cli import AppGroup

from bot import metrics
from bot.auth import audit
from bot.i18n import TRANSLATED
from bot.db import get_db, utcnow
from broadcast import service
from broadcast.errors import NoticeError
from broadcast.languages import staff_label, version_languages
from broadcast.messages import NoticeContent
from broadcast.models import PAUSED, STATUS_LABELS
from broadcast.schedule import (
    Schedule,
    format_jst,
    parse_date,
    parse_dates,
    parse_local_datetime,
    to_jst,
)
from segments.rules import FloorOverride, SegmentRule

broadcast_cli = AppGroup("broadcast", help="お知らせ配信: 作成・一覧・詳細・一時停止・再開・取り消し、保留した回の配信許可（release）、配信プロセス（run-scheduler）。")


def _values(options: Iterable[str]) -> list[str]:
    """Repeated and comma-separated option values (`--age 20代,30代 --age 40代`)."""
    out: list[str] = []
    for option in options:
        out += [v.strip() for v in re.split(r"[,、]", option) if v.strip()]
    return out


def _rule(age: Iterable[str], gender: Iterable[str], area: Iterable[str], interest: Iterable[str]) -> SegmentRule | None:
    data = {}
    for name, values in (("age_bands", age), ("genders", gender), ("areas", area), ("interests", interest)):
        included = _values(values)
        if included:
            data[name] = {"include": included}
    return SegmentRule.from_dict(data) if data else None


def _schedule(at: str, every: str | None, until: str | None, excluded: Iterable[str], now: dt.datetime) -> Schedule:
    immediate = at.strip().lower() == "now"
    if immediate:
        start = to_jst(now)
        if every:
            start = start.replace(second=0, microsecond=0)  # recurring at this minute of the day
    else:
        start = parse_local_datetime(at)
    if every:
        return Schedule.recurring(every, start, parse_date(until, "終了日") if until else None, parse_dates(list(excluded)))
    if until or excluded:
        raise NoticeError("--until と --except は --every と一緒に指定してください。")
    return Schedule.once(start, immediate=immediate)


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


def _version_options(command: click.Command) -> click.Command:
    """--text-en, --text-pt, ...: the notice's text in another language (the same kind of message)."""
    for code in reversed(TRANSLATED):
        command = click.option(
            f"--text-{code}", f"text_{code.replace('-', '_')}", default=None,
            help=f"{staff_label(code)}の版の本文（任意。その言語を選んだ人に送る。カードの見出し・ボタン・画像は日本語と同じ）",
        )(command)
    return command


def _versions(content: NoticeContent, texts: dict[str, str | None]) -> dict[str, NoticeContent]:
    """The versions given on the command line, in languages the city offers (LANGUAGES)."""
    offered = version_languages(current_app.config)
    versions = {}
    for code in TRANSLATED:
        text = texts.get(f"text_{code.replace('-', '_')}")
        if text is None or not text.strip():
            continue
        if code not in offered:
            raise NoticeError(f"--text-{code}: {staff_label(code)}はこの市の言語（LANGUAGES）にありません。")
        try:
            versions[code] = NoticeContent.build(
                text, image_url=content.image_url, card_title=content.card_title, button_label=content.button_label,
                button_url=content.button_url, kind=content.kind,
            )
        except NoticeError as exc:
            raise NoticeError(f"--text-{code}: {exc}") from None
    return versions


@broadcast_cli.command("create")
@click.option("--text", required=True, help="本文（「-」で標準入力から読む）")
@click.option("--title", default=None, help="管理用の件名（省略時は本文の1行目）")
@click.option("--image", "image_url", default=None, help="画像のURL（https）。テキストの後に画像を送る／カードでは上部の画像")
@click.option("--card-title", default=None, help="カードの見出し（--button-url と一緒に）")
@click.option("--button-label", default=None, help="カードのボタンの文言（20文字まで）")
@click.option("--button-url", default=None, help="カードのボタンのリンク先（https）。指定するとカードで送る")
@click.option("--segment", default=None, help="保存済みセグメントの名前")
@click.option("--age", multiple=True, help="年代（例: 20代,30代）")
@click.option("--gender", multiple=True, help="性別")
@click.option("--area", multiple=True, help="地域")
@click.option("--interest", multiple=True, help="関心（例: 防災,子育て）")
@click.option("--emergency", is_flag=True, help="緊急: セグメント・配信設定に関わらず友だち全員に送る")
@click.option("--at", "at", default="now", show_default=True, help="配信日時 ISO 8601（タイムゾーンなしは日本時間）または now。繰り返しでは開始日時")
@click.option("--every", default=None, help="繰り返し: daily | weekly:mon,thu | monthly:15 | monthly:last")
@click.option("--until", default=None, help="繰り返しの終了日 YYYY-MM-DD（その日を含む）")
@click.option("--except", "excluded", multiple=True, help="配信しない日 YYYY-MM-DD（複数可、カンマ区切り可）")
@click.option("--allow-small-segment", is_flag=True, help="対象が SEGMENT_PRIVACY_FLOOR 人未満でも配信する（サーバー管理者の判断として監査ログに記録）")
@_version_options
def create(
    text: str, title: str | None, image_url: str | None, card_title: str | None, button_label: str | None,
    button_url: str | None, segment: str | None, age: tuple[str, ...], gender: tuple[str, ...], area: tuple[str, ...],
    interest: tuple[str, ...], emergency: bool, at: str, every: str | None, until: str | None,
    excluded: tuple[str, ...], allow_small_segment: bool, **version_texts: str | None,
) -> None:
    """Schedule a notice; prints its id (a summary goes to stderr)."""
    if text == "-":
        text = sys.stdin.read()
    config = current_app.config
    now = utcnow()
    try:
        rule = _rule(age, gender, area, interest)
        if emergency and (segment or rule):
            raise NoticeError("緊急配信は友だち全員に送るため、--segment や条件は指定できません。")
        content = NoticeContent.build(text, image_url=image_url, card_title=card_title, button_label=button_label, button_url=button_url)
        versions = _versions(content, version_texts)
        schedule = _schedule(at, every, until, excluded, now)
        with get_db().session() as session:
            target = service.make_target(session, config["MUNICIPALITY"], segment_name=segment, rule=rule, is_emergency=emergency)
            created = service.create_broadcast(
                session, content=content, schedule=schedule, target=target, versions=versions, title=title,
                privacy_floor=int(config["SEGMENT_PRIVACY_FLOOR"]), now=now,
                override=FloorOverride(None, "flask broadcast create --allow-small-segment") if allow_small_segment else None,
            )
            broadcast = created.broadcast
            audit(
                session, "notice_create", f"#{broadcast.id}", title=broadcast.title, audience=target.describe(),
                schedule=schedule.describe(), recipients_now=created.recipient_count, emergency=emergency,
                **({"languages": "、".join(staff_label(code) for code in versions)} if versions else {}),
            )
    except NoticeError as exc:
        raise _fail(exc) from None
    click.echo(
        f"お知らせ #{broadcast.id} を予約しました: 対象 {created.recipient_count} 人（{target.describe()}）、"
        f"{schedule.describe()}、初回 {format_jst(broadcast.next_run_at)}",
        err=True,
    )
    if created.is_below_floor:
        click.echo(
            f"注意: 対象がプライバシー保護の下限（{config['SEGMENT_PRIVACY_FLOOR']}人）未満です。配信の時点でも下限未満なら、"
            "その回の配信は保留され、flask broadcast release で許可するまで送られません。",
            err=True,
        )
    click.echo(broadcast.id)


@broadcast_cli.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice(list(STATUS_LABELS)), help="状態で絞り込む（複数可）")
@click.option("--json", "as_json", is_flag=True, help="1行に1件の JSON")
def list_(statuses: tuple[str, ...], as_json: bool) -> None:
    """List notices, newest first, with delivery counts."""
    with get_db().session() as session:
        rows = service.list_broadcasts(session, statuses or None)
        counts = service.delivery_counts(session, [b.id for b in rows])
        if as_json:
            for b in rows:
                click.echo(json.dumps(service.notice_report(session, b), ensure_ascii=False))
            return
    if not rows:
        click.echo("お知らせはまだありません。")
        return
    click.echo("ID\t状態\t次回配信\t配信済み/対象\t件名")
    for b in rows:
        c = counts[b.id]
        label = STATUS_LABELS.get(b.status, b.status) + ("・緊急" if b.is_emergency else "")
        click.echo(f"{b.id}\t{label}\t{format_jst(b.next_run_at)}\t{c.delivered}/{c.recipients}\t{b.title}")


@broadcast_cli.command("show")
@click.argument("broadcast_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="状態と件数を JSON で")
def show(broadcast_id: int, as_json: bool) -> None:
    """Show a notice: status, target, schedule, and counts per run."""
    with get_db().session() as session:
        try:
            report = service.notice_report(session, service.get_broadcast(session, broadcast_id))
        except NoticeError as exc:
            raise _fail(exc) from None
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    c = report["counts"]
    click.echo(f"お知らせ #{report['id']}「{report['title']}」: {report['status_label']}{'（緊急）' if report['is_emergency'] else ''}")
    click.echo(f"  対象: {report['target']['description']}")
    click.echo(f"  配信: {report['schedule']['description']}")
    if report["next_run_at"]:
        click.echo(f"  次回: {format_jst(dt.datetime.fromisoformat(report['next_run_at']))}")
    click.echo(
        f"  件数: 対象 {c['recipients']}、配信済み {c['delivered']}、未送信 {c['pending']}、除外 {c['skipped']}、"
        f"失敗 {c['failed']}、取り消し {c['cancelled']}、24時間内のブロック {c['blocks']}"
    )
    for run in report["runs"]:
        rc = run["counts"]
        click.echo(
            f"  - 回 #{run['id']} {format_jst(dt.datetime.fromisoformat(run['occurrence_at']))} {STATUS_LABELS.get(run['status'], run['status'])}: "
            f"配信済み {rc['delivered']}/{rc['recipients']}、失敗 {rc['failed']}、除外 {rc['skipped']}"
        )
        if run["note"]:
            click.echo(f"    {run['note']}")


def _transition(action: str, broadcast_id: int) -> None:
    functions = {"cancel": service.cancel_broadcast, "pause": service.pause_broadcast, "resume": service.resume_broadcast}
    try:
        with get_db().session() as session:
            broadcast = functions[action](session, broadcast_id)
            audit(session, f"notice_{action}", f"#{broadcast.id}", title=broadcast.title)
            status = broadcast.status
    except NoticeError as exc:
        raise _fail(exc) from None
    click.echo(f"お知らせ #{broadcast_id} を{ {'cancel': '取り消しました', 'pause': '一時停止しました', 'resume': '再開しました'}[action] }（状態: {STATUS_LABELS[status]}）。")


@broadcast_cli.command("cancel")
@click.argument("broadcast_id", type=int)
def cancel(broadcast_id: int) -> None:
    """Cancel a notice (also during sending: the rest is not sent)."""
    _transition("cancel", broadcast_id)


@broadcast_cli.command("pause")
@click.argument("broadcast_id", type=int)
def pause(broadcast_id: int) -> None:
    """Pause a scheduled or sending notice."""
    _transition("pause", broadcast_id)


@broadcast_cli.command("resume")
@click.argument("broadcast_id", type=int)
def resume(broadcast_id: int) -> None:
    """Resume a paused notice (an interrupted delivery continues where it stopped)."""
    _transition("resume", broadcast_id)


@broadcast_cli.command("release")
@click.argument("broadcast_id", type=int)
@click.option("--reason", required=True, help="配信を許可する理由（監査ログに記録）")
@click.option("--run", "run_id", type=int, default=None, help="保留中の配信回の番号（show に「回 #N」と出るもの）。保留中が1回だけなら省略可")
def release(broadcast_id: int, reason: str, run_id: int | None) -> None:
    """Send an occurrence held below the privacy floor (the server operator's decision, audit-logged with the reason)."""
    try:
        with get_db().session() as session:
            released = service.release_held_run(
                session, broadcast_id, FloorOverride(None, reason),
                privacy_floor=int(current_app.config["SEGMENT_PRIVACY_FLOOR"]), run_id=run_id,
            )
            run_id, count, status = released.run.id, released.recipient_count, released.broadcast.status
    except NoticeError as exc:
        raise _fail(exc) from None
    click.echo(
        f"お知らせ #{broadcast_id} の配信回 #{run_id} の配信を許可しました（対象 {count} 人、監査ログに記録）。"
        + ("一時停止中のため、resume すると送られます。" if status == PAUSED else "配信プロセスが送ります。")
    )


@broadcast_cli.command("run-scheduler")
@click.option("--once", is_flag=True, help="期限の来た配信をすべて送って終了する（テスト・cron 用）")
def run_scheduler(once: bool) -> None:
    """The dispatcher: the only process that runs APScheduler. A second copy waits for the first."""
    # Imported here: APScheduler is loaded by this command only, never by web workers.
    from broadcast import scheduler

    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def waiting() -> None:
        click.echo("別の配信プロセスが動いているため、終わるまで待機しています…", err=True)

    if once:
        report = scheduler.run_once(app, on_wait=waiting)
        if report is not None:
            click.echo(f"配信処理を1回実行しました: {report.summary()}")
            if report.waiting_runs:
                # Only when the database kept refusing work: tell cron, the next run resumes them.
                raise click.ClickException(f"送り終えていない配信があります（配信回 {', '.join(map(str, report.waiting_runs))}）。")
        return
    # Its counters (notices sent and failed, multicast calls) go beside the web workers' for /metrics.
    metrics.enable_multiprocess()
    process = scheduler.SchedulerProcess(app)
    process.install_signal_handlers()
    process.run(
        on_wait=waiting,
        on_start=lambda: click.echo(f"配信プロセスを開始しました（{process.poll:g} 秒ごとに確認）。停止: Ctrl-C", err=True),
    )


@broadcast_cli.command("purge")
def purge() -> None:
    """Record closed block windows and apply BROADCAST_RETENTION_DAYS now (run-scheduler does it hourly)."""
    with get_db().session() as session:
        report = service.purge_delivery_records(session, int(current_app.config["BROADCAST_RETENTION_DAYS"]))
    click.echo(f"ブロック数を確定した配信回: {report.closed_runs} 回、削除した配信記録: {report.deleted_deliveries} 件")


@broadcast_cli.command("statistics")
@click.option("--again", is_flag=True, help="ask LINE again for notices already fetched today")
def statistics(again: bool) -> None:
    """Fetch LINE's statistics of the notices sent in the last INSIGHT_DAYS days now (run-scheduler does it daily)."""
    from broadcast import insights

    report = insights.collect_statistics(current_app, force=again)
    click.echo(f"LINEの集計を取得したお知らせ: {report.fetched} 件、取得できなかったお知らせ: {report.failed} 件"
               + ("" if report.followers else "（友だち数は取得できませんでした）"))
    if report.failed:
        sys.exit(1)
