"""`flask segments ...`: count a rule's recipients, save rules by name, list and delete them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from bot.auth import audit
from bot.db import get_db
from segments.rules import (
    Criterion,
    RuleError,
    SegmentRule,
    delete_segment,
    get_segment,
    list_segments,
    preview,
    save_segment,
    segment_rule,
)
from segments.vocab import AGE_BANDS, GENDERS, INTERESTS

segments_cli = AppGroup("segments", help="Segments: which residents a notice reaches (MUNICIPALITY chooses the city).")

# option name -> (rule field, Japanese help)
_OPTIONS = (
    ("age", "age_bands", "年代: " + "、".join(AGE_BANDS)),
    ("gender", "genders", "性別: " + "、".join(GENDERS)),
    ("area", "areas", "地域: 市の地区名、回答しない"),
    ("interest", "interests", "関心: " + "、".join(INTERESTS)),
)


def rule_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--age/--gender/--area/--interest and their --exclude-* forms; repeat or separate with commas."""
    for name, _field, label in reversed(_OPTIONS):
        command = click.option(f"--exclude-{name}", f"exclude_{name}", multiple=True, metavar="VALUE",
                               help=f"除く{label}")(command)
        command = click.option(f"--{name}", name, multiple=True, metavar="VALUE",
                               help=f"含める{label}（複数可: 繰り返すかカンマ区切り）")(command)
    return command


def _values(given: Iterable[str]) -> frozenset[str]:
    """Values from repeated options, each possibly a comma-separated list."""
    return frozenset(v.strip() for item in given for v in re.split(r"[,、，]", item) if v.strip())


def rule_from_options(options: dict[str, Any]) -> SegmentRule:
    """The rule the --age/... options describe, validated for the configured city."""
    criteria = {
        field: Criterion(_values(options.get(name) or ()), _values(options.get(f"exclude_{name}") or ()))
        for name, field, _label in _OPTIONS
    }
    rule = SegmentRule(**criteria)
    try:
        rule.validate(current_app.config["MUNICIPALITY"])
    except RuleError as exc:
        raise click.ClickException(str(exc)) from None
    return rule


def _floor() -> int:
    return int(current_app.config["SEGMENT_PRIVACY_FLOOR"])


def _echo_preview(count: int, is_below_floor: bool) -> None:
    click.echo(f"配信対象: {count} 人")
    if is_below_floor:
        click.echo(
            f"注意: プライバシー保護の下限（{_floor()} 人）未満です。"
            "このままでは配信できません（管理者が明示的に許可した場合を除く）。"
        )


@segments_cli.command("count")
@rule_options
@click.option("--name", "saved_name", default=None, help="保存済みのセグメントを数える（条件オプションとは併用不可）")
def count(saved_name: str | None, **options: Any) -> None:
    """Print how many residents the rule reaches now (following, consented, notices on)."""
    with get_db().read_session() as session:
        if saved_name is not None:
            if any(options.values()):
                raise click.ClickException("--name と条件オプションは同時に指定できません。")
            segment = get_segment(session, saved_name)
            if segment is None:
                raise click.ClickException(f"セグメント「{saved_name}」はありません。")
            rule = segment_rule(segment)
        else:
            rule = rule_from_options(options)
        result = preview(session, rule, _floor())
    click.echo(f"条件: {rule.describe()}")
    _echo_preview(result.count, result.is_below_floor)


@segments_cli.command("save")
@click.argument("name")
@rule_options
def save(name: str, **options: Any) -> None:
    """Save the rule as NAME (replaces a segment of that name) and show its count."""
    rule = rule_from_options(options)
    try:
        with get_db().session() as session:
            existed = get_segment(session, name.strip()) is not None
            segment = save_segment(session, name, rule, current_app.config["MUNICIPALITY"])
            audit(session, "segment_save", segment.name, rule=rule.to_dict(), replaced=existed)
            result = preview(session, rule, _floor())
    except RuleError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"セグメント「{segment.name}」を{'更新' if existed else '保存'}しました。")
    click.echo(f"条件: {rule.describe()}")
    _echo_preview(result.count, result.is_below_floor)


@segments_cli.command("list")
def list_() -> None:
    """List saved segments with their current counts."""
    with get_db().read_session() as session:
        rows = []
        for segment in list_segments(session):
            try:
                rule = segment_rule(segment)
                result = preview(session, rule, _floor())
                rows.append((segment.name, f"{result.count}" + (" (下限未満)" if result.is_below_floor else ""), rule.describe()))
            except (RuleError, ValueError):
                rows.append((segment.name, "-", "条件を読めません（保存し直してください）"))
    if not rows:
        click.echo("保存されたセグメントはありません。")
        return
    for name, shown, described in rows:
        click.echo(f"{name}\t{shown}\t{described}")


@segments_cli.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete the saved segment NAME."""
    with get_db().session() as session:
        if not delete_segment(session, name):
            raise click.ClickException(f"セグメント「{name}」はありません。")
        audit(session, "segment_delete", name)
    click.echo(f"セグメント「{name}」を削除しました。")
