"""`flask kpi ...`: the monthly report as CSV or HTML, LINE's friends count, the city's KPI settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from flask import current_app, render_template
from flask.cli import AppGroup
from markupsafe import Markup

from bot.auth import audit
from bot.db import get_db, utcnow
from kpi.admin import city_config, month_cache
from kpi.definitions import KPIS
from kpi.hooks import hooks
from kpi.metrics import Month
from kpi.report import MonthlyReport, build_report
from kpi.service import record_friends_count, with_stored_denominator

kpi_cli = AppGroup("kpi", help="LINE-usage KPI: monthly reports, LINE's friends count, the city's KPI settings.")


def render_report_html(report: MonthlyReport) -> str:
    """The printable monthly report as one self-contained HTML file (its stylesheet inlined)."""
    css = Path(current_app.static_folder or "", "kpi.css").read_text(encoding="utf-8")
    return render_template("kpi/report.html", report=report, definitions=KPIS, web=False, css=Markup(css))


@kpi_cli.command("report")
@click.option("--month", "month_text", metavar="YYYY-MM", help="month in Japan time (default: last month)")
@click.option("--format", "fmt", type=click.Choice(["csv", "html"]), default="csv", show_default=True)
@click.option("--table", "table_key", metavar="KEY", help="only this table (csv): summary, trend, questions, ...")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="write to FILE (CSV files get a BOM for Excel) instead of standard output")
def report_command(month_text: str | None, fmt: str, table_key: str | None, output: Path | None) -> None:
    """The monthly KPI report: every table as CSV, or the printable report as HTML."""
    try:
        month = Month.parse(month_text) if month_text else Month.of(utcnow()).shift(-1)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--month") from exc
    with get_db().session() as session:
        city = with_stored_denominator(session, city_config())
        report = build_report(session, city, month, hooks(current_app), cache=month_cache())
    if fmt == "html":
        if table_key:
            raise click.BadParameter("--table は CSV のときだけ指定できます。", param_hint="--table")
        text = render_report_html(report)
    elif table_key:
        try:
            text = report.table(table_key).csv_text()
        except KeyError as exc:
            keys = ", ".join(t.key for t in report.tables)
            raise click.BadParameter(f"表「{table_key}」はありません（{keys}）。", param_hint="--table") from exc
    else:
        text = report.csv_text()
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8-sig" if fmt == "csv" else "utf-8", newline="")
    click.echo(f"{report.city.name} {month.label}の月次報告を {output} に書き出しました。", err=True)


@kpi_cli.command("record-friends")
@click.argument("count", type=click.IntRange(min=0))
@click.option("--date", "date_text", required=True, metavar="YYYY-MM-DD", help="the day LINE's figure is for")
@click.option("--source", default="LINE Official Account Manager", show_default=True, help="where the figure comes from")
def record_friends_command(count: int, date_text: str, source: str) -> None:
    """Record LINE's own friends count (it includes friends from before the bot recorded follows)."""
    try:
        on = dt.date.fromisoformat(date_text)
    except ValueError as exc:
        raise click.BadParameter("日付は YYYY-MM-DD の形式で指定してください。", param_hint="--date") from exc
    with get_db().session() as session:
        record_friends_count(session, count, on, source)
        audit(session, "kpi_record_friends", on.isoformat(), followers=count, source=source[:200])
    click.echo(f"{on.isoformat()} の友だち数 {count:,}人 を記録しました（出典: {source}）。")


@kpi_cli.command("show-config")
def show_config_command() -> None:
    """Show the city's KPI settings: plan, usage-rate denominator, targets and their sources."""
    with get_db().session() as session:
        city = with_stored_denominator(session, city_config())
    click.echo(f"{city.name}（{city.municipality}） 計画: {city.plan} {city.plan_source}")
    if city.denominator is None:
        click.echo("LINE利用率の分母: 未設定（管理者が KPI 画面の「LINE利用率の分母」で設定するか、"
                   "KPI_CONFIG_FILE で value, basis, as_of, source を設定してください）")
    else:
        d = city.denominator
        click.echo(f"LINE利用率の分母: {d.basis} {d.value:,}（{d.as_of}、出典: {d.source}）")
    for kpi in KPIS:
        plan = city.plan_for(kpi.id)
        target = f"{plan.target.text}（{plan.target.period}）" if plan.target else "未設定"
        baseline = f"　現状値 {plan.baseline.text}（{plan.baseline.period}）" if plan.baseline else ""
        source = f"　出典 {plan.source}" if plan.source else ""
        click.echo(f"- {kpi.name}: 目標 {target}{baseline}{source}")
