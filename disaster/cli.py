"""`flask shelters ...` (import, list, open, close) and `flask line disaster on|off`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from bot.admin import jst
from bot.auth import CLI_ACTOR, audit
from bot.db import get_db
from disaster import mode, shelters
from disaster.hazards import HAZARDS, label
from disaster.importer import ShelterImportError, import_shelters
from disaster.models import KIND_LABELS

shelters_cli = AppGroup("shelters", help="Shelters from the city's open data; open and close them.")


def _municipality() -> str:
    return str(current_app.config["MUNICIPALITY"])


@shelters_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_(file: Path) -> None:
    """Import FILE (国土地理院 指定緊急避難場所データ, or the 自治体標準オープンデータセット 指定緊急避難場所一覧 /
    指定避難所一覧; UTF-8 or Shift_JIS): every row checked first, all or nothing."""
    try:
        with get_db().session() as session:
            report = import_shelters(session, _municipality(), file.read_bytes())
            audit(session, "shelters_import", file.name, layout=report.layout, added=report.added,
                  updated=report.updated, removed=report.removed)
    except ShelterImportError as exc:
        for line, message in exc.errors:
            click.echo(f"{file}:{line}: {message}", err=True)
        raise click.ClickException(f"取り込みを中止しました（{len(exc.errors)} 件の誤り）。データは変更していません。") from None
    click.echo(f"{file}: 取り込みました（{report.summary()}）")


@shelters_cli.command("list")
@click.option("--open", "only_open", is_flag=True, help="開設中の避難所だけ")
@click.option("--json", "as_json", is_flag=True, help="1行に1つのJSON")
def list_(only_open: bool, as_json: bool) -> None:
    """The city's shelters with their numbers (for open / close)."""
    with get_db().read_session() as session:
        rows = shelters.list_shelters(session, _municipality(), only_open=only_open)
        for row in rows:
            if as_json:
                click.echo(json.dumps(row.as_dict(), ensure_ascii=False))
                continue
            state = "開設中" if row.is_open else "閉鎖"
            hazards = "・".join(label(h) for h in row.hazards) if row.hazards else "災害種別なし"
            click.echo(f"{row.id}\t{state}\t{KIND_LABELS[row.kind]}\t{row.name}\t{row.address}\t{hazards}")
        if not rows and not as_json:
            click.echo("避難所はありません。" if not only_open else "開設中の避難所はありません。")


def _open_or_close(ids: tuple[int, ...], every: bool, is_open: bool) -> None:
    if every == bool(ids):
        raise click.UsageError("避難所の番号か --all のどちらか一方を指定してください。")
    word = "開設" if is_open else "閉鎖"
    try:
        with get_db().session() as session:
            changed = shelters.set_open(session, _municipality(), None if every else ids, is_open)
            if changed:
                audit(session, "shelter_open" if is_open else "shelter_close",
                      "、".join(f"{s.id} {s.name}" for s in changed)[:256], count=len(changed))
            names = [f"{s.id} {s.name}" for s in changed]
    except shelters.ShelterError as exc:
        raise click.ClickException(str(exc)) from None
    for name in names:
        click.echo(f"{word}しました: {name}")
    if not names:
        click.echo(f"変更はありません（すでに{word}しています）。")


@shelters_cli.command("open")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="市のすべての避難所")
def open_(ids: tuple[int, ...], every: bool) -> None:
    """Open shelters by number (residents are offered open ones only)."""
    _open_or_close(ids, every, True)


@shelters_cli.command("close")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="市のすべての避難所")
def close(ids: tuple[int, ...], every: bool) -> None:
    """Close shelters by number (never offered again until opened)."""
    _open_or_close(ids, every, False)


@click.command("disaster")
@click.argument("state", type=click.Choice(["on", "off", "status"]))
@click.option("--message", default=None, help="災害モードを始めるとき、友だち全員に送る緊急のお知らせ")
@click.option("--hazard", type=click.Choice(sorted(HAZARDS)), default=None,
              help="起きている災害（住民に聞かずにこの災害に合う避難所を案内する）")
@with_appcontext
def disaster_command(state: str, message: str | None, hazard: str | None) -> None:
    """Disaster mode: on (the disaster rich menu for everyone, optionally an emergency notice), off, status."""
    municipality = _municipality()
    if state == "status":
        with get_db().read_session() as session:
            click.echo(mode.status_text(mode.get_state(session, municipality), jst))
        return
    try:
        result = mode.switch(get_db(), current_app.extensions["line"], municipality, state == "on",
                             username=CLI_ACTOR, message=message, hazard=hazard,
                             sender=mode.emergency_sender(current_app))
    except mode.DisasterModeError as exc:
        raise click.ClickException(str(exc)) from None
    if state == "on":
        click.echo("災害モードにしました。全員のメニューを災害時メニューにしました。" if result.changed
                   else "すでに災害モードです（変更はありません）。")
        if result.broadcast_id is not None:
            click.echo(f"緊急のお知らせ #{result.broadcast_id} を友だち全員に送ります（配信はお知らせの配信プロセスが行います）。")
        elif message and not result.changed:
            click.echo("緊急のお知らせは送っていません（災害モードを始めたときだけ送ります）。", err=True)
    else:
        click.echo("災害モードを終えました。通常のメニューに戻しました。" if result.changed
                   else "災害モードではありません（変更はありません）。")
